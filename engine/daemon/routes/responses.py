"""The error answers the engine's routes declare in their OpenAPI schema: ``{"detail": ...}``, as FastAPI gives."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Problem(BaseModel):
    """An error: a one-line message, or (a request the schema refuses) FastAPI's list of validation errors."""

    detail: str | list[dict[str, Any]]


WHEN = {
    400: "The request cannot be done in the workspace's state (the message says why and what to do)",
    401: "The request did not send the engine's token as 'Authorization: Bearer <token>'",
    404: "The run, adapter, study or snapshot the request names does not exist",
    422: "The request does not match this schema, or a job spec cannot run (the message names the field)",
}

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "description": description} for status, description in WHEN.items()
}
