"""Prometheus metrics, one registry per app (so tests can build many apps), served at ``GET /metrics``.

Several workers (``seqcast serve --workers N``): ``serve`` gives every worker the same temporary folder
(``PROMETHEUS_MULTIPROC_DIR``, read by prometheus-client when it is imported, and by the settings) and
removes it at exit. Each worker's counters and histograms then live in files there, and ``/metrics``,
whichever worker answers, sums them over all workers (prometheus-client's multiprocess mode). The models
gauge is per worker (a ``pid`` label), as each worker has its own cache.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.cache import LoadedModel

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    def __init__(self, multiprocess_dir: Path | None = None):
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry()
        if multiprocess_dir is not None:
            # the metrics below write to files in the folder; the registry reads every worker's back, summed
            multiprocess.MultiProcessCollector(self.registry, path=str(multiprocess_dir))
        own = None if multiprocess_dir is not None else self.registry
        self.requests = Counter(
            "seqcast_http_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=own,
        )
        self.latency = Histogram(
            "seqcast_http_request_seconds",
            "HTTP request latency by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.series = Counter(
            "seqcast_forecast_series",
            "series forecast, by model and version",
            ["model", "version"],
            registry=own,
        )
        self.loads = Counter(
            "seqcast_model_loads", "model versions loaded from the registry", ["model", "kind"], registry=own
        )
        self.load_seconds = Histogram(
            "seqcast_model_load_seconds",
            "download + load + warm-up time of a model version",
            buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60),
            registry=own,
        )
        self.swaps = Counter("seqcast_model_swaps", "alias moves picked up (hot swaps)", ["model"], registry=own)
        self.loaded = Gauge(
            "seqcast_models_loaded",
            "cache entries (aliases and versions); with several workers, each worker's at its last scrape",
            registry=own,
            multiprocess_mode="liveall",
        )
        self.batch_size = Histogram(
            "seqcast_forecast_batch_size",
            "series per compiled call of POST /v1/forecast (coalesced concurrent requests)",
            buckets=BATCH_BUCKETS,
            registry=own,
        )

    def close(self) -> None:
        """A worker that stops takes its per-worker gauge with it (its counters keep counting in the sums)."""
        if self.multiprocess_dir is not None:
            multiprocess.mark_process_dead(os.getpid(), str(self.multiprocess_dir))

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
