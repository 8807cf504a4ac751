"""FastAPI dependencies shared by every router, as ``Annotated`` aliases.

``SettingsDep`` (the app's one :class:`Settings`), ``CacheDep`` (the :class:`ModelCache`), ``MetricsDep``,
``StoreDep`` (the series store, :class:`service.store.StoreAccess`),
and ``ApiKeyDep``: add ``_: ApiKeyDep`` to a mutating endpoint to require ``X-API-Key`` (401 missing,
403 wrong, compared in constant time, never logged).
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader

from pipelines.settings import Settings
from service.cache import ModelCache
from service.monitoring import Metrics
from service.store import StoreAccess

API_KEY_HEADER = "X-API-Key"
_api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="SEQCAST_API_KEY")


# async: FastAPI runs a plain ``def`` dependency in the shared thread pool, a thread hop per request
async def app_settings(request: Request) -> Settings:
    return request.app.state.settings


async def model_cache(request: Request) -> ModelCache:
    return request.app.state.cache


async def app_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


async def series_store(request: Request) -> StoreAccess:
    return request.app.state.store


SettingsDep = Annotated[Settings, Depends(app_settings)]
CacheDep = Annotated[ModelCache, Depends(model_cache)]
MetricsDep = Annotated[Metrics, Depends(app_metrics)]
StoreDep = Annotated[StoreAccess, Depends(series_store)]


async def require_api_key(settings: SettingsDep, given: Annotated[str | None, Security(_api_key_header)]) -> None:
    if not settings.api_key:
        raise HTTPException(503, "mutating endpoints are off: the server has no SEQCAST_API_KEY set")
    if not given:
        raise HTTPException(401, f"missing {API_KEY_HEADER} header; this endpoint needs the API key")
    if not hmac.compare_digest(given.encode(), settings.api_key.encode()):
        raise HTTPException(403, f"wrong {API_KEY_HEADER}; this endpoint needs the API key")


ApiKeyDep = Annotated[None, Depends(require_api_key)]
