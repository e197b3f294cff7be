"""What every route of the model server may depend on: the caller's access, and the model once it is ready."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from engine.server.errors import APIError
from engine.server.guards import authorized, rate_limited
from engine.server.metrics import ServerMetrics
from engine.server.served_model import ServedModel

# Every router but the public /health: the API key first, then the caller's rate limit.
PROTECTED = [Depends(authorized), Depends(rate_limited)]


def served_model(request: Request) -> ServedModel:
    """The served model, or 503 while it loads (or failed to load, saying why)."""
    served: ServedModel = request.app.state.served
    if not served.ready:
        problem = served.problem
        code = "model_unavailable" if problem else "model_loading"
        raise APIError(503, problem or "the model is still loading; retry shortly", code=code)
    return served


def server_metrics(request: Request) -> ServerMetrics:
    return request.app.state.metrics


Served = Annotated[ServedModel, Depends(served_model)]
Metrics = Annotated[ServerMetrics, Depends(server_metrics)]
