"""Running the model server: the bind policy (loopback unless a key guards it), then uvicorn."""

from __future__ import annotations

import ipaddress
import os

import uvicorn

from engine.errors import LLModelError
from engine.serving.server import create_server
from engine.serving.service import ModelService, ServeOptions

API_KEY_ENV = "LLMODEL_API_KEY"


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_api_key(host: str, api_key: str | None) -> str | None:
    """The key to require: ``api_key``, else $LLMODEL_API_KEY; refuse a non-loopback bind without one."""
    key = api_key or os.environ.get(API_KEY_ENV) or None
    if key is None and not is_loopback(host):
        raise LLModelError(
            f"serving on {host} exposes the model beyond this machine; set an API key with --api-key or "
            f"${API_KEY_ENV}, or bind 127.0.0.1"
        )
    if key is not None and len(key) < 8:
        raise LLModelError("the API key is too short; use at least 8 characters (e.g. `openssl rand -hex 16`)")
    return key


def serve(
    options: ServeOptions, *, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
    rate_limit: float | None = None,
) -> None:  # fmt: skip
    """Load the model in the background and serve HTTP until interrupted."""
    key = resolve_api_key(host, api_key)
    service = ModelService(options)
    app = create_server(service, api_key=key, rate_limit=rate_limit)
    service.start_loading()
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, timeout_graceful_shutdown=3)
    finally:
        service.stop()
