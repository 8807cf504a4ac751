"""``POST /v1/forecast`` and ``POST /v1/forecast/batch``: recursive multi-step forecasts from the registry.

Each route reads: look up the model (``served_model``), build the input (``service/inputs.py``: the request's
history checked by the model, or the latest ``lookback`` values of a stored series, and the forecast's
timestamps), batch, respond. The request's own rules are its schema's (``service/schemas.py``); bad input is a
:class:`pipelines.forecasting.errors.ForecastInputError` of its kind (a 422), placed (``requests[3]: ``) in a
batch.

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
from fastapi import APIRouter, Request, Response
from starlette.datastructures import State

from pipelines.forecasting.errors import ForecastInputError, HistoryError
from pipelines.forecasting.forecaster import Forecaster
from pipelines.forecasting.panel import PanelForecaster
from pipelines.forecasting.pyfunc import FORECASTER_ARTIFACT, PANEL_ARTIFACT
from pipelines.settings import Settings
from pipelines.store import SeriesNotFound
from service import batching
from service.batching import Batcher
from service.cache import LoadedModel, Loader, ModelCache
from service.deps import CacheDep, MetricsDep, SettingsDep, StoreDep
from service.errors import JSON_ONLY_RESPONSES, MODEL_RESPONSES
from service.inputs import ForecastInput, build_input, check_horizon, stored_input
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


def _response(
    loaded: LoadedModel, model: str, levels: list[float] | None, forecast: np.ndarray, given: ForecastInput
) -> dict:
    """The answer: ``forecast`` of input ``given`` by version ``loaded`` of ``model``, with its intervals."""
    if not np.isfinite(forecast).all():
        raise HistoryError("the forecast is not finite: the history's values are too large for this model")
    body: dict = {"model": model, "version": loaded.version, "forecast": forecast}
    panel = loaded.model if loaded.kind == PANEL_ARTIFACT else None
    if panel is not None:
        body["series"] = given.series
        body["seen_in_training"] = panel.knows(given.series)
        body["served_by"] = panel.winner(given.series)
    if given.timestamps is not None:
        body["timestamps"] = given.timestamps
    if levels:
        if panel is not None:
            bands, body["intervals_from"] = panel.intervals(forecast, levels, given.series, given.window)
        else:
            bands = loaded.model.intervals(forecast, levels)
        body["intervals"] = {level_key(level): {"lower": lo, "upper": hi} for level, (lo, hi) in bands.items()}
        # later steps' widths are extended (conformal.py)
        body["calibrated_steps"] = panel.horizon if panel is not None else loaded.model.calibrated_steps
    return body


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


async def forecast_one(state: State, request: ForecastRequest, loaded: LoadedModel) -> dict:
    """The answer of ``POST /v1/forecast`` to ``request`` by ``loaded`` (``served_model``'s), as a dict: the input
    built (``service/inputs.py``), forecast through the app's batcher (a panel model: one ``forecast_windows``
    call in a worker thread), answered. ``POST /invocations`` (``routes/invocations.py``) answers through it too."""
    given = await build_input(request, loaded, state.store, state.settings.max_horizon)
    if loaded.kind == PANEL_ARTIFACT:
        rows = await anyio.to_thread.run_sync(
            loaded.model.forecast_windows, given.window[None], request.horizon, [given.series]
        )
        values = rows[0]
    else:
        values = await state.batcher.forecast(loaded.model, given.window, request.horizon)
    state.metrics.series.labels(request.model, loaded.version).inc()
    return _response(loaded, request.model, request.levels, values, given)


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
    requests = batch.requests
    items: list[tuple[LoadedModel, ForecastInput]] = []
    groups: dict[tuple[str, str, int], list[int]] = {}
    for i, request in enumerate(requests):
        where = f"requests[{i}]: "
        loaded = await served_model(
            cache, FORECASTERS, "a forecaster", request.model, request.alias, request.version, where
        )
        try:
            items.append((loaded, await build_input(request, loaded, store, settings.max_horizon)))
        except ForecastInputError as exc:
            raise exc.at(where) from None
        groups.setdefault((request.model, loaded.version, request.horizon), []).append(i)

    def run_groups() -> dict[int, np.ndarray]:
        out: dict[int, np.ndarray] = {}  # request index -> its forecast
        for (_, _, horizon), members in groups.items():
            loaded = items[members[0]][0]
            windows = np.stack([items[i][1].window for i in members])
            if loaded.kind == PANEL_ARTIFACT:  # each row by its series' winner
                values = loaded.model.forecast_windows(windows, horizon, [items[i][1].series for i in members])
            else:
                values = loaded.model.forecast_windows(windows, horizon)  # a row per member
            out.update(zip(members, values, strict=True))
        return out

    forecasts = await anyio.to_thread.run_sync(run_groups)
    results = []
    for i, (request, (loaded, given)) in enumerate(zip(requests, items, strict=True)):
        try:
            results.append(_response(loaded, request.model, request.levels, forecasts[i], given))
        except ForecastInputError as exc:
            raise exc.at(f"requests[{i}]: ") from None
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
    check_horizon(horizon, settings.max_horizon)
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
    inputs = []
    for i, name in enumerate(names):
        info, index, values = stored[name]
        try:
            inputs.append(stored_input(loaded, model, name, info.freq, index, values, horizon))
        except ForecastInputError as exc:
            raise (exc.at(f"series[{i}]: ") if batch.series is not None else exc) from None
    rows = np.stack([given.window for given in inputs])
    forecasts = await anyio.to_thread.run_sync(panel.forecast_windows, rows, horizon, names)
    results = []
    for i, (name, given) in enumerate(zip(names, inputs, strict=True)):
        try:
            results.append(_response(loaded, model, batch.levels, forecasts[i], given))
        except ForecastInputError as exc:
            raise exc.at(f"series[{i}]: " if batch.series is not None else f"series {name!r}: ") from None
    metrics.series.labels(model, loaded.version).inc(len(names))
    return _json({"results": results})
