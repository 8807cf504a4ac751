"""``GET /health`` (process alive), ``GET /ready`` (startup models loaded) and ``GET /metrics`` (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from service.deps import CacheDep, MetricsDep
from service.errors import ErrorBody

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    models: list[dict]


@router.get("/health", response_model=Health, summary="The process is alive")
async def health() -> dict:
    return {"status": "ok"}


@router.get(
    "/ready",
    response_model=Ready,
    responses={503: {"model": ErrorBody, "description": "startup models still loading, or none loaded"}},
    summary="Models are loaded and the service can forecast",
)
async def ready(request: Request, cache: CacheDep) -> dict:
    if not request.app.state.preloaded.is_set():
        raise HTTPException(503, "still loading the startup models (SEQCAST_PRELOAD_MODELS)")
    if len(cache) == 0:
        raise HTTPException(503, "no model is loaded; register one (seqcast train) or forecast with a registered model")
    return {"status": "ready", "models": [{k: v for k, v in e.items()} for e in cache.loaded()]}


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}}},
    summary="Prometheus metrics",
)
async def metrics(cache: CacheDep, app_metrics: MetricsDep) -> PlainTextResponse:
    app_metrics.loaded.set(len(cache))
    return PlainTextResponse(generate_latest(app_metrics.registry), media_type=CONTENT_TYPE_LATEST)
