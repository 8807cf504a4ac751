"""MLflow's scoring protocol on ``seqcast serve``: ``POST /invocations`` and ``POST /v1/models/{name}/invocations``.

An MLflow client (``mlflow.deployments``, ``mlflow models predict``, or anything that speaks to ``mlflow models
serve``) posts one of MLflow's input formats and ``params``; the answer is MLflow's ``{"predictions": ...}``. The
model: ``/v1/models/{name}/invocations`` (``?alias=`` or ``?version=``), or on ``/invocations`` ``params.model``
(``params.alias`` / ``params.version``), left out: the one single-series forecaster the server preloads.

Inputs, read as the logged pyfunc reads them (``pipelines/forecasting/pyfunc.py``): one column (or a flat list
of numbers) is one history, oldest first, and ``predictions`` is its forecast; several columns (or a list of
equally long lists) are a batch, one history per row, and ``predictions`` is a forecast per row. ``params``:
``horizon`` (default: the model's trained horizon) and ``levels``; with levels, ``predictions`` is a record per
step (and row), as MLflow writes a frame: ``{"row"?, "step", "forecast", "lower_0.8", "upper_0.8", ...}``.

Every history is a :class:`service.schemas.ForecastRequest` answered by ``forecast.forecast_one``, the function
``POST /v1/forecast`` answers with: the same checks, the same batcher (a batch's rows are coalesced like
concurrent requests), the same numbers and the same ``{"detail": ...}`` errors. The served version is in the
``X-Seqcast-Model-Version`` header (MLflow's shape has no place for it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import ValidationError
from starlette.datastructures import State

from pipelines.forecasting.errors import ForecastInputError
from pipelines.forecasting.pyfunc import FORECASTER_ARTIFACT
from service.cache import LoadedModel
from service.errors import JSON_ONLY_RESPONSES, MODEL_RESPONSES
from service.routes import JsonBodyRoute, served_model
from service.routes.forecast import forecast_one
from service.schemas import MAX_VERSION, ForecastRequest, InvocationsRequest, InvocationsResponse, level_key

router = APIRouter(tags=["mlflow"], route_class=JsonBodyRoute)

NOUN = "a single-series forecaster (a panel model: POST /v1/forecast or /v1/forecast/batch)"

# one history: its values and, for a value's index, where it was in the body (for the messages)
History = tuple[list[Any], Callable[[int], str]]


def _histories(body: InvocationsRequest) -> tuple[list[History], bool, str]:
    """The body's histories, whether they are a batch (one per row) and the input's name."""
    if body.dataframe_split is not None:
        split = body.dataframe_split
        width = len(split.columns) if split.columns is not None else (len(split.data[0]) if split.data else 0)
        rows = split.data
        for r, row in enumerate(rows):
            if len(row) != width:
                raise HTTPException(
                    422,
                    f"dataframe_split.data[{r}] has {len(row)} values and there are {width} columns; give one per column",
                )
        return _table(rows, width, lambda r, c: f"dataframe_split.data[{r}][{c}]", "dataframe_split")
    if body.dataframe_records is not None:
        records = body.dataframe_records
        columns = list(records[0])
        for r, record in enumerate(records):
            if list(record) != columns:
                raise HTTPException(
                    422,
                    f"dataframe_records[{r}] has the columns {list(record)}; dataframe_records[0] has {columns}: "
                    "give every record the same columns",
                )
        rows = [list(record.values()) for record in records]
        return _table(rows, len(columns), lambda r, c: f"dataframe_records[{r}][{columns[c]!r}]", "dataframe_records")
    name = "inputs" if body.inputs is not None else "instances"
    values: list = body.inputs if body.inputs is not None else body.instances  # type: ignore[assignment]
    lists = [isinstance(v, list) for v in values]
    if not any(lists):
        return [(values, lambda i: f"{name}[{i}]")], False, name
    if not all(lists):
        raise HTTPException(
            422,
            f"{name}[{lists.index(not lists[0])}]: {name} is a list of numbers (one history) or a list of lists "
            "(a batch of histories, one per row), not both",
        )
    width = len(values[0])
    for r, row in enumerate(values):
        if len(row) != width:
            raise HTTPException(
                422, f"{name}[{r}] has {len(row)} values and {name}[0] {width}; a batch's histories are equally long"
            )
    return [(row, partial(_cell, name, r)) for r, row in enumerate(values)], True, name


def _cell(name: str, r: int, i: int) -> str:
    return f"{name}[{r}][{i}]"


def _table(rows: list[list], width: int, at: Callable[[int, int], str], name: str) -> tuple[list[History], bool, str]:
    """A frame's histories: one column is one history; several columns, one history per row."""
    if width == 0:
        raise HTTPException(422, f"{name} has no columns; give one column of values (one history) or one per step")
    if width == 1:
        return [([row[0] for row in rows], lambda i: at(i, 0))], False, name
    return [(row, partial(at, r)) for r, row in enumerate(rows)], True, name


def _request(model: str, values: list, locate: Callable[[int], str], horizon: int, body: InvocationsRequest, where):
    """The ``POST /v1/forecast`` request of one history; a value that is not a finite number is a 422 naming it."""
    params = body.params
    try:
        return ForecastRequest.model_validate(
            {
                "model": model,
                "history": values,
                "horizon": horizon,
                "levels": params.levels if params else None,
            }
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = error["loc"]
        place = locate(loc[1]) if len(loc) > 1 and loc[0] == "history" and isinstance(loc[1], int) else where
        raise HTTPException(422, f"{place}: {error['msg']}; a history is finite numbers, oldest first") from None


async def _answer(state: State, request: ForecastRequest, loaded: LoadedModel, where: str) -> dict:
    """``POST /v1/forecast``'s answer to one history; its input errors say where in the body it was."""
    try:
        return await forecast_one(state, request, loaded)
    except ForecastInputError as exc:
        raise exc.at(where) from None


async def _invoke(http: Request, body: InvocationsRequest, name: str, alias: str | None, version: int | None):
    state = http.app.state
    loaded: LoadedModel = await served_model(state.cache, FORECASTER_ARTIFACT, NOUN, name, alias, version)
    histories, batch, input_name = _histories(body)
    params = body.params
    horizon = params.horizon if params and params.horizon is not None else loaded.model.usual_horizon()
    requests = [
        _request(name, values, locate, horizon, body, f"{input_name}[{r}]" if batch else input_name)
        for r, (values, locate) in enumerate(histories)
    ]
    wheres = [f"{input_name}[{r}]: " if batch else f"{input_name}: " for r in range(len(requests))]
    # the rows of a batch as concurrent requests: the batcher coalesces them (bounded by its size)
    answers = await asyncio.gather(*(_answer(state, req, loaded, w) for req, w in zip(requests, wheres, strict=True)))
    levels = params.levels if params else None
    if levels:
        predictions: list = []
        for r, answer in enumerate(answers):
            intervals = answer["intervals"]
            for step, value in enumerate(answer["forecast"]):
                record: dict[str, Any] = {"row": r} if batch else {}
                record["step"] = step + 1
                record["forecast"] = value
                for level in levels:
                    band = intervals[level_key(level)]
                    record[f"lower_{level_key(level)}"] = band["lower"][step]
                    record[f"upper_{level_key(level)}"] = band["upper"][step]
                predictions.append(record)
    else:
        predictions = [a["forecast"] for a in answers] if batch else [answers[0]["forecast"]][0]
    return Response(
        orjson.dumps({"predictions": predictions}, option=orjson.OPT_SERIALIZE_NUMPY),
        media_type="application/json",
        headers={"X-Seqcast-Model-Version": loaded.version},
    )


def _default_model(http: Request) -> str:
    """The one single-series forecaster the server preloads (``SEQCAST_PRELOAD_MODELS``), for ``/invocations``
    without ``params.model``."""
    state = http.app.state
    wanted = state.preload.wanted or []
    forecasters = [n for n in wanted if (m := state.cache.peek(n)) is not None and m.kind == FORECASTER_ARTIFACT]
    if len(forecasters) == 1:
        return forecasters[0]
    served = f"the preloaded ones are {', '.join(forecasters)}" if forecasters else "none is preloaded"
    raise HTTPException(
        422,
        f'name the model: params.model (e.g. {{"params": {{"model": "NAME"}}}}) or POST /v1/models/NAME/invocations; '
        f"/invocations serves the one preloaded single-series forecaster by default, and {served}",
    )


@router.post(
    "/invocations",
    response_model=InvocationsResponse,
    responses={**MODEL_RESPONSES, **JSON_ONLY_RESPONSES},
    summary="MLflow's scoring protocol: the model in params.model (default: the one preloaded forecaster)",
)
async def invocations(body: InvocationsRequest, http: Request) -> Response:
    params = body.params
    name = params.model if params and params.model else _default_model(http)
    return await _invoke(http, body, name, params.alias if params else None, params.version if params else None)


@router.post(
    "/v1/models/{name}/invocations",
    response_model=InvocationsResponse,
    responses={**MODEL_RESPONSES, **JSON_ONLY_RESPONSES},
    summary="MLflow's scoring protocol for one registered model (@champion, or ?alias= / ?version=)",
)
async def model_invocations(
    name: str,
    body: InvocationsRequest,
    http: Request,
    alias: Annotated[str | None, Query(min_length=1, max_length=256, description="registry alias")] = None,
    version: Annotated[
        int | None, Query(ge=1, le=MAX_VERSION, description="registry version (instead of an alias)")
    ] = None,
) -> Response:
    params = body.params
    if params is not None:
        if params.model is not None and params.model != name:
            raise HTTPException(422, f"params.model is {params.model!r} and the path names {name!r}; give one")
        if (params.alias is not None or params.version is not None) and (alias is not None or version is not None):
            raise HTTPException(422, "give alias or version in the query or in params, not both")
        alias = alias if alias is not None else params.alias
        version = version if version is not None else params.version
    return await _invoke(http, body, name, alias, version)
