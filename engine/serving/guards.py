"""Who may call the server and how much: API keys, per-key token buckets, request body size."""

from __future__ import annotations

import hmac
import threading
import time
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.serving.errors import error_response

PUBLIC_PATHS = frozenset({"/health"})


def key_matches(header: str, api_key: str) -> bool:
    """Constant-time check of an ``Authorization: Bearer <key>`` header."""
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), api_key.encode())


@dataclass
class TokenBucket:
    """``rate`` requests per second on average, bursts up to ``capacity``."""

    rate: float
    capacity: float
    tokens: float = -1.0
    updated: float = 0.0

    def take(self, now: float) -> bool:
        if self.tokens < 0:
            self.tokens, self.updated = self.capacity, now
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class RateLimiter:
    """One token bucket per caller (API key, or client address without keys)."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate, self.capacity = rate, burst or max(1.0, 2 * rate)
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def allow(self, caller: str) -> bool:
        with self._lock:
            bucket = self._buckets.setdefault(caller, TokenBucket(self.rate, self.capacity))
            return bucket.take(time.monotonic())


class GuardMiddleware:
    """ASGI middleware: body size limit, then API key, then rate limit — before any route runs."""

    def __init__(self, app: ASGIApp, *, api_key: str | None, limiter: RateLimiter | None, max_body: int) -> None:
        self.app, self.api_key, self.limiter, self.max_body = app, api_key, limiter, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        path = scope.get("path", "")
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await error_response(413, f"request body of {length} bytes exceeds the limit of {self.max_body}")(scope, receive, send)
            return
        authorized = self.api_key is None or key_matches(headers.get("authorization", ""), self.api_key)
        if path not in PUBLIC_PATHS and not authorized:
            message = "invalid or missing API key; send 'Authorization: Bearer <key>'"
            await error_response(401, message, code="invalid_api_key")(scope, receive, send)
            return
        if path not in PUBLIC_PATHS and self.limiter is not None:
            client = scope.get("client") or ("?", 0)
            caller = headers.get("authorization") or client[0]
            if not self.limiter.allow(caller):
                await error_response(429, "rate limit exceeded; slow down and retry", code="rate_limit_exceeded")(scope, receive, send)
                return
        await self.app(scope, self._limited(receive), send)

    def _limited(self, receive: Receive) -> Receive:
        """Count streamed (chunked) body bytes too; past the limit the body is cut off as a client disconnect."""
        seen = 0

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    return {"type": "http.disconnect"}
            return message

        return wrapped
