"""One error shape for every router: ``{"detail": ...}`` saying what was wrong and what is allowed.

Routers raise :class:`fastapi.HTTPException`, :class:`pipelines.forecasting.errors.ForecastInputError` or
:class:`pipelines.forecasting.data.DataError` (-> 422), :class:`pipelines.store.SeriesNotFound` (-> 404),
:class:`pipelines.store.StoreUnavailable` (-> 503),
:class:`service.cache.ModelNotFound` (-> 404), :class:`service.cache.ModelLoadError` or
:class:`service.cache.RegistryUnavailable` (-> 503); the ``*_RESPONSES`` dicts document them in OpenAPI.
Anything else is a bug: :class:`RequestContext` logs it with its traceback and answers a JSON 500 with a
request id, and the connection stays usable (an exception that reaches the server makes it drop the
connection). The refusals the service expects (404 unknown model, 503 registry too slow) are logged by
:class:`service.logs.Refusals`: a WARNING line a minute per kind at most, no traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sys
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipelines.forecasting.data import DataError
from pipelines.forecasting.errors import ForecastInputError
from pipelines.store import SeriesNotFound, StoreUnavailable
from service.cache import ModelLoadError, ModelNotFound, RegistryUnavailable
from service.logs import ACCESS_LOGGER, REQUEST_ID, Refusals, redacted_query, request_id_from

log = logging.getLogger(__name__)
access_log = logging.getLogger(ACCESS_LOGGER)


class ErrorBody(BaseModel):
    detail: str


# FastAPI's ``responses=``: status code -> OpenAPI response (a ``model`` and a ``description``)
Responses = dict[int | str, dict[str, Any]]


def _described(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


class ValidationIssue(BaseModel):
    type: str
    loc: list[str | int]
    msg: str
    ctx: dict | None = None


class InvalidRequest(BaseModel):
    detail: str | list[ValidationIssue]


AUTH_RESPONSES: Responses = {
    401: _described("the X-API-Key header is missing"),
    403: _described("the X-API-Key header is wrong"),
    503: _described("the server has no API key configured, so mutating endpoints are off"),
}
MODEL_RESPONSES: Responses = {
    404: _described("unknown model, version or alias"),
    503: _described("the registry did not answer in time, or the version cannot be served (the detail says which)"),
}
TOO_LARGE_RESPONSES: Responses = {413: _described("the request body is over the size limit")}
# a body FastAPI parses as JSON (the forecast routes); routes that read their body themselves document their own
BODY_RESPONSES: Responses = {
    400: _described("the body cannot be parsed as JSON: not UTF-8, nested too deeply, ... (the detail says which)"),
    **TOO_LARGE_RESPONSES,
    422: {
        "model": InvalidRequest,
        "description": "the body is not a valid request (a list of issues) or the model "
        "cannot forecast it (one message, e.g. a history shorter than the model's lookback)",
    },
}

JSON_ONLY_RESPONSES: Responses = {
    **BODY_RESPONSES,
    415: _described("the body is not sent as JSON (Content-Type: application/json)"),
}

SERIES_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: _described("no series of that name"),
    422: {"model": InvalidRequest, "description": "a series name or query parameter that is not allowed"},
    503: _described("the series store cannot be reached now (the detail says why)"),
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
SEND_JSON = "send UTF-8 JSON (Content-Type: application/json)"


def unreadable_body(cause: BaseException | None) -> str:
    """What was wrong with a JSON body FastAPI could not parse, from the error json.loads raised (FastAPI raises
    its 400 ``from`` it): not UTF-8, nested too deeply, or a number too long to convert. Malformed JSON is
    FastAPI's 422 ``json_invalid`` instead."""
    if isinstance(cause, UnicodeDecodeError):
        return f"the body cannot be read: it is not UTF-8 ({cause.reason} at byte {cause.start}); {SEND_JSON}"
    if isinstance(cause, RecursionError):
        return (
            "the body cannot be parsed: its JSON is nested too deeply (arrays or objects inside each other); a "
            "request is a JSON object a few levels deep (see /docs)"
        )
    if isinstance(cause, ValueError) and "integer string conversion" in str(cause):
        return (
            f"the body cannot be parsed: a JSON number has over {sys.get_int_max_str_digits()} digits; "
            "numbers must be of a size a float can hold"
        )
    return f"the body cannot be read; {SEND_JSON}"


def install_error_handlers(app: FastAPI) -> None:
    refusals = Refusals(log)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 400 and exc.detail == UNREADABLE_BODY:
            return JSONResponse({"detail": unreadable_body(exc.__cause__)}, 400)
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_errors(exc)}, status_code=422)

    @app.exception_handler(ForecastInputError)
    async def forecast_input_error(request: Request, exc: ForecastInputError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(DataError)
    async def data_error(request: Request, exc: DataError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(SeriesNotFound)
    async def series_not_found(request: Request, exc: SeriesNotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc.args[0])}, status_code=404)

    @app.exception_handler(StoreUnavailable)
    async def store_unavailable(request: Request, exc: StoreUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "5"})

    @app.exception_handler(ModelNotFound)
    async def model_not_found(request: Request, exc: ModelNotFound) -> JSONResponse:
        refusals.note("unknown model, alias or version (404)", str(exc))
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(ModelLoadError)
    async def model_load_error(request: Request, exc: ModelLoadError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(RegistryUnavailable)
    async def registry_unavailable(request: Request, exc: RegistryUnavailable) -> JSONResponse:
        refusals.note("registry unavailable (503)", str(exc))
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "5"})


# the page (service/static/) runs only its own script and stylesheet; an image is one of this host's, the
# favicon's data: URL or the blob: of an image the user picked; calls go to this host only. The same policy
# suits the JSON answers; /docs and /redoc set their own (service/docs.py).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
SHUTTING_DOWN = (
    "the server is shutting down and this request did not finish within its grace period "
    "(SEQCAST_SHUTDOWN_GRACE_SECONDS); retry it"
)


class InFlight:
    """How many requests :class:`RequestContext` is handling. The server cancels those still running when its grace
    period is over and at once shuts the app down; the app's shutdown waits here for them (:meth:`drained`), so each
    gets to send its 503 before the process ends."""

    def __init__(self) -> None:
        self.count = 0

    async def drained(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while self.count and time.monotonic() < deadline:
            await asyncio.sleep(0.01)


class RequestContext:
    """ASGI middleware, outermost: each request gets an id (the client's ``X-Request-ID`` or a new one), seen by
    every log line written while it is handled and returned in the ``X-Request-ID`` response header; the
    security headers (:data:`SECURITY_HEADERS`, and :data:`CONTENT_SECURITY_POLICY` unless the route set its
    own); an exception no handler took becomes a logged JSON 500 naming that id; a request the server cancels at
    shutdown (its grace period over) a 503; the access line (``seqcast.access``, query values redacted).

    Starlette's own last resort sends a 500 and then re-raises, and the server answers that by closing the
    connection, so the client's next request on it fails too."""

    def __init__(self, app: ASGIApp, in_flight: InFlight | None = None):
        self.app = app
        self.in_flight = in_flight or InFlight()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.in_flight.count += 1
        try:
            await self._handle(scope, receive, send)
        finally:
            self.in_flight.count -= 1

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        began = time.perf_counter()
        sent = None
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                sent = value
                break
        request_id = request_id_from(sent)
        token = REQUEST_ID.set(request_id)
        added = [(b"x-request-id", request_id.encode()), *SECURITY_HEADERS]
        status: int | None = None  # set once the response has started

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), *added]
                if not any(k.lower() == b"content-security-policy" for k, _ in headers):
                    headers.append((b"content-security-policy", CONTENT_SECURITY_POLICY.encode()))
                message["headers"] = headers
            await send(message)

        async def answer(code: int, body: dict, *headers: tuple[bytes, bytes]) -> None:
            data = json.dumps(body).encode()
            await send_with_headers(
                {
                    "type": "http.response.start",
                    "status": code,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(data)).encode()),
                        *headers,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": data})

        try:
            await self.app(scope, receive, send_with_headers)
        except asyncio.CancelledError:
            # the server cancels what still runs once its shutdown grace period is over: a 503 the client can
            # retry elsewhere, not the 500 and traceback the server would make of it
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            if status is None:
                await answer(503, {"detail": SHUTTING_DOWN}, (b"retry-after", b"1"), (b"connection", b"close"))
            # else half a response is out: the server closes the connection, which tells the client
        except Exception:
            log.exception("unhandled error in %s %s (request %s)", scope["method"], scope["path"], request_id)
            if status is not None:
                raise  # half a response is out: nothing sensible can follow it on this connection
            await answer(
                500,
                {"detail": f"internal error; the server logged it as request {request_id}", "request_id": request_id},
            )
        finally:
            if access_log.isEnabledFor(logging.INFO):
                self._access(scope, status, began)
            REQUEST_ID.reset(token)

    @staticmethod
    def _access(scope: Scope, status: int | None, began: float) -> None:
        query = redacted_query(scope.get("query_string", b""))
        duration_ms = round((time.perf_counter() - began) * 1000, 2)
        client = scope.get("client")
        access_log.info(
            "%s %s%s %s %.1f ms",
            scope["method"],
            scope["path"],
            f"?{query}" if query else "",
            status,
            duration_ms,
            extra={
                "method": scope["method"],
                "path": scope["path"],
                "query": query or None,
                "status": status,
                "duration_ms": duration_ms,
                "client": f"{client[0]}:{client[1]}" if client else None,
            },
        )
