"""``POST /v1/forecast`` and ``POST /v1/forecast/batch``: recursive multi-step forecasts from the registry.

Without ``history`` a request forecasts the stored series named like the model (or ``series``): its latest
``lookback`` values are read from the series store (on the store's threads), and the forecast's timestamps
continue the stored ones at the series' frequency.

``POST /v1/forecast`` goes through the app's :class:`service.batching.Batcher`: concurrent requests for one
model version and horizon become one compiled call, a lone one runs at once, and each answer is the same to
the bit either way. A batch request is grouped by (model version, horizon) and each group is one batched
compiled call, run in a worker thread so other requests keep flowing. Answers are serialised once, by orjson
(numpy arrays included), without FastAPI's re-validation of the response.
"""

from __future__ import annotations

import anyio
import numpy as np
import orjson
import pandas as pd
from fastapi import APIRouter, Request, Response
from pandas.tseries.frequencies import to_offset
from pandas.tseries.offsets import Tick

from pipelines.forecasting.data import LAST_TIME, DataError, infer_freq, next_timestamps, parse_times
from pipelines.forecasting.forecaster import Forecaster, HistoryError
from pipelines.forecasting.pyfunc import FORECASTER_ARTIFACT
from pipelines.settings import Settings
from pipelines.store import SeriesNotFound
from service import batching
from service.batching import Batcher
from service.cache import LoadedModel, Loader
from service.deps import CacheDep, MetricsDep, SettingsDep, StoreDep
from service.errors import JSON_ONLY_RESPONSES, MODEL_RESPONSES
from service.routes import JsonBodyRoute, served_model
from service.schemas import (
    BatchForecastRequest,
    BatchForecastResponse,
    ForecastRequest,
    ForecastResponse,
    level_key,
)
from service.store import StoreAccess


def forecaster_loader(batcher: Batcher) -> Loader:
    """Forecasters load from their bundle and warm up the programs ``batcher`` calls."""
    return Loader(Forecaster.load, lambda forecaster: batching.warm(forecaster, batcher.max_size))


# JsonBodyRoute: another Content-Type is a 415 saying to send JSON (one header comparison per request)
router = APIRouter(prefix="/v1", tags=["forecast"], route_class=JsonBodyRoute)


def _checked_history(request: ForecastRequest, forecaster: Forecaster, where: str = "") -> np.ndarray:
    if request.history is None:
        raise HistoryError(
            f"{where}history is required: a list of at least {forecaster.min_history} numbers, oldest first"
        )
    try:
        return forecaster.check_history(request.history)
    except HistoryError as exc:
        raise HistoryError(f"{where}{exc}") from None


async def _stored_history(
    request: ForecastRequest, loaded: LoadedModel, store: StoreAccess, where: str = ""
) -> tuple[list[float], list[str]] | None:
    """The latest ``lookback`` stored values of the request's series and the forecast's timestamps after them;
    None when the request carries its history (or names no series and none is stored under the model's name)."""
    if request.history is not None:
        if request.series is not None:
            raise HistoryError(f"{where}give either history or series, not both")
        return None
    if request.timestamps is not None:
        raise HistoryError(f"{where}timestamps go with history; a stored series brings its own")
    forecaster: Forecaster = loaded.model
    name = request.series or request.model
    try:
        info, index, values = await store.run("latest", name, forecaster.lookback)
    except SeriesNotFound:
        if request.series is None:
            return None  # nothing stored under the model's name: history is required (said by _checked_history)
        raise
    need = forecaster.lookback
    if len(values) < need:
        raise HistoryError(
            f"{where}series {name!r} has {len(values)} stored values; model {request.model!r} version "
            f"{loaded.version} needs at least {need} (its lookback)"
        )
    step = to_offset(info.freq)
    if isinstance(step, Tick):
        contiguous = bool((np.diff(index.asi8) == step.nanos).all())
    else:
        contiguous = index.equals(pd.date_range(end=index[-1], periods=need, freq=step))
    if not contiguous:
        missing = pd.date_range(end=index[-1], periods=need, freq=step).difference(index)
        raise HistoryError(
            f"{where}series {name!r} has no value at {missing[0].isoformat()}, within the last {need} steps the "
            f"model reads; store it (POST /v1/series/{name}/observations) or send history"
        )
    return values.tolist(), _future(index[-1], info.freq, request.horizon, where)


def _continued_timestamps(
    request: ForecastRequest, history: np.ndarray, forecaster: Forecaster, where: str = ""
) -> list[str] | None:
    """The forecast's timestamps, continuing ``request.timestamps`` (one per value of the checked ``history``)."""
    if request.timestamps is None:
        return None
    if len(request.timestamps) != len(history):
        raise HistoryError(
            f"{where}timestamps has {len(request.timestamps)} entries and history {len(history)}; "
            "give one timestamp per history value"
        )
    try:
        index = pd.DatetimeIndex(request.timestamps)
    except (ValueError, TypeError, OverflowError):  # several UTC offsets, zoned and naive mixed, or out of range
        try:  # read as the series store reads them (in UTC), or its message naming the first that cannot be
            written = pd.Series([t.isoformat() for t in request.timestamps], dtype=object)
            index = pd.DatetimeIndex(parse_times(written, lambda i: f"timestamps[{i}]"))
        except DataError as exc:
            raise HistoryError(f"{where}{exc}") from None
    later = index[1:] > index[:-1]  # compared, not subtracted: 1677 to 2262 overflows int64
    if not later.all():
        i = int(np.flatnonzero(~later)[0]) + 1
        raise HistoryError(
            f"{where}timestamps must be strictly increasing; timestamps[{i}] is not after timestamps[{i - 1}]"
        )
    try:
        freq = infer_freq(index) if len(index) >= 2 else forecaster.freq
    except DataError as exc:
        raise HistoryError(f"{where}{exc}") from None
    if freq is None:
        raise HistoryError(f"{where}one timestamp does not give a frequency; give at least 2")
    return _future(index[-1], freq, request.horizon, where)


def _future(last: pd.Timestamp, freq: str, horizon: int, where: str) -> list[str]:
    """The forecast's timestamps after ``last``, as ISO-8601 strings."""
    try:
        return [t.isoformat() for t in next_timestamps(last, freq, horizon)]
    except (ValueError, OverflowError):  # past what nanosecond timestamps hold
        raise HistoryError(
            f"{where}{horizon} steps of {freq} after {last.isoformat()} pass the last time timestamps can hold "
            f"({LAST_TIME}); ask for a shorter horizon"
        ) from None


def _response(loaded: LoadedModel, request: ForecastRequest, forecast: np.ndarray, timestamps, where: str = "") -> dict:
    forecaster: Forecaster = loaded.model
    if not np.isfinite(forecast).all():
        raise HistoryError(f"{where}the forecast is not finite: the history's values are too large for this model")
    body: dict = {"model": request.model, "version": loaded.version, "forecast": forecast}
    if timestamps is not None:
        body["timestamps"] = timestamps
    if request.levels:
        try:
            bands = forecaster.intervals(forecast, request.levels)
        except HistoryError as exc:
            raise HistoryError(f"{where}{exc}") from None
        body["intervals"] = {level_key(level): {"lower": lo, "upper": hi} for level, (lo, hi) in bands.items()}
        body["calibrated_steps"] = forecaster.calibrated_steps  # later steps' widths are extended (conformal.py)
    return body


async def _history_of(
    request: ForecastRequest, loaded: LoadedModel, store: StoreAccess, settings: Settings, where: str = ""
) -> tuple[np.ndarray, list[str] | None]:
    """The checked history a request forecasts from (its own, or the store's) and the forecast's timestamps."""
    if request.horizon > settings.max_horizon:
        raise HistoryError(f"{where}horizon is {request.horizon}; allowed: 1 to {settings.max_horizon}")
    stored = await _stored_history(request, loaded, store, where)
    if stored is not None:
        return loaded.model.check_history(stored[0]), stored[1]
    history = _checked_history(request, loaded.model, where)
    return history, _continued_timestamps(request, history, loaded.model, where)


def _json(body: dict) -> Response:
    # built from checked finite floats (numpy arrays) and strings: one orjson pass, no FastAPI re-validation
    return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")


@router.post(
    "/forecast",
    response_model=ForecastResponse,
    responses={**MODEL_RESPONSES, **JSON_ONLY_RESPONSES},
    summary="Forecast one series",
)
async def forecast(request: ForecastRequest, http: Request) -> Response:
    # the app's parts straight from app.state, not as dependencies: FastAPI resolves each dependency like an
    # endpoint (query, headers, cookies parsed again), a tenth of this route's event-loop time under load
    state = http.app.state
    loaded = await served_model(
        state.cache, FORECASTER_ARTIFACT, "a forecaster", request.model, request.alias, request.version
    )
    forecaster: Forecaster = loaded.model
    history, timestamps = await _history_of(request, loaded, state.store, state.settings)
    values = await state.batcher.forecast(forecaster, history[-forecaster.lookback :], request.horizon)
    state.metrics.series.labels(request.model, loaded.version).inc()
    return _json(_response(loaded, request, values, timestamps))


@router.post(
    "/forecast/batch",
    response_model=BatchForecastResponse,
    responses={**MODEL_RESPONSES, **JSON_ONLY_RESPONSES},
    summary="Forecast many series; one compiled call per (model version, horizon)",
)
async def forecast_batch(
    batch: BatchForecastRequest, cache: CacheDep, settings: SettingsDep, metrics: MetricsDep, store: StoreDep
) -> Response:
    items: list[tuple[LoadedModel, np.ndarray, list[str] | None]] = []
    groups: dict[tuple[str, str, int], list[int]] = {}
    for i, request in enumerate(batch.requests):
        where = f"requests[{i}]: "
        loaded = await served_model(
            cache, FORECASTER_ARTIFACT, "a forecaster", request.model, request.alias, request.version, where
        )
        items.append((loaded, *await _history_of(request, loaded, store, settings, where)))
        groups.setdefault((request.model, loaded.version, request.horizon), []).append(i)

    def run_groups() -> dict[int, np.ndarray]:
        out: dict[int, np.ndarray] = {}  # request index -> its forecast
        for (_, _, horizon), members in groups.items():
            forecaster: Forecaster = items[members[0]][0].model
            windows = np.stack([items[i][1][-forecaster.lookback :] for i in members])  # checked: _history_of
            values = forecaster.forecast_windows(windows, horizon)  # a row per member
            out.update(zip(members, values, strict=True))
        return out

    forecasts = await anyio.to_thread.run_sync(run_groups)
    results = []
    for i, request in enumerate(batch.requests):
        loaded, _, timestamps = items[i]
        results.append(_response(loaded, request, forecasts[i], timestamps, f"requests[{i}]: "))
    for (model, version, _), members in groups.items():
        metrics.series.labels(model, version).inc(len(members))
    return _json({"results": results})
