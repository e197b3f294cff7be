"""The daemon's HTTP API (FastAPI): the routers of :mod:`engine.daemon.routes`, every route but ``/api/health``
behind the workspace's access token.

Errors are mapped from exception types: ``SpecError`` (a job spec that cannot run) is 422, ``NotFoundError`` 404,
any other ``LLModelError`` 400.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from engine.daemon.broker import Broker
from engine.daemon.dependencies import DaemonState
from engine.daemon.model_servers import ModelServerManager
from engine.daemon.routes import adapters, jobs, runs, serve, studies, workspace
from engine.daemon.supervisor import Supervisor
from engine.errors import LLModelError, NotFoundError
from engine.specs import SpecError


def create_app(
    supervisor: Supervisor,
    broker: Broker,
    token: str,
    *,
    servers: ModelServerManager | None = None,
    on_shutdown: Callable[[bool], None] | None = None,
) -> FastAPI:
    """Build the API; every route but /api/health needs ``Authorization: Bearer <token>``. ``on_shutdown(jobs)``
    is what ``POST /api/shutdown`` calls (``jobs``: stop the jobs too)."""
    # No /docs, /redoc or /openapi.json: they would be routes outside the token check.
    app = FastAPI(title="LLModel engine", version="1", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.daemon = DaemonState(
        supervisor, broker, token, servers or ModelServerManager(supervisor.workspace), on_shutdown
    )

    @app.exception_handler(SpecError)
    async def bad_spec(_: Request, error: SpecError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(error)})

    @app.exception_handler(NotFoundError)
    async def not_found(_: Request, error: NotFoundError) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": str(error)})

    @app.exception_handler(LLModelError)
    async def user_error(_: Request, error: LLModelError) -> JSONResponse:
        return JSONResponse(status_code=400, content={"detail": str(error)})

    app.include_router(workspace.public)
    app.include_router(workspace.router)
    app.include_router(runs.router)
    app.include_router(jobs.router)
    app.include_router(serve.router)
    app.include_router(adapters.router)
    app.include_router(studies.router)
    return app
