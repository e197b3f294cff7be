"""Who may call the server and how much: the API key and rate limit (route dependencies), the body size (ASGI).

The key and the limiter are FastAPI dependencies of every router but the public ``/health``; the body limit is
middleware, because it must refuse an oversized body before anything reads it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.net import bearer_matches
from engine.server.errors import APIError, error_response


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
    """One token bucket per caller (API key, or client address without keys), for a bounded number of callers.

    A bucket left alone for ``capacity / rate`` seconds is full again, no different from a new one, so it is
    dropped; beyond ``max_callers`` recent callers the least recently seen is dropped too (it starts afresh).
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        max_callers: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate, self.capacity = rate, burst or max(1.0, 2 * rate)
        self.max_callers = max_callers
        self._refill_seconds = self.capacity / rate
        self._clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()  # least recently seen first
        self._lock = threading.Lock()

    def allow(self, caller: str) -> bool:
        with self._lock:
            now = self._clock()
            self._drop_refilled(now)
            bucket = self._buckets.pop(caller, None)
            if bucket is None:
                bucket = TokenBucket(self.rate, self.capacity)
            self._buckets[caller] = bucket
            while len(self._buckets) > self.max_callers:
                self._buckets.popitem(last=False)
            return bucket.take(now)

    @property
    def callers(self) -> int:
        """How many callers' buckets are held."""
        return len(self._buckets)

    def _drop_refilled(self, now: float) -> None:
        """Drop the buckets full again by now: the least recently seen first, up to the first still refilling."""
        while self._buckets:
            caller, bucket = next(iter(self._buckets.items()))
            if now - bucket.updated < self._refill_seconds:
                return
            del self._buckets[caller]


@dataclass(frozen=True)
class Guard:
    """The server's access settings, kept on ``app.state.guard``."""

    api_key: str | None = None
    limiter: RateLimiter | None = None


def authorized(request: Request) -> None:
    """Dependency: the request carries the API key (when the server has one), else 401."""
    guard: Guard = request.app.state.guard
    if guard.api_key is not None and not bearer_matches(
        request.headers.get("authorization", ""), guard.api_key
    ):
        raise APIError(
            401, "invalid or missing API key; send 'Authorization: Bearer <key>'", code="invalid_api_key"
        )


def rate_limited(request: Request) -> None:
    """Dependency: the caller (its key, else its address) is within the rate limit, else 429."""
    guard: Guard = request.app.state.guard
    if guard.limiter is None:
        return
    caller = request.headers.get("authorization") if guard.api_key else None
    if not caller:
        caller = request.client.host if request.client else "unknown"
    if not guard.limiter.allow(caller):
        raise APIError(429, "rate limit exceeded; slow down and retry", code="rate_limit_exceeded")


class BodyLimitMiddleware:
    """ASGI middleware: refuse a body over ``max_body`` bytes, announced or streamed (chunked), with 413.

    The body is read here first (it is small by definition) and handed on whole, so a refusal never comes after
    a route has started; a refused body is left unread, so that answer says ``Connection: close``.
    """

    def __init__(self, app: ASGIApp, *, max_body: int) -> None:
        self.app, self.max_body = app, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers", [])).get(b"content-length", b"").decode("latin-1")
        if length.isdigit() and int(length) > self.max_body:
            await self._refuse(length, scope, receive, send)
            return
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client left before sending its body
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_body:
                await self._refuse(f"more than {self.max_body}", scope, receive, send)
                return
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _refuse(self, size: str, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"request body of {size} bytes exceeds the limit of {self.max_body}"
        await error_response(413, message, headers={"Connection": "close"})(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive channel that gives ``body`` as one message, then whatever the client sends next (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
