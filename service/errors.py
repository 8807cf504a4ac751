"""One error shape for every router: ``{"detail": ...}`` saying what was wrong and what is allowed.

Routers raise :class:`fastapi.HTTPException`, :class:`pipelines.forecaster.HistoryError` (-> 422) or
:class:`service.cache.ModelNotFound` (-> 404); :data:`ERROR_RESPONSES` documents them in OpenAPI.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from pipelines.forecaster import HistoryError
from service.cache import ModelLoadError, ModelNotFound

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    detail: str


def _described(description: str) -> dict:
    return {"model": ErrorBody, "description": description}


AUTH_RESPONSES = {
    401: _described("the X-API-Key header is missing"),
    403: _described("the X-API-Key header is wrong"),
    503: _described("the server has no API key configured, so mutating endpoints are off"),
}
MODEL_RESPONSES = {404: _described("unknown model, version or alias")}
BODY_RESPONSES = {413: _described("the request body is over the size limit")}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HistoryError)
    async def history_error(request: Request, exc: HistoryError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(ModelNotFound)
    async def model_not_found(request: Request, exc: ModelNotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(ModelLoadError)
    async def model_load_error(request: Request, exc: ModelLoadError) -> JSONResponse:
        log.error("%s", exc)
        return JSONResponse({"detail": str(exc)}, status_code=503)
