"""``POST /v1/forecast`` and ``POST /v1/forecast/batch``: recursive multi-step forecasts from the registry.

Without ``history`` a request forecasts the stored series named like the model (or ``series``): its latest
``lookback`` values are read from the series store (on the store's threads), and the forecast's timestamps
continue the stored ones at the series' frequency.

``POST /v1/forecast`` goes through the app's :class:`service.batching.Batcher`: concurrent requests for one
model version and horizon become one compiled call, a lone one runs at once, and each answer is the same to
the bit either way. A batch request is grouped by (model version, horizon) and each group is one batched
compiled call, run in a worker thread so other requests keep flowing. Answers are serialised once, by orjson
(numpy arrays included), without FastAPI's re-validation of the response.

A panel model (:class:`pipelines.forecasting.panel.PanelForecaster`, one model for many series) forecasts the
stored series a request names (``series``) or a sent ``history`` (a series it never saw); its answers add
``series``, ``seen_in_training``, ``served_by`` (the series' backtest winner) and, with intervals,
``intervals_from``. Its forecasts are one ``forecast_windows`` call in a worker thread (not through the batcher).
``POST /v1/forecast/batch`` also takes a panel model's batch, ``{"model", "horizon", "series"?}``: every named
series (or every series of the model) read in one store query and forecast in one call.
"""

from __future__ import annotations

import logging
import threading

import anyio
import numpy as np
import orjson
import pandas as pd
from fastapi import APIRouter, Request, Response
from pandas.tseries.frequencies import to_offset
from pandas.tseries.offsets import Tick
from starlette.datastructures import State

from pipelines.forecasting.data import LAST_TIME, DataError, infer_freq, next_timestamps, parse_times
from pipelines.forecasting.forecaster import Forecaster, HistoryError
from pipelines.forecasting.panel import PanelForecaster
from pipelines.forecasting.pyfunc import FORECASTER_ARTIFACT, PANEL_ARTIFACT
from pipelines.settings import Settings
from pipelines.store import SeriesInfo, SeriesNotFound
from service import batching
from service.batching import Batcher
from service.cache import LoadedModel, Loader, ModelCache
from service.deps import CacheDep, MetricsDep, SettingsDep, StoreDep
from service.errors import JSON_ONLY_RESPONSES, MODEL_RESPONSES
from service.monitoring import Metrics
from service.routes import JsonBodyRoute, served_model
from service.schemas import (
    BatchForecastRequest,
    BatchForecastResponse,
    ForecastRequest,
    ForecastResponse,
    level_key,
)
from service.store import StoreAccess

log = logging.getLogger(__name__)

FORECASTERS = (FORECASTER_ARTIFACT, PANEL_ARTIFACT)  # the kinds POST /v1/forecast serves


def forecaster_loader(batcher: Batcher) -> Loader:
    """Forecasters load from their bundle and warm up the programs ``batcher`` calls."""
    return Loader(Forecaster.load, lambda forecaster: batching.warm(forecaster, batcher.max_size))


def panel_loader() -> Loader:
    """Panel models load from their folder; one model whatever the number of series."""
    return Loader(PanelForecaster.load, warm_panel)


def warm_panel(panel: PanelForecaster) -> None:
    """Compile what a single forecast runs (one window, the usual horizon) before the model takes traffic, and
    the program of a batch of all its series in the background (not a daemon: see ``batching.warm``)."""
    window = 1.0 + np.arange(panel.lookback) / panel.lookback  # positive: a log-transforming network takes it
    panel.forecast_windows(window[None], panel.usual_horizon(), [None])
    if len(panel.series) > 1:
        windows = np.tile(window, (len(panel.series), 1))
        threading.Thread(target=_compile_all, args=(panel, windows), name="seqcast-compile-panel", daemon=False).start()


def _compile_all(panel: PanelForecaster, windows: np.ndarray) -> None:
    try:
        panel.forecast_windows(windows, panel.usual_horizon(), [None] * len(windows))
    except Exception:  # a batch of all the series compiles on first use instead
        log.exception("compiling the panel model's batch program failed")


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
) -> tuple[np.ndarray, list[str]] | None:
    """The latest ``lookback`` stored values of the request's series and the forecast's timestamps after them;
    None when the request carries its history (or names no series and none is stored under the model's name)."""
    if request.history is not None:
        if request.series is not None:
            raise HistoryError(f"{where}give either history or series, not both")
        return None
    if request.timestamps is not None:
        raise HistoryError(f"{where}timestamps go with history; a stored series brings its own")
    name = request.series or request.model
    try:
        stored = await store.latest(name, loaded.model.lookback)
    except SeriesNotFound:
        if request.series is None:
            return None  # nothing stored under the model's name: history is required (said by _checked_history)
        raise
    values, last, freq = _stored_window(name, stored, request.model, loaded, where)
    return values, _future(last, freq, request.horizon, where)


def _stored_window(
    name: str, stored: tuple[SeriesInfo, pd.DatetimeIndex, np.ndarray], model: str, loaded: LoadedModel, where: str
) -> tuple[np.ndarray, pd.Timestamp, str]:
    """The stored ``(info, index, values)`` of series ``name`` (``SeriesStore.latest``) as the window a model
    reads: at least its lookback values, one at every step; with the last timestamp and the series' frequency."""
    info, index, values = stored
    need = loaded.model.lookback
    if len(values) < need:
        raise HistoryError(
            f"{where}series {name!r} has {len(values)} stored values; model {model!r} version "
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
    return values, index[-1], info.freq


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


def _response(
    loaded: LoadedModel,
    model: str,
    levels: list[float] | None,
    forecast: np.ndarray,
    timestamps,
    where: str = "",
    *,
    series: str | None = None,
    window: np.ndarray | None = None,
) -> dict:
    """An answer: ``forecast`` by version ``loaded`` of ``model``; for a panel model, of ``series`` (None: a sent
    history) from ``window`` (the values it read)."""
    if not np.isfinite(forecast).all():
        raise HistoryError(f"{where}the forecast is not finite: the history's values are too large for this model")
    body: dict = {"model": model, "version": loaded.version, "forecast": forecast}
    panel = loaded.model if loaded.kind == PANEL_ARTIFACT else None
    if panel is not None:
        body["series"] = series
        body["seen_in_training"] = panel.knows(series)
        body["served_by"] = panel.winner(series)
    if timestamps is not None:
        body["timestamps"] = timestamps
    if levels:
        try:
            if panel is not None:
                bands, body["intervals_from"] = panel.intervals(forecast, levels, series, window)
            else:
                bands = loaded.model.intervals(forecast, levels)
        except HistoryError as exc:
            raise HistoryError(f"{where}{exc}") from None
        body["intervals"] = {level_key(level): {"lower": lo, "upper": hi} for level, (lo, hi) in bands.items()}
        # later steps' widths are extended (conformal.py)
        body["calibrated_steps"] = panel.horizon if panel is not None else loaded.model.calibrated_steps
    return body


def _needs_series(model: str, loaded: LoadedModel, where: str = "") -> HistoryError:
    panel: PanelForecaster = loaded.model
    return HistoryError(
        f"{where}model {model!r} version {loaded.version} is a panel model of {len(panel.series)} series: give series "
        f"(a stored series: one of its own, listed by GET /v1/models/{model}, or any other) or history (at least "
        f"{panel.lookback} numbers, oldest first)"
    )


def _checked_stored(loaded: LoadedModel, values: np.ndarray, name: str, where: str = "") -> np.ndarray:
    """A panel model's check of the stored values of series ``name`` (its own scaling, for a series it knows)."""
    try:
        return loaded.model.check_history(values, name)
    except HistoryError as exc:
        raise HistoryError(f"{where}series {name!r}: {exc}") from None


async def _history_of(
    request: ForecastRequest, loaded: LoadedModel, store: StoreAccess, settings: Settings, where: str = ""
) -> tuple[np.ndarray, list[str] | None]:
    """The checked history a request forecasts from (its own, or the store's) and the forecast's timestamps."""
    if request.horizon > settings.max_horizon:
        raise HistoryError(f"{where}horizon is {request.horizon}; allowed: 1 to {settings.max_horizon}")
    panel = loaded.kind == PANEL_ARTIFACT
    if panel and request.history is None and request.series is None:
        raise _needs_series(request.model, loaded, where)
    stored = await _stored_history(request, loaded, store, where)
    if stored is not None:
        if panel:
            return _checked_stored(loaded, stored[0], request.series, where), stored[1]  # type: ignore[arg-type]
        return loaded.model.check_history(stored[0]), stored[1]
    history = _checked_history(request, loaded.model, where)  # a panel model: a series it never saw
    return history, _continued_timestamps(request, history, loaded.model, where)


def _json(body: dict) -> Response:
    # built from checked finite floats (numpy arrays) and strings: one orjson pass, no FastAPI re-validation
    return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")


@router.post(
    "/forecast",
    response_model=ForecastResponse,
    responses={**MODEL_RESPONSES, **JSON_ONLY_RESPONSES},
    summary="Forecast one series (for a panel model: one of its series, another stored series, or a history)",
)
async def forecast(request: ForecastRequest, http: Request) -> Response:
    # the app's parts straight from app.state, not as dependencies: FastAPI resolves each dependency like an
    # endpoint (query, headers, cookies parsed again), a tenth of this route's event-loop time under load
    state = http.app.state
    loaded = await served_model(state.cache, FORECASTERS, "a forecaster", request.model, request.alias, request.version)
    return _json(await forecast_one(state, request, loaded))


async def forecast_one(state: State, request: ForecastRequest, loaded: LoadedModel, where: str = "") -> dict:
    """The answer of ``POST /v1/forecast`` to ``request`` by ``loaded`` (``served_model``'s), as a dict: through
    the app's batcher (a panel model: one ``forecast_windows`` call in a worker thread). ``where`` prefixes the
    messages of the errors it raises. ``POST /invocations`` (``routes/invocations.py``) answers through it too."""
    history, timestamps = await _history_of(request, loaded, state.store, state.settings, where)
    window = history[-loaded.model.lookback :]
    if loaded.kind == PANEL_ARTIFACT:
        names = [request.series]  # None: a history, a series the model never saw
        values = (await anyio.to_thread.run_sync(loaded.model.forecast_windows, window[None], request.horizon, names))[
            0
        ]
    else:
        values = await state.batcher.forecast(loaded.model, window, request.horizon)
    state.metrics.series.labels(request.model, loaded.version).inc()
    return _response(
        loaded, request.model, request.levels, values, timestamps, where, series=request.series, window=window
    )


@router.post(
    "/forecast/batch",
    response_model=BatchForecastResponse,
    responses={**MODEL_RESPONSES, **JSON_ONLY_RESPONSES},
    summary="Forecast many series; one compiled call per (model version, horizon); or a panel model's series",
)
async def forecast_batch(
    batch: BatchForecastRequest, cache: CacheDep, settings: SettingsDep, metrics: MetricsDep, store: StoreDep
) -> Response:
    if batch.requests is None:
        return await _panel_batch(batch, cache, settings, metrics, store)
    items: list[tuple[LoadedModel, np.ndarray, list[str] | None]] = []
    groups: dict[tuple[str, str, int], list[int]] = {}
    for i, request in enumerate(batch.requests):
        where = f"requests[{i}]: "
        loaded = await served_model(
            cache, FORECASTERS, "a forecaster", request.model, request.alias, request.version, where
        )
        items.append((loaded, *await _history_of(request, loaded, store, settings, where)))
        groups.setdefault((request.model, loaded.version, request.horizon), []).append(i)
    requests = batch.requests

    def run_groups() -> dict[int, np.ndarray]:
        out: dict[int, np.ndarray] = {}  # request index -> its forecast
        for (_, _, horizon), members in groups.items():
            loaded = items[members[0]][0]
            windows = np.stack([items[i][1][-loaded.model.lookback :] for i in members])  # checked: _history_of
            if loaded.kind == PANEL_ARTIFACT:  # each row by its series' winner
                values = loaded.model.forecast_windows(windows, horizon, [requests[i].series for i in members])
            else:
                values = loaded.model.forecast_windows(windows, horizon)  # a row per member
            out.update(zip(members, values, strict=True))
        return out

    forecasts = await anyio.to_thread.run_sync(run_groups)
    results = []
    for i, request in enumerate(requests):
        loaded, history, timestamps = items[i]
        window = history[-loaded.model.lookback :]
        where = f"requests[{i}]: "
        results.append(
            _response(
                loaded,
                request.model,
                request.levels,
                forecasts[i],
                timestamps,
                where,
                series=request.series,
                window=window,
            )
        )
    for (model, version, _), members in groups.items():
        metrics.series.labels(model, version).inc(len(members))
    return _json({"results": results})


async def _panel_batch(
    batch: BatchForecastRequest, cache: ModelCache, settings: Settings, metrics: Metrics, store: StoreAccess
) -> Response:
    """A panel model's batch: the named stored series (or every series of the model) read in one store query and
    forecast in one ``forecast_windows`` call, in a worker thread; answers in the order asked."""
    model, horizon = batch.model, batch.horizon
    assert model is not None and horizon is not None  # BatchForecastRequest: requests, or model and horizon
    loaded = await served_model(cache, PANEL_ARTIFACT, "a panel model", model, batch.alias, batch.version)
    panel: PanelForecaster = loaded.model
    if horizon > settings.max_horizon:
        raise HistoryError(f"horizon is {horizon}; allowed: 1 to {settings.max_horizon}")
    names = batch.series if batch.series is not None else list(panel.series)
    stored = await store.latest_many(names, panel.lookback)
    missing = [name for name in dict.fromkeys(names) if name not in stored]
    if missing:
        others = f" (nor {len(missing) - 1} more of the {len(names)} asked for)" if len(missing) > 1 else ""
        first = names.index(missing[0])
        where = f"series[{first}]: " if batch.series is not None else f"series of model {model!r}: "
        raise SeriesNotFound(
            f"{where}no series named {missing[0]!r} is stored{others}; GET /v1/series or seqcast series lists them"
        )
    windows, stamps, futures = [], [], {}
    for i, name in enumerate(names):
        where = f"series[{i}]: " if batch.series is not None else ""
        values, last, freq = _stored_window(name, stored[name], model, loaded, where)
        windows.append(_checked_stored(loaded, values, name, where)[-panel.lookback :])
        if (last, freq) not in futures:  # a panel's series often end together: their timestamps are made once
            futures[last, freq] = _future(last, freq, horizon, where)
        stamps.append(futures[last, freq])
    rows = np.stack(windows)
    forecasts = await anyio.to_thread.run_sync(panel.forecast_windows, rows, horizon, names)
    results = [
        _response(
            loaded,
            model,
            batch.levels,
            forecasts[i],
            stamps[i],
            f"series[{i}]: " if batch.series is not None else f"series {name!r}: ",
            series=name,
            window=rows[i],
        )
        for i, name in enumerate(names)
    ]
    metrics.series.labels(model, loaded.version).inc(len(names))
    return _json({"results": results})
