"""The model server as the workbench sees it: start through the engine, wait until ready, its local address."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from engine.errors import LLModelError
from engine.net import free_port, is_loopback, local_host

READY_TIMEOUT = 180.0


def local_url(status: dict[str, Any]) -> str:
    """Where this machine reaches the server (a wildcard bind is reached on loopback)."""
    return f"http://{local_host(status.get('host', '127.0.0.1'))}:{status['port']}"


def check_bind(host: str, port: str, api_key: str) -> str | None:
    """The reason these REST settings cannot work, or None; the engine checks again."""
    if not host.strip():
        return "enter a host (127.0.0.1 keeps the server on this machine)"
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        return "the port must be a number from 1 to 65535"
    if not is_loopback(host.strip()) and not api_key:
        return f"serving on {host} exposes the model beyond this machine; enter an API key (8+ characters)"
    if api_key and len(api_key) < 8:
        return "the API key is too short; use at least 8 characters"
    return None


def wait_ready(client: Any, cancelled: Callable[[], bool], timeout: float = READY_TIMEOUT) -> dict[str, Any]:
    """Poll ``/api/serve`` until the server answers healthy; raises when it stops or never gets ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not cancelled():
        status = client.get("/api/serve")
        if not status.get("running"):
            raise LLModelError("the model server stopped while loading; see serve.log in the workspace")
        if status.get("health") == "ok":
            return status
        time.sleep(0.25)
    raise LLModelError("the model server did not get ready in time; see serve.log in the workspace")


def ensure_serving(
    client: Any, model: str | None, cancelled: Callable[[], bool], *, restart: bool = False
) -> dict[str, Any]:
    """The running server's status, starting ``model`` on a free loopback port first when none runs (or, with
    ``restart``, when the running one serves another model)."""
    if client is None:
        raise LLModelError("not connected to the engine; it reconnects when the engine is back")
    status = client.get("/api/serve")
    if restart and status.get("running") and model and status.get("model") != model:
        client.delete("/api/serve")
        status = {"running": False}
    if not status.get("running"):
        if not model:
            raise LLModelError("choose a checkpoint to chat with first (the sidebar or the model list)")
        client.post("/api/serve", {"model": model, "host": "127.0.0.1", "port": free_port()})
    return wait_ready(client, cancelled)


def server_error(response: Any) -> LLModelError:
    """The model server's error answer (OpenAI-shaped) as one readable line."""
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text
    return LLModelError(f"the model server answered {response.status_code}: {message}")


def post_to_server(
    status: dict[str, Any], path: str, body: dict[str, Any], key: str | None
) -> dict[str, Any]:
    """POST ``body`` to the running model server's ``path`` and return its JSON answer."""
    import httpx  # off the start-up path

    headers = {"Authorization": f"Bearer {key}"} if key and status.get("auth") else {}
    response = httpx.post(f"{local_url(status)}{path}", json=body, headers=headers, timeout=60.0)
    if response.status_code >= 400:
        raise server_error(response)
    return response.json()
