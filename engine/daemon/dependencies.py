"""What the daemon's routes depend on: the access token, and the daemon's parts kept on ``app.state``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from engine.daemon.broker import Broker
from engine.daemon.model_servers import ModelServerManager
from engine.daemon.supervisor import Supervisor
from engine.net import bearer_matches


@dataclass
class DaemonState:
    """The daemon's parts the routes use."""

    supervisor: Supervisor
    broker: Broker
    token: str
    servers: ModelServerManager
    on_shutdown: Callable[[bool], None] | None = None  # called with whether to stop the jobs too


def authorized(request: Request) -> None:
    """Dependency: ``Authorization: Bearer <token>`` with the token the daemon wrote to its record, else 401."""
    state: DaemonState = request.app.state.daemon
    if not bearer_matches(request.headers.get("authorization", ""), state.token):
        raise HTTPException(status_code=401, detail="missing or wrong engine token")


def daemon_state(request: Request) -> DaemonState:
    return request.app.state.daemon


State = Annotated[DaemonState, Depends(daemon_state)]
PROTECTED = [Depends(authorized)]
