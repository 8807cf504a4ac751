"""Prometheus metrics, one registry per app (so tests can build many apps), served at ``GET /metrics``."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.cache import LoadedModel

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "seqcast_http_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "seqcast_http_request_seconds",
            "HTTP request latency by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.series = Counter(
            "seqcast_forecast_series",
            "series forecast, by model and version",
            ["model", "version"],
            registry=self.registry,
        )
        self.loads = Counter(
            "seqcast_model_loads", "model versions loaded from the registry", ["model", "kind"], registry=self.registry
        )
        self.load_seconds = Histogram(
            "seqcast_model_load_seconds",
            "download + load + warm-up time of a model version",
            buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.swaps = Counter(
            "seqcast_model_swaps", "alias moves picked up (hot swaps)", ["model"], registry=self.registry
        )
        self.loaded = Gauge("seqcast_models_loaded", "cache entries (aliases and versions)", registry=self.registry)

    def model_loaded(self, loaded: LoadedModel, seconds: float) -> None:
        """The cache's ``on_load``: one more load of this model and kind, and how long it took."""
        self.loads.labels(loaded.name, loaded.kind).inc()
        self.load_seconds.observe(seconds)


class MetricsMiddleware:
    """Counts and times every HTTP request, labelled by the route template (not the raw path)."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(scope["method"], label, str(status)).inc()
            self.metrics.latency.labels(label).observe(time.perf_counter() - started)
