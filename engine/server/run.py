"""Running the model server: the bind policy (loopback unless a key guards it), then uvicorn.

Light to import: the daemon checks a bind here before it starts a server process.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.errors import LLModelError
from engine.net import is_loopback
from engine.server.served_model import ServedModel, ServeOptions

API_KEY_ENV = "LLMODEL_API_KEY"


def resolve_api_key(host: str, api_key: str | None) -> str | None:
    """The key to require: ``api_key``, else $LLMODEL_API_KEY; refuse a non-loopback bind without one."""
    key = api_key or os.environ.get(API_KEY_ENV) or None
    if key is None and not is_loopback(host):
        raise LLModelError(
            f"serving on {host} exposes the model beyond this machine; set an API key with --api-key or "
            f"${API_KEY_ENV}, or bind 127.0.0.1"
        )
    if key is not None and len(key) < 8:
        raise LLModelError(
            "the API key is too short; use at least 8 characters (e.g. `openssl rand -hex 16`)"
        )
    return key


def parse_adapters(values: list[str], workspace: Path | None = None) -> dict[str, Path]:
    """``name=PATH`` pairs (or a workspace adapter's name, or a directory named after its adapter) → name → dir."""
    from engine.workspace import validate_name

    adapters: dict[str, Path] = {}
    for value in values:
        name, has_path, path = value.partition("=")
        if not has_path:
            candidate = Path(value)
            if candidate.is_dir():
                name, path = candidate.name, value
            elif workspace is not None and (workspace / "adapters" / value).is_dir():
                path = str(workspace / "adapters" / value)
            else:
                raise LLModelError(
                    f"no adapter {value!r}: give NAME=PATH, an adapter folder, or a workspace adapter's name"
                )
        validate_name(name, "adapter name")
        if name in adapters:
            raise LLModelError(f"adapter name {name!r} is given twice; name each adapter once")
        if not Path(path).is_dir():
            raise LLModelError(f"adapter {name}: {path} is not a directory")
        adapters[name] = Path(path).resolve()
    return adapters


def serve(
    options: ServeOptions,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    rate_limit: float | None = None,
) -> None:
    """Load the model in the background and serve HTTP until interrupted."""
    import uvicorn

    from engine.server.app import create_server

    key = resolve_api_key(host, api_key)
    served = ServedModel(options)
    app = create_server(served, api_key=key, rate_limit=rate_limit)
    served.start_loading()
    try:
        uvicorn.run(
            app, host=host, port=port, log_level="warning", access_log=False, timeout_graceful_shutdown=3
        )
    finally:
        served.stop()
