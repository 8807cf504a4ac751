"""One error shape for every router: ``{"detail": ...}`` saying what was wrong and what is allowed.

Routers raise :class:`fastapi.HTTPException`, :class:`pipelines.forecaster.HistoryError` (-> 422) or
:class:`service.cache.ModelNotFound` (-> 404); :data:`ERROR_RESPONSES` documents them in OpenAPI.
"""

from __future__ import annotations

import logging

import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.exception_handlers import http_exception_handler
from starlette.exceptions import HTTPException as StarletteHTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from pipelines.forecaster import HistoryError
from service.cache import ModelLoadError, ModelNotFound

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    detail: str


def _described(description: str) -> dict:
    return {"model": ErrorBody, "description": description}


class ValidationIssue(BaseModel):
    type: str
    loc: list[str | int]
    msg: str
    ctx: dict | None = None


class InvalidRequest(BaseModel):
    detail: str | list[ValidationIssue]


AUTH_RESPONSES = {
    401: _described("the X-API-Key header is missing"),
    403: _described("the X-API-Key header is wrong"),
    503: _described("the server has no API key configured, so mutating endpoints are off"),
}
MODEL_RESPONSES = {404: _described("unknown model, version or alias")}
BODY_RESPONSES = {
    400: _described("the body cannot be read as UTF-8 JSON"),
    413: _described("the request body is over the size limit"),
    422: {"model": InvalidRequest, "description": "the body is not a valid request (a list of issues) or the model "
          "cannot forecast it (one message, e.g. a history shorter than the model's lookback)"},
}


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # NaN/Infinity are not JSON; name them as text
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def validation_errors(exc: RequestValidationError) -> list[dict]:
    """FastAPI's error list (loc, msg, type, ctx) without echoing the input, which may be huge or not JSON."""
    out = []
    for error in exc.errors():
        item = {"type": error["type"], "loc": list(error["loc"]), "msg": error["msg"]}
        if error.get("ctx"):
            item["ctx"] = {k: _json_safe(v) for k, v in error["ctx"].items()}
        out.append(item)
    return out


UNREADABLE_BODY = "There was an error parsing the body"  # FastAPI's words for e.g. a non-UTF-8 body


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 400 and exc.detail == UNREADABLE_BODY:
            return JSONResponse({"detail": "the body cannot be read: send UTF-8 JSON (Content-Type: application/json)"}, 400)
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_errors(exc)}, status_code=422)

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
