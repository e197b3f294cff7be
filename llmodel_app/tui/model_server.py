"""The model server as the workbench sees it: start through the engine, wait until ready, its local address."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from engine.errors import LLModelError
from engine.net import free_port, is_loopback, local_host

if TYPE_CHECKING:
    from engine.client import EngineClient

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


# What each health the engine reports (``EngineClient.serve_status``) means to someone waiting for a reply.
HEALTH_PHRASES = {
    "starting": "starting",
    "loading": "loading the model",
    "ok": "answering",
    "error": "failed to load",
    "unreachable": "not answering",
}

Status = dict[str, Any]


def health_phrase(status: Status) -> str:
    """The server's health in words ("starting", "loading the model", "answering", ...)."""
    health = str(status.get("health") or "starting")
    return HEALTH_PHRASES.get(health, health)


def same_model(served: str | None, wanted: str | None) -> bool:
    """Whether the server's model path is ``wanted`` (both as the engine wrote them, normalised)."""
    return bool(served and wanted) and os.path.normpath(str(served)) == os.path.normpath(str(wanted))


def wait_ready(
    client: EngineClient,
    cancelled: Callable[[], bool],
    timeout: float = READY_TIMEOUT,
    on_status: Callable[[Status], None] | None = None,
    just_started: bool = False,
) -> Status:
    """Poll the server's status until the server answers healthy, passing each new health to ``on_status``; raises
    when it stops, fails to load or never gets ready. A server ``just_started`` that stops answering is busy
    loading its model (its process is alive), so it reads "loading", not "unreachable"."""
    deadline = time.monotonic() + timeout
    seen: object = None
    while time.monotonic() < deadline and not cancelled():
        status: Status = dict(client.serve_status())
        if not status.get("running"):
            raise LLModelError("the model server stopped while loading; see serve.log in the workspace")
        if just_started and status.get("health") == "unreachable":
            status = {**status, "health": "loading"}
        if on_status is not None and (status.get("health"), status.get("model")) != seen:
            seen = (status.get("health"), status.get("model"))
            on_status(status)
        if status.get("health") == "ok":
            return status
        if status.get("health") == "error":
            reason = status.get("error") or "see serve.log in the workspace"
            raise LLModelError(f"the model server could not load {status.get('model')}: {reason}")
        time.sleep(0.25)
    raise LLModelError("the model server did not get ready in time; see serve.log in the workspace")


def served_name(model: str) -> str:
    """The name the model server answers to for its base model (the OpenAI ``model`` field): the run folder's
    name, or the checkpoint's when it lies in no run (as ``engine/server/served_model.py`` names it)."""
    path = PurePath(os.path.normpath(model))
    return path.parent.parent.name if path.name.startswith("step-") else path.name


def restart_needed(
    status: Status,
    model: str | None,
    adapter: str | None = None,
    same: Callable[[str | None, str | None], bool] = same_model,
) -> bool:
    """Whether the server of ``status`` must (re)start to answer with ``model`` and ``adapter`` (None: the
    base). A running one that loads the same checkpoint (``same``: a run folder loads its newest) and serves the
    adapter is kept, whatever else it serves or lacks; any running one is kept when ``model`` is None."""
    if not status.get("running"):
        return True
    if model and not same(str(status.get("model") or ""), model):
        return True
    return adapter is not None and adapter not in (status.get("adapters") or {})


def ensure_serving(
    client: EngineClient | None,
    model: str | None,
    cancelled: Callable[[], bool],
    *,
    key: str | None = None,
    on_status: Callable[[Status], None] | None = None,
    adapters: dict[str, str] | None = None,
    adapter: str | None = None,
    same: Callable[[str | None, str | None], bool] = same_model,
) -> Status:
    """The status of a ready server that answers with ``model`` and ``adapter`` (see ``restart_needed``).

    A server that must restart is replaced on the same host, port and API key (``key``: the workbench knows it
    only for servers it started); with none running, ``model`` starts on a free loopback port. Either way it
    loads every one of ``adapters`` (name → folder), so switching between the base and its adapters afterwards
    never restarts it.
    """
    if client is None:
        raise LLModelError("not connected to the engine; it reconnects when the engine is back")
    status: Status = dict(client.serve_status())
    running = bool(status.get("running"))
    started = restart_needed(status, model, adapter, same)
    if running and started:
        if status.get("auth") and not key:
            raise LLModelError(
                f"the model server serves {status.get('model')} behind an API key this workbench does not "
                "know; stop it in the Serve tab to serve the checkpoint you picked"
            )
        if not model:
            raise LLModelError("choose a checkpoint to chat with first (the sidebar or the model list)")
        client.serve_stop()
        client.serve_start(
            model,
            host=status.get("host", "127.0.0.1"),
            port=status["port"],
            api_key=key if status.get("auth") else None,
            adapters=dict(adapters) if adapters else None,
        )
    elif started:
        if not model:
            raise LLModelError("choose a checkpoint to chat with first (the sidebar or the model list)")
        client.serve_start(
            model, host="127.0.0.1", port=free_port(), adapters=dict(adapters) if adapters else None
        )
    return wait_ready(client, cancelled, on_status=on_status, just_started=started)


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
