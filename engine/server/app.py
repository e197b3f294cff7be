"""The model server's FastAPI app: the routers of :mod:`engine.server.routes`, its guards and its errors.

Errors are mapped from exception types to OpenAI-shaped answers: :class:`APIError` carries its own status,
``BusyError`` (a full queue) is 429, ``NotFoundError`` 404, any other ``LLModelError`` 400, validation 422, and
anything unexpected 500 without a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.errors import BusyError, LLModelError, NotFoundError
from engine.server.errors import APIError, error_response
from engine.server.guards import BodyLimitMiddleware, Guard, RateLimiter
from engine.server.metrics import RequestMetricsMiddleware, ServerMetrics
from engine.server.routes import openai, seed, tokenizer
from engine.server.served_model import ServedModel

MAX_BODY_BYTES = 1 << 20


def create_server(
    served: ServedModel,
    *,
    api_key: str | None = None,
    rate_limit: float | None = None,
    max_body: int = MAX_BODY_BYTES,
) -> FastAPI:
    """Build the server app around ``served`` (which may still be loading)."""
    app = FastAPI(title="LLModel model server", version="1")
    app.state.served = served
    app.state.guard = Guard(api_key, RateLimiter(rate_limit) if rate_limit else None)
    app.state.metrics = metrics = ServerMetrics(
        lambda: served.batcher.stats() if served.batcher is not None and served.ready else {}
    )
    # Plain ASGI middleware only: Starlette's BaseHTTPMiddleware hides a client's disconnect from the routes.
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    app.add_middleware(BodyLimitMiddleware, max_body=max_body)

    _add_error_handlers(app)
    app.include_router(seed.public)
    app.include_router(seed.router)
    app.include_router(openai.router)
    app.include_router(tokenizer.router)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(_: Request, error: APIError) -> JSONResponse:
        return error_response(error.status, error.message, param=error.param, code=error.code)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        where, message = closest_problem(error.errors(), error.body)
        return error_response(
            422, f"{where}: {message}" if where else message, param=where or None, code="invalid_parameter"
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        return error_response(error.status_code, str(error.detail), headers=error.headers)

    @app.exception_handler(BusyError)
    async def busy(_: Request, error: BusyError) -> JSONResponse:
        return error_response(429, str(error), code="server_busy")

    @app.exception_handler(NotFoundError)
    async def not_found(_: Request, error: NotFoundError) -> JSONResponse:
        return error_response(404, str(error), code="not_found")

    @app.exception_handler(LLModelError)
    async def user_error(_: Request, error: LLModelError) -> JSONResponse:
        return error_response(400, str(error))

    @app.exception_handler(Exception)
    async def crash(_: Request, error: Exception) -> JSONResponse:  # never a traceback to the client
        return error_response(500, f"internal error ({type(error).__name__}); see the server log")


def closest_problem(errors: Sequence[Mapping[str, Any]], body: Any) -> tuple[str, str]:
    """The one validation error to answer (where, what): of a union's alternatives, the one that reached deepest
    into the body, a broken bound before a wrong type (``stop.0: ...`` for ``"stop": [5]``, not ``stop: ...``)."""
    paths = [request_path(e, body) for e in errors]
    best = max(
        range(len(errors)),
        key=lambda i: (
            len(paths[i].split(".")) if paths[i] else 0,
            not str(errors[i].get("type")).endswith("_type"),
        ),
    )
    message = str(errors[best].get("msg", "invalid")).removeprefix("Value error, ")
    return paths[best], message


def request_path(error: Mapping[str, Any], body: Any) -> str:
    """Where in the request body a validation error lies, in the body's own terms (``stop.0``, ``messages.1.role``).

    Pydantic's location also names the union member it tried (``function-after[...]``, ``list[int]``); a step is
    kept only where the body has it (a key of an object, an index of a list), or where it is the field found
    missing.
    """
    loc = list(error.get("loc", ()))
    if loc[:1] == ["body"]:
        loc = loc[1:]
    path, node = [], body
    for index, step in enumerate(loc):
        if isinstance(node, dict) and isinstance(step, str) and step in node:
            path.append(step)
            node = node[step]
        elif isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
            path.append(str(step))
            node = node[step]
        elif index == len(loc) - 1 and error.get("type") == "missing":
            path.append(str(step))
    return ".".join(path)
