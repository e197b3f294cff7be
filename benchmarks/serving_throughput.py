"""Model server under concurrent streaming clients: aggregate tokens/s and time to first token.

A Llama-shaped model (vocab 4096, d_model 384, 6 layers; random weights — speed does not depend on training) is
served by `python -m engine.server` on a free loopback port. 1, 4 and 8 clients each stream a few
/v1/completions requests (64 tokens, greedy, ignore_eos) back to back. Target: with 8 clients the aggregate
throughput is at least 3x one client's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import torch

from benchmarks.hardware import machine_description
from benchmarks.report import format_table, write_results
from engine.data.stdlib_corpus import build_stdlib_corpus
from engine.model import ModelConfig, Transformer
from engine.net import free_port
from engine.runs.checkpoint import save_checkpoint
from engine.tokenizer import Tokenizer

SHAPE = {"d_model": 384, "n_layers": 6, "n_heads": 6, "d_ff": 1024, "max_len": 256}
PROMPTS = [
    "def main():\n",
    "import os\n",
    "class Parser:\n",
    "The module ",
    "# Copyright ",
    "for key in ",
    "return self.",
    "with open(",
]


def make_model(root: Path, vocab: int) -> Path:
    corpus = root / "corpus.jsonl"
    build_stdlib_corpus(corpus, max_bytes=2_000_000)
    tokenizer = Tokenizer.train([corpus], root / "tokenizer", vocab)
    config = ModelConfig.from_dict({**SHAPE, "vocab_size": tokenizer.vocab_size})
    torch.manual_seed(0)
    run_dir = root / "runs" / "bench"
    save_checkpoint(run_dir / "checkpoints", step=0, model=Transformer(config), model_config=config,
                    meta={"tokenizer": str(root / "tokenizer")})  # fmt: skip
    return run_dir


def stream_one(url: str, prompt: str, tokens: int) -> tuple[float, float, int]:
    """(time to first token, total time, tokens received) for one streaming completion."""
    body = {"prompt": prompt, "max_tokens": tokens, "temperature": 0, "stream": True, "ignore_eos": True}
    started = time.perf_counter()
    first, count = None, 0
    with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=120) as response:
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk["choices"] and chunk["choices"][0]["text"]:
                count += 1
                if first is None:
                    first = time.perf_counter() - started
    return first or float("nan"), time.perf_counter() - started, count


def drive(url: str, clients: int, requests_each: int, tokens: int) -> dict[str, float]:
    ttfts: list[float] = []
    total_tokens = 0
    lock = threading.Lock()

    def client(index: int) -> None:
        nonlocal total_tokens
        for r in range(requests_each):
            ttft, _, count = stream_one(url, PROMPTS[(index + r) % len(PROMPTS)], tokens)
            with lock:
                ttfts.append(ttft)
                total_tokens += count

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    ttfts.sort()
    return {
        "clients": clients, "tokens": total_tokens, "seconds": wall, "tokens_per_s": total_tokens / wall,
        "ttft_p50_ms": statistics.median(ttfts) * 1000, "ttft_p99_ms": ttfts[int(0.99 * (len(ttfts) - 1))] * 1000,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter requests; nothing written")
    args = parser.parse_args()
    tokens, requests_each = (16, 1) if args.quick else (64, 3)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = make_model(Path(tmp), 4096)
        port = free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "engine.server",
                "--model",
                str(run_dir),
                "--port",
                str(port),
                "--max-batch",
                "8",
            ],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            drive(url, 1, 1, 8)  # warm up
            results = [drive(url, clients, requests_each, tokens) for clients in (1, 4, 8)]
        finally:
            server.terminate()
            server.wait(timeout=30)
    rows = [
        [r["clients"], r["tokens"], r["tokens_per_s"], r["ttft_p50_ms"], r["ttft_p99_ms"]] for r in results
    ]
    print(format_table(["clients", "tokens", "tokens/s", "TTFT p50 ms", "TTFT p99 ms"], rows))
    speedup = results[2]["tokens_per_s"] / results[0]["tokens_per_s"]
    print(
        f"8 clients vs 1: {speedup:.2f}x aggregate throughput (target ≥ 3x): {'met' if speedup >= 3 else 'NOT met'}"
    )
    if not args.quick:
        figures = {
            "shape": SHAPE,
            "vocab_size": 4096,
            "tokens_per_request": tokens,
            "runs": results,
            "speedup_8_vs_1": speedup,
        }
        print(f"wrote {write_results('serving_throughput', machine_description(), figures)}")


if __name__ == "__main__":
    main()
