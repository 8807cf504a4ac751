"""``GET /health`` (process alive), ``GET /ready`` (startup models loaded) and ``GET /metrics`` (Prometheus, with the retraining passes' facts read from MLflow at scrape time)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field

from pipelines.retraining.facts import PassFacts, pass_facts
from service.deps import CacheDep, MetricsDep
from service.errors import ErrorBody

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str = Field(description="ready, or degraded: serving what is loaded while the registry is unreachable")
    registry: str = Field(description="ok | unreachable (as the alias poller last found it)")
    registry_error: str | None = None
    models: list[dict]


@router.get("/health", response_model=Health, summary="The process is alive")
async def health() -> dict:
    return {"status": "ok"}


@router.get(
    "/ready",
    response_model=Ready,
    responses={
        503: {"model": ErrorBody, "description": "a startup model is not served yet (the detail says why), or none is"}
    },
    summary="Models are loaded and the service can forecast",
)
async def ready(request: Request, cache: CacheDep) -> dict:
    preload = request.app.state.preload
    missing = preload.missing()
    if missing is None:
        raise HTTPException(
            503, f"still loading the startup models (SEQCAST_PRELOAD_MODELS){_why(preload, ['the registry'])}"
        )
    if missing:
        raise HTTPException(503, f"the champion of {', '.join(missing)} is not served yet{_why(preload, missing)}")
    if len(cache) == 0:
        raise HTTPException(503, "no model is loaded; register one (seqcast train) or forecast with a registered model")
    models = [{k: v for k, v in e.items()} for e in cache.loaded()]
    if cache.registry_error is not None:  # still 200: a load balancer keeps sending what the cache can answer
        return {
            "status": "degraded",
            "registry": "unreachable",
            "registry_error": cache.registry_error,
            "models": models,
        }
    return {"status": "ready", "registry": "ok", "models": models}


def _why(preload, names: list[str]) -> str:
    reasons = [f"{name}: {preload.failures[name]}" for name in names if name in preload.failures]
    return f" ({'; '.join(reasons)})" if reasons else ""


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}}},
    summary="Prometheus metrics: requests, forecasts, model loads, and the retraining passes (read from MLflow)",
)
async def metrics(cache: CacheDep, app_metrics: MetricsDep) -> PlainTextResponse:
    app_metrics.loaded.set(len(cache))
    facts: PassFacts | None | Exception
    try:  # a few MLflow reads on the registry's threads, bounded like any registry call
        facts = await cache.call(pass_facts, cache.registry.client)
    except Exception as exc:  # noqa: BLE001 - an unreachable or slow tracking store is a fact to report, not a failed scrape
        facts = exc
    body = app_metrics.exposition(facts)
    return PlainTextResponse(body, media_type=CONTENT_TYPE_LATEST)
