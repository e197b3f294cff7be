"""Prometheus metrics of the model server."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class ServerMetrics:
    """Requests, tokens in/out, latency histograms, and the batcher's queue depth and batch size."""

    def __init__(self, stats: Callable[[], dict[str, Any]]) -> None:
        self.registry = CollectorRegistry()
        self._stats = stats
        self.requests = Counter(
            "llmodel_requests", "HTTP requests", ["endpoint", "status"], registry=self.registry
        )
        self.prompt_tokens = Counter(
            "llmodel_prompt_tokens", "Prompt tokens processed", registry=self.registry
        )
        self.generated_tokens = Counter(
            "llmodel_generation_tokens", "Tokens generated", registry=self.registry
        )
        self.latency = Histogram(
            "llmodel_request_latency_seconds",
            "Request latency",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ttft = Histogram(
            "llmodel_time_to_first_token_seconds",
            "Time to first token",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "llmodel_queue_depth", "Requests waiting for a batch slot", registry=self.registry
        )
        self.batch_size = Gauge(
            "llmodel_batch_size", "Sequences in the last decode step", registry=self.registry
        )
        self.active = Gauge("llmodel_active_requests", "Sequences being generated", registry=self.registry)

    def render(self) -> bytes:
        """The exposition text, with the gauges read from the batcher now."""
        stats = self._stats()
        self.queue_depth.set(stats.get("queue_depth", 0))
        self.batch_size.set(stats.get("last_batch_size", 0))
        self.active.set(stats.get("active", 0))
        return generate_latest(self.registry)


class RequestMetricsMiddleware:
    """ASGI middleware: counts each request by route and status, and times it."""

    def __init__(self, app: ASGIApp, *, metrics: ServerMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", "other")
            self.metrics.requests.labels(endpoint, str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
