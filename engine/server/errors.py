"""OpenAI-shaped errors: ``{"error": {"message", "type", "param", "code"}}`` with the matching status code."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi.responses import JSONResponse
from pydantic import BaseModel

TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_exceeded",
    500: "server_error",
    503: "service_unavailable",
}


class APIError(Exception):
    """An error answered to the client in OpenAI's shape."""

    def __init__(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self) -> dict[str, object]:
        return error_body(self.status, self.message, param=self.param, code=self.code)


def error_body(
    status: int, message: str, *, param: str | None = None, code: str | None = None
) -> dict[str, object]:
    return {
        "error": {
            "message": message,
            "type": TYPES.get(status, "invalid_request_error"),
            "param": param,
            "code": code,
        }
    }


def error_response(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    extra = dict(headers or {})
    if status == 401:
        extra.setdefault("WWW-Authenticate", "Bearer")
    body = error_body(status, message, param=param, code=code)
    return JSONResponse(status_code=status, content=body, headers=extra or None)


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(BaseModel):
    """OpenAI's error shape, as every error of the server is answered."""

    error: ErrorDetail


WHEN = {
    400: "The request cannot be served as asked: a body that is not JSON, a prompt and max_tokens beyond the "
    "model's context (code context_length_exceeded), a token id beyond the vocabulary",
    401: "The server has an API key and the request did not send it as 'Authorization: Bearer <key>'",
    404: "The request names a model (or adapter) the server does not serve",
    413: "The request body is over the server's size limit",
    422: "The request does not match this schema; the message and param name the field",
    429: "The caller is over the server's rate limit, or the generation queue is full",
    503: "The model is still loading, or failed to load (the message says why)",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI ``responses`` for the error statuses a route may answer, each in OpenAI's error shape."""
    return {status: {"model": ErrorBody, "description": WHEN[status]} for status in statuses}


# Before OpenAPI 3.2, the schema of an event stream describes one event.
SSE_EVENT = {
    "type": "object",
    "properties": {
        "event": {"type": "string"},
        "data": {"type": "string", "description": "a JSON object (a chunk, or an error), or [DONE]"},
    },
    "required": ["data"],
}


def streamed_or_json(what: str) -> dict[int | str, dict[str, object]]:
    """OpenAPI ``responses`` of a route that answers JSON, or server-sent events when the body asks ``stream``."""
    return {
        200: {
            "description": f'{what} as JSON; with "stream": true, as server-sent events (data: JSON, ending '
            "with data: [DONE] where OpenAI's API does)",
            "content": {"text/event-stream": {"schema": SSE_EVENT}},
        }
    }
