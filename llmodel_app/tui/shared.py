"""Typed access from a view to the workbench it lives in: the shared state the app holds and pushes down
(client, listings, the picked checkpoint), read where a lazily mounted view catches up."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.dom import DOMNode

from engine.errors import LLModelError

if TYPE_CHECKING:
    from engine.client import EngineClient
    from llmodel_app.tui.app import LLModelApp


def workbench(node: DOMNode) -> LLModelApp:
    """The LLModelApp that ``node`` is mounted in (every view of the workbench is)."""
    return cast("LLModelApp", node.app)


def require_client(node: DOMNode) -> EngineClient:
    """The engine's client, or a one-line error saying it is not connected and how it comes back."""
    client = workbench(node).client
    if client is None:
        raise LLModelError(
            "not connected to the engine; it reconnects when the engine is back (ctrl+e starts it)"
        )
    return client
