"""Prometheus metrics, one registry per app (so tests can build many apps), served at ``GET /metrics``.

Several workers (``seqcast serve --workers N``): ``serve`` gives every worker the same temporary folder
(``PROMETHEUS_MULTIPROC_DIR``, read by prometheus-client when it is imported, and by the settings) and
removes it at exit. Each worker's counters and histograms then live in files there, and ``/metrics``,
whichever worker answers, sums them over all workers (prometheus-client's multiprocess mode). The models
gauge is per worker (a ``pid`` label), as each worker has its own cache.

Retraining passes run in other processes (``seqcast retrain``, ``seqcast scheduler``), so what operators alert on
(the last success, decisions, durations) is read at scrape time from the passes' own MLflow record
(:func:`pipelines.retraining.facts.pass_facts`, a few runs per scrape, on the model cache's registry threads and
waited for at most ``SEQCAST_REGISTRY_TIMEOUT_SECONDS``: a slow tracking store never holds a scrape) and written by
:class:`RetrainingCollector`: whichever worker or replica answers, it says the same, and nothing is lost when the API
restarts.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipelines.retraining.facts import PASS_STATUSES, SERIES_STATUSES, PassFacts
from service.cache import LoadedModel

log = logging.getLogger(__name__)

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

        self.registry.register(BuildInfo())

    def exposition(self, facts: PassFacts | None | Exception) -> bytes:
        """The text ``/metrics`` answers: this app's (all workers') metrics and the retraining passes' ``facts``
        as read from the tracking store (an exception: why they could not be)."""
        passes = CollectorRegistry()
        passes.register(RetrainingCollector(facts))
        return generate_latest(self.registry) + generate_latest(passes)

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


def _build_version() -> str:
    try:
        return version("seqcast")
    except PackageNotFoundError:  # run from a checkout that is not installed
        return "unknown"


class BuildInfo:
    """``seqcast_build_info{version, python} 1``: which build answers (join it onto other series by instance)."""

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "seqcast_build_info", "the seqcast build serving: version, Python", labels=["version", "python"]
        )
        info.add_metric([_build_version(), platform.python_version()], 1)
        yield info


class RetrainingCollector:
    """The retraining passes' facts (:func:`pipelines.retraining.facts.pass_facts`) as metrics. Before any pass
    (None): the counters at 0 and no timestamps; the store unreachable or too slow (an exception):
    ``seqcast_retrain_facts_readable 0`` and nothing else (an alert on a stale last success then has no value to
    read, and says so)."""

    def __init__(self, facts: PassFacts | None | Exception):
        self.facts = facts

    def collect(self) -> Iterator[Metric]:
        readable = GaugeMetricFamily(
            "seqcast_retrain_facts_readable", "1 when this scrape could read the retraining passes from MLflow"
        )
        facts = self.facts
        if isinstance(facts, Exception):
            log.warning(
                "/metrics: could not read the retraining passes from MLflow: %s", str(facts).splitlines()[0][:300]
            )
            readable.add_metric([], 0)
            yield readable
            return
        readable.add_metric([], 1)
        yield readable
        series = CounterMetricFamily(
            "seqcast_retrain_series", "series challenged by retraining passes, by outcome", labels=["decision"]
        )
        passes = CounterMetricFamily("seqcast_retrain_passes", "retraining passes ended, by how", labels=["status"])
        totals = facts.totals if facts is not None else None
        for status in SERIES_STATUSES:
            series.add_metric([status], totals.series.get(status, 0.0) if totals else 0.0)
        for status in PASS_STATUSES:
            passes.add_metric([status], totals.passes.get(status, 0.0) if totals else 0.0)
        yield series
        yield passes
        yield SummaryMetricFamily(
            "seqcast_retrain_pass_duration_seconds",
            "retraining passes' wall time (count: passes that ended and logged it)",
            count_value=int(sum(totals.passes.values())) if totals else 0,
            sum_value=totals.seconds if totals else 0.0,
        )
        if facts is None:
            return
        for name, doc, value in (
            (
                "seqcast_retrain_last_pass_start_timestamp_seconds",
                "when the latest pass started (it may still run)",
                facts.last_start,
            ),
            ("seqcast_retrain_pass_running", "1 while the latest pass runs", float(facts.running)),
            ("seqcast_retrain_last_pass_end_timestamp_seconds", "when the latest ended pass ended", facts.last_end),
            ("seqcast_retrain_last_pass_duration_seconds", "how long the latest ended pass ran", facts.last_seconds),
            (
                "seqcast_retrain_last_success_timestamp_seconds",
                "when the latest pass that finished (no failure) ended",
                facts.last_success,
            ),
        ):
            if value is not None:
                yield GaugeMetricFamily(name, doc, value=value)
        if facts.last_status is not None:
            last = GaugeMetricFamily(
                "seqcast_retrain_last_pass_status",
                "how the latest ended pass ended (1 on its status)",
                labels=["status"],
            )
            for status in PASS_STATUSES:
                last.add_metric([status], float(facts.last_status == status))
            yield last
