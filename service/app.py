"""The FastAPI app: forecast, model and operations routers over one shared model cache.

``create_app(settings)`` builds a self-contained app (own cache, own metrics registry); ``seqcast serve``
runs it under uvicorn. On startup a background thread loads ``SEQCAST_PRELOAD_MODELS`` (``/ready`` says
when it is done) and the cache starts polling aliases every ``SEQCAST_MODEL_POLL_SECONDS``.
"""

from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager

from fastapi import FastAPI

from pipelines import tracking
from pipelines.registry import CHAMPION
from pipelines.settings import Settings, get_settings
from service import classify, forecast, models_api, ops
from service.cache import ModelCache
from service.errors import install_error_handlers
from service.limits import BodySizeLimit
from service.metrics import Metrics, MetricsMiddleware

log = logging.getLogger(__name__)


def preload(cache: ModelCache, names: str, done: threading.Event) -> None:
    """Load ``@champion`` of the named models (``*``: every registered model that has one)."""
    try:
        if names.strip() == "*":
            wanted = [m.name for m in cache.client.search_registered_models(max_results=1000) if CHAMPION in (m.aliases or {})]
        else:
            wanted = [n.strip() for n in names.split(",") if n.strip()]
        for name in wanted:
            try:
                loaded = cache.get(name)
                log.info("serving %s@%s: version %s (%s)", name, CHAMPION, loaded.version, loaded.kind)
            except Exception as exc:  # noqa: BLE001 - one bad model must not stop the others
                log.warning("could not load %s@%s: %s", name, CHAMPION, exc)
    finally:
        done.set()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    metrics = Metrics()
    cache = ModelCache(
        tracking.configure(settings),
        poll_seconds=settings.model_poll_seconds,
        on_swap=lambda name, old, new: metrics.swaps.labels(name).inc(),
        on_load=lambda loaded, seconds: (
            metrics.loads.labels(loaded.name, loaded.kind).inc(),
            metrics.load_seconds.observe(seconds),
        ),
    )
    preloaded = threading.Event()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        threading.Thread(target=preload, args=(cache, settings.preload_models, preloaded), daemon=True).start()
        cache.start()
        try:
            yield
        finally:
            cache.stop()

    app = FastAPI(
        title="seqcast",
        version="0.1.0",
        description="Recursive multi-step forecasts from models in the MLflow registry.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.cache = cache
    app.state.metrics = metrics
    app.state.preloaded = preloaded
    install_error_handlers(app)
    app.include_router(ops.router)
    app.include_router(forecast.router)
    app.include_router(classify.router)
    app.include_router(models_api.router)
    # added last = outermost: metrics see the 413s the size limit sends
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
