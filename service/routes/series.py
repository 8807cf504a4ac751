"""The series store over REST: ingest observations, list and read series, delete one (writes need the API key).

* ``POST /v1/series/{name}/observations``: ``{"timestamps": [...], "values": [...], "freq": "h"}`` (``freq``
  optional: inferred from the first batch) or a CSV (``content-type: text/csv``; columns as ``seqcast train``
  reads them, ``?freq=`` optional). One transaction: 201 when it created the series, else 200, with the
  counts inserted / updated / unchanged; a batch that fails the training data's checks is a 422 naming the
  field, index and what is allowed, and writes nothing.
* ``GET /v1/series``, ``GET /v1/series/{name}``: length, first/last timestamp, frequency, the model that
  serves it (the registered model of the same name with ``@champion``).
* ``GET /v1/series/{name}/observations?start=&end=&limit=&cursor=``: oldest first, ``next_cursor`` continues.
* ``DELETE /v1/series/{name}``.

Every store call runs on the store's own threads (:class:`service.store.StoreAccess`).
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Annotated

import numpy as np
import pandas as pd
from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipelines.forecasting.data import DataError, pick_columns
from pipelines.store import Summary, check_name
from pipelines.store.schema import NAME_MAX
from service.cache import ModelCache, RegistryUnavailable
from service.deps import ApiKeyDep, CacheDep, StoreDep
from service.errors import AUTH_RESPONSES, SERIES_RESPONSES, TOO_LARGE_RESPONSES, ErrorBody, InvalidRequest
from service.schemas import FiniteNumber

router = APIRouter(prefix="/v1/series", tags=["series"])

MAX_PAGE = 10_000
SeriesName = Annotated[str, Path(min_length=1, max_length=NAME_MAX, description="letters, digits, '_', '.', '-'")]


class ObservationBatch(BaseModel):
    # `make run` stores sine hourly from 2024-01-01 to 2024-02-11T15:00: these two come next
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"timestamps": ["2024-02-11T16:00:00", "2024-02-11T17:00:00"], "values": [1.42, 1.87]}]
        },
    )

    timestamps: list[str] = Field(description="ISO-8601 time of each value, all with or all without a time zone")
    # strict, as /v1/forecast's history: "1.5" or true is not a number (lax floats would store 1.5 and 1.0);
    # null is let through for the store's checks to name ("values[1] is None; ... none missing")
    values: list[FiniteNumber | None] = Field(description="one finite number per timestamp")
    freq: str | None = Field(
        default=None, max_length=32, description="pandas frequency (D, h, 15min, MS, ...); inferred if left out"
    )


class WriteCounts(BaseModel):
    series: str
    created: bool = Field(description="this batch created the series")
    freq: str
    inserted: int
    updated: int = Field(description="stored timestamps given a new value (revisions)")
    unchanged: int


class ServingModel(BaseModel):
    name: str
    version: str


class SeriesSummary(BaseModel):
    name: str
    freq: str
    length: int
    first: str | None = None
    last: str | None = None
    model: ServingModel | None = Field(default=None, description="the registered model of this name, @champion")


class SeriesList(BaseModel):
    series: list[SeriesSummary]


class ObservationPage(BaseModel):
    series: str
    timestamps: list[str]
    values: list[float]
    next_cursor: str | None = Field(default=None, description="pass as ?cursor= for the next page; null: the last")


class Deleted(BaseModel):
    series: str
    deleted: int = Field(description="observations dropped")


_BATCH_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ObservationBatch"}},
            "text/csv": {"schema": {"type": "string", "description": "a header row, then time,value rows"}},
        },
    }
}


def _iso(ts: pd.DatetimeIndex | pd.Timestamp | None):
    if ts is None:
        return None
    if isinstance(ts, pd.Timestamp):
        return ts.isoformat()
    return [t.isoformat() for t in ts]


def _name(name: str) -> str:
    try:
        return check_name(name)
    except DataError as exc:
        raise HTTPException(422, str(exc)) from None


async def _serving(cache: ModelCache, names: list[str]) -> dict[str, dict]:
    """name -> {"name", "version"} of the registered model of that name with @champion (registry on its pool)."""

    def lookup() -> dict[str, dict]:
        champions = cache.registry.champions()
        return {name: {"name": name, "version": champions[name]} for name in names if name in champions}

    try:
        return await cache.call(lookup)
    except RegistryUnavailable:  # the series are still listed; the model column says nothing this time
        return {}


def _summary(s: Summary, serving: dict[str, dict]) -> dict:
    return {
        "name": s.name,
        "freq": s.freq,
        "length": s.length,
        "first": _iso(s.first),
        "last": _iso(s.last),
        "model": serving.get(s.name),
    }


async def _batch(request: Request, freq: str | None) -> tuple[list, list, str | None]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if content_type in ("application/json", ""):
        try:
            batch = ObservationBatch.model_validate_json(body)
        except ValidationError as exc:
            errors = exc.errors(include_input=False, include_url=False)
            raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None
        if freq is not None and batch.freq is not None and freq != batch.freq:
            raise HTTPException(422, f"freq is {batch.freq!r} in the body and {freq!r} in the query; give one")
        return batch.timestamps, batch.values, batch.freq or freq
    if content_type == "text/csv":
        try:
            frame = pd.read_csv(io.BytesIO(body), dtype=str, keep_default_na=False)
        except (ValueError, csv.Error) as exc:  # pandas' parser and decode errors are ValueErrors
            raise HTTPException(
                422, f"the CSV body cannot be read ({exc}); send a header row, then time,value rows"
            ) from None
        if frame.empty:
            raise HTTPException(422, "the CSV body has no rows; send a header row, then time,value rows")
        time_col, value_col = pick_columns(frame, how="name the columns timestamp and value")
        if time_col is None:
            raise HTTPException(
                422, f"the CSV has no time column among {', '.join(map(str, frame.columns))}; name it timestamp"
            )
        values = [None if v.strip() == "" else v for v in frame[value_col]]
        return frame[time_col].tolist(), values, freq
    raise HTTPException(
        415,
        f'content type {content_type!r} is not accepted; send application/json ({{"timestamps": [...], '
        '"values": [...]}) or text/csv',
    )


@router.post(
    "/{name}/observations",
    response_model=WriteCounts,
    status_code=200,
    responses={
        201: {"model": WriteCounts, "description": "the batch created the series"},
        **AUTH_RESPONSES,
        **TOO_LARGE_RESPONSES,  # the body is read here, not by FastAPI: no 400 (an unreadable body is a 422)
        415: {"model": ErrorBody, "description": "the body is neither JSON nor CSV"},
        422: {
            "model": InvalidRequest,
            "description": "a body that is not a valid batch (a list of issues), or one message: a series name, "
            "freq or CSV that is not allowed, or a batch that fails the training data's checks (naming the field "
            "and index)",
        },
        503: {"model": ErrorBody, "description": "the series store cannot be reached, or no API key is configured"},
    },
    openapi_extra=_BATCH_SCHEMA,
    summary="Store observations (one transaction; idempotent; a new value for a stored time revises it) (API key)",
)
async def write_observations(
    name: SeriesName,
    request: Request,
    store: StoreDep,
    _: ApiKeyDep,
    freq: Annotated[str | None, Query(max_length=32, description="pandas frequency; inferred if left out")] = None,
) -> Response:
    _name(name)
    timestamps, values, freq = await _batch(request, freq)
    result = await store.write(name, timestamps, values, freq)
    body = WriteCounts.model_validate(result, from_attributes=True)
    return Response(body.model_dump_json(), status_code=201 if result.created else 200, media_type="application/json")


@router.get("", response_model=SeriesList, responses=SERIES_RESPONSES, summary="Every stored series")
async def list_series(store: StoreDep, cache: CacheDep) -> dict:
    summaries = await store.summaries()
    serving = await _serving(cache, [s.name for s in summaries]) if summaries else {}
    return {"series": [_summary(s, serving) for s in summaries]}


@router.get("/{name}", response_model=SeriesSummary, responses=SERIES_RESPONSES, summary="One stored series")
async def get_series(name: SeriesName, store: StoreDep, cache: CacheDep) -> dict:
    [summary] = await store.summaries(_name(name))
    return _summary(summary, await _serving(cache, [name]))


@router.get(
    "/{name}/observations",
    response_model=ObservationPage,
    responses=SERIES_RESPONSES,
    summary="A series' observations, oldest first, a page at a time",
)
async def read_observations(
    name: SeriesName,
    store: StoreDep,
    start: Annotated[datetime | None, Query(description="from this time on (inclusive)")] = None,
    end: Annotated[datetime | None, Query(description="up to this time (inclusive)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1000,
    cursor: Annotated[str | None, Query(max_length=32, description="next_cursor of the previous page")] = None,
) -> dict:
    page = await store.page(
        _name(name),
        start=None if start is None else pd.Timestamp(start),
        end=None if end is None else pd.Timestamp(end),
        limit=limit,
        cursor=cursor,
    )
    return {
        "series": name,
        "timestamps": _iso(page.timestamps),
        "values": np.asarray(page.values).tolist(),
        "next_cursor": page.next_cursor,
    }


@router.delete(
    "/{name}",
    response_model=Deleted,
    responses={**SERIES_RESPONSES, **AUTH_RESPONSES},
    summary="Delete a series and its observations (API key)",
)
async def delete_series(name: SeriesName, store: StoreDep, _: ApiKeyDep) -> dict:
    return {"series": name, "deleted": await store.delete(_name(name))}
