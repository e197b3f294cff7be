"""Run the model server as a process: ``python -m engine.server --model PATH [--host H --port P]``.

The API key comes from $LLMODEL_API_KEY so it never shows in a process listing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.errors import LLModelError
from engine.server.run import parse_adapters, serve
from engine.server.served_model import ServeOptions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.server", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="run or checkpoint directory")
    parser.add_argument("--tokenizer-path", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--rate-limit", type=float)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--adapter", action="append", default=[], help="NAME=PATH of an adapter to serve too")
    args = parser.parse_args(argv)
    try:
        options = ServeOptions(
            model_path=args.model,
            tokenizer_path=args.tokenizer_path,
            device=args.device,
            max_batch=args.max_batch,
            adapters=parse_adapters(args.adapter),
        )
        serve(options, host=args.host, port=args.port, rate_limit=args.rate_limit)
    except LLModelError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
