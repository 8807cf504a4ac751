"""The FastAPI app: forecast, classify, model and operations routers over one shared model cache.

``create_app(settings)`` builds a self-contained app (own cache, own metrics registry); ``seqcast serve``
runs it under uvicorn. On startup a background thread loads ``SEQCAST_PRELOAD_MODELS``, retrying with backoff
while the registry is unreachable or a model cannot be loaded (``/ready`` is 503 until each is served), and
the cache starts polling aliases every ``SEQCAST_MODEL_POLL_SECONDS``; the series store is opened and migrated
(``service/store.py``).
"""

from __future__ import annotations

import gc
import logging
import os
import threading
from contextlib import asynccontextmanager

from fastapi import FastAPI

from pipelines import tracking
from pipelines.forecasting.pyfunc import FORECASTER_ARTIFACT, PANEL_ARTIFACT
from pipelines.settings import Settings, get_settings
from pipelines.tracking.registry import CHAMPION
from pipelines.vision.classifier import Classifier
from pipelines.vision.pyfunc import CLASSIFIER_ARTIFACT
from service.batching import Batcher
from service.cache import Loader, ModelCache
from service.docs import add_schemas, install_docs
from service.errors import InFlight, RequestContext, install_error_handlers
from service.limits import BodySizeLimit
from service.monitoring import Metrics, MetricsMiddleware
from service.registry import RegistryReader
from service.routes import classify, forecast, invocations, models, ops, page, series
from service.store import StoreAccess

log = logging.getLogger(__name__)


class Preload:
    """Loads ``@champion`` of the named models (``*``: every registered model that has one) in a thread, and
    retries what failed (registry down, a version that cannot be served) with backoff until all are served."""

    def __init__(self, cache: ModelCache, names: str, max_delay: float):
        self.cache = cache
        self.names = names
        self.max_delay = max_delay
        self.wanted: list[str] | None = None  # None until the registry has been asked (for "*")
        self.failures: dict[str, str] = {}  # name -> why its champion is not served yet
        self._stop = threading.Event()

    def missing(self) -> list[str] | None:
        """Wanted models without a served champion (None: not known yet)."""
        if self.wanted is None:
            return None
        return [name for name in self.wanted if self.cache.peek(name) is None]

    def start(self) -> None:
        threading.Thread(target=self._run, name="seqcast-preload", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            if self._attempt():
                # what is loaded by now (TensorFlow, MLflow, the models: millions of objects) lives as long as the
                # process: out of the garbage collector's sight, a full collection no longer stalls requests
                # (measured: 0.5 to 1 s pauses under load, p99 0.95 s -> 0.03 s at concurrency 16); garbage first,
                # so none of it is kept forever
                gc.collect()
                gc.freeze()
                return
            if self._stop.wait(delay):
                return
            delay = min(2 * delay, self.max_delay)

    def _attempt(self) -> bool:
        if self.wanted is None:
            try:
                self.wanted = self._resolve()
            except Exception as exc:  # noqa: BLE001 - the registry may be down at startup: retry
                self._note("the registry", f"cannot list the models to preload: {exc}")
                return False
        for name in self.missing() or []:
            try:
                self.cache.get(name)
                self.failures.pop(name, None)
            except Exception as exc:  # noqa: BLE001 - one bad model must not stop the others
                self._note(name, str(exc))
        return not self.missing()

    def _resolve(self) -> list[str]:
        if self.names.strip() == "*":
            return sorted(self.cache.registry.champions())
        return [n.strip() for n in self.names.split(",") if n.strip()]

    def _note(self, name: str, error: str) -> None:
        if self.failures.get(name) != error:  # log each distinct failure once, not at every retry
            log.warning("could not load %s@%s (retrying): %s", name, CHAMPION, error)
        self.failures[name] = error


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    # MLflow reads these per request; a value the operator set for MLflow itself wins
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(settings.registry_http_retries))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(round(settings.registry_http_timeout_seconds)))
    metrics = Metrics(settings.prometheus_multiproc_dir)
    batcher = Batcher(
        settings.forecast_batch_max_size, settings.forecast_batch_wait_ms / 1000, on_call=metrics.batch_size.observe
    )
    cache = ModelCache(
        RegistryReader(tracking.configure(settings)),
        loaders={
            FORECASTER_ARTIFACT: forecast.forecaster_loader(batcher),
            PANEL_ARTIFACT: forecast.panel_loader(),  # one model whatever the number of series
            CLASSIFIER_ARTIFACT: Loader(Classifier.load, classify.warm_classifier),
        },
        poll_seconds=settings.model_poll_seconds,
        workers=settings.registry_workers,
        timeout=settings.registry_timeout_seconds,
        miss_ttl=settings.not_found_ttl_seconds,
        max_misses=settings.max_cached_misses,
        on_swap=lambda name, old, new: metrics.swaps.labels(name).inc(),
        on_load=metrics.model_loaded,
    )
    preload = Preload(cache, settings.preload_models, settings.preload_retry_max_seconds)
    store = StoreAccess(settings)
    in_flight = InFlight()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        gc.freeze()  # see Preload._run
        preload.start()
        cache.start()
        await store.start()  # opens the series store and applies its migrations
        try:
            yield
        finally:
            # requests the server cancelled past its grace period answer their 503 before the process ends
            await in_flight.drained(seconds=2)
            preload.stop()
            cache.stop()
            batcher.close()
            store.close()
            metrics.close()

    app = FastAPI(
        title="seqcast",
        version="0.1.0",
        description="Recursive multi-step forecasts and image classes from models in the MLflow registry.",
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc from vendored files (service/docs.py), not a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.cache = cache
    app.state.metrics = metrics
    app.state.batcher = batcher
    app.state.preload = preload
    app.state.store = store
    install_error_handlers(app)
    app.include_router(forecast.router)  # first: routes are matched in order, and forecasts are the hot path
    app.include_router(invocations.router)  # MLflow's scoring protocol, answered by the forecast route's code
    app.include_router(ops.router)
    app.include_router(classify.router)
    app.include_router(models.router)
    app.include_router(series.router)
    app.include_router(page.router)  # GET / and the scores it shows
    app.mount("/static", page.STATIC, name="static")
    install_docs(app)
    add_schemas(app, [classify.ClassifyRequest, series.ObservationBatch])  # bodies the routes read themselves
    # added last = outermost: metrics see the 413s the size limit sends and the 500s of RequestContext
    app.add_middleware(RequestContext, in_flight=in_flight)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
