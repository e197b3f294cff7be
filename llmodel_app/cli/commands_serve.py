"""``serve`` and ``api``: the model server for a checkpoint, OpenAI-compatible."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmodel_app.cli.console import info

Host = Annotated[str, typer.Option(help="Address to bind; anything but loopback needs an API key.")]
Port = Annotated[int, typer.Option(help="Port to listen on.")]
ApiKey = Annotated[
    str | None, typer.Option(help="Require 'Authorization: Bearer KEY' (default: $LLMODEL_API_KEY).")
]
RateLimit = Annotated[float | None, typer.Option(help="Requests per second allowed per key (token bucket).")]
MaxBatch = Annotated[int, typer.Option(help="Sequences decoded together (continuous batching).")]
Adapters = Annotated[
    list[str] | None,
    typer.Option(
        "--adapter",
        help="Serve an adapter over the model too: NAME=PATH, or a workspace adapter's name (repeatable); "
        "requests pick it with the OpenAI 'model' field.",
    ),
]


def serve(
    model: Annotated[
        Path,
        typer.Argument(
            help="A run directory (its latest checkpoint), a checkpoint directory, or 'latest' (the workspace's newest run with a checkpoint)."
        ),
    ],
    host: Host = "127.0.0.1",
    port: Port = 8000,
    api_key: ApiKey = None,
    rate_limit: RateLimit = None,
    max_batch: MaxBatch = 8,
    tokenizer_path: Annotated[
        Path | None, typer.Option(help="Tokenizer (default: the one the checkpoint records).")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    adapter: Adapters = None,
    workspace: Annotated[
        Path | None, typer.Option(help="Workspace searched for 'latest' and adapter names.")
    ] = None,
) -> None:
    """Serve a model over HTTP: /generate, /embed, /health, /model-info and OpenAI's /v1/... ."""
    if str(model) == "latest":
        from engine.errors import LLModelError
        from engine.server.run import resolve_api_key
        from engine.workspace import latest_run_with_checkpoint, workspace_root

        resolve_api_key(host, api_key)  # refuse a bad bind before looking for a model
        found = latest_run_with_checkpoint(workspace_root(workspace))
        if found is None:
            raise LLModelError(
                f"no run with a checkpoint in {workspace_root(workspace)}; train one first (`llmodel quickstart`)"
            )
        model = found
    _run(model, None, tokenizer_path, host, port, api_key, rate_limit, max_batch, device, workspace, adapter)


def api(
    model_path: Annotated[
        Path | None,
        typer.Option(
            help="A run directory or a checkpoint directory; default: the workspace's newest completed run."
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="Model config JSON (default: the checkpoint's own).")
    ] = None,
    tokenizer_path: Annotated[
        Path | None, typer.Option(help="Tokenizer (default: the one the checkpoint records).")
    ] = None,
    host: Host = "127.0.0.1",
    port: Port = 8000,
    api_key: ApiKey = None,
    rate_limit: RateLimit = None,
    max_batch: MaxBatch = 8,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    adapter: Adapters = None,
    workspace: Annotated[
        Path | None,
        typer.Option(help="Workspace searched when --model-path is omitted, and for adapter names."),
    ] = None,
) -> None:
    """Serve a model over HTTP (the same server as `serve`, with the config and tokenizer given as flags)."""
    _run(
        model_path,
        config,
        tokenizer_path,
        host,
        port,
        api_key,
        rate_limit,
        max_batch,
        device,
        workspace,
        adapter,
    )


def _run(
    model: Path | None,
    config: Path | None,
    tokenizer: Path | None,
    host: str,
    port: int,
    api_key: str | None,
    rate_limit: float | None,
    max_batch: int,
    device: str,
    workspace: Path | None,
    adapters: list[str] | None,
) -> None:
    from engine.net import url_host
    from engine.runs.checkpoint import resolve_checkpoint
    from engine.server.run import parse_adapters, resolve_api_key, serve
    from engine.server.served_model import ServeOptions
    from engine.workspace import workspace_root
    from llmodel_app.cli.commands_model import default_model

    resolve_api_key(host, api_key)  # refuse a bad bind before loading anything
    served_adapters = parse_adapters(list(adapters or []), workspace_root(workspace))
    model = model or default_model(workspace)
    checkpoint = resolve_checkpoint(model)
    shown = url_host(host)
    info(
        f"serving {checkpoint.path} at http://{shown}:{port} (OpenAI base URL http://{shown}:{port}/v1); Ctrl-C stops"
    )
    if served_adapters:
        info(f"adapters (pick one with the OpenAI 'model' field): {', '.join(served_adapters)}")
    options = ServeOptions(
        model_path=model,
        config_path=config,
        tokenizer_path=tokenizer,
        device=device,
        max_batch=max_batch,
        adapters=served_adapters,
    )
    serve(options, host=host, port=port, api_key=api_key, rate_limit=rate_limit)
