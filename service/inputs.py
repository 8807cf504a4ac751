"""The forecast endpoints' one input building: a request and the model it names -> what the model reads.

``POST /v1/forecast``, ``POST /v1/forecast/batch`` (both shapes) and ``POST /invocations`` build their inputs
here; a request's history goes from here to the model (through the batcher) and never back through a route.
What the request says on its own (history or series, timestamps with a history and one per value, alias or
version) is its schema's (``service/schemas.py``); what depends on the model (its lookback and value range, a
panel model's series), on the store (a stored window without gaps) or on the server (the largest horizon) is
checked here, by the forecasting modules' own checks: the model's ``check_history`` and
:mod:`pipelines.forecasting.timeaxis`. Errors: a :class:`ForecastInputError` of its kind (422), or
:class:`SeriesNotFound` (404).

No pandas on the hot path: a sent history without timestamps is one numpy check; the timestamps of a stored
series' forecast are computed once per (last timestamp, frequency, horizon).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.forecasting.errors import HistoryError, HorizonError, NoHistoryError
from pipelines.forecasting.pyfunc import PANEL_ARTIFACT
from pipelines.forecasting.timeaxis import check_stored_window, continue_timestamps, future_timestamps
from pipelines.store import SeriesNotFound
from service.cache import LoadedModel
from service.schemas import ForecastRequest
from service.store import StoreAccess


@dataclass(frozen=True, slots=True)
class ForecastInput:
    """One series' input to a forecast."""

    window: np.ndarray  # the last ``lookback`` values of the checked history: what the model reads
    timestamps: Sequence[str] | None  # the forecast's, when the history has a time axis
    series: str | None  # the stored series the window was read from; None: a sent history


def check_horizon(horizon: int, max_horizon: int) -> None:
    if horizon > max_horizon:
        raise HorizonError(f"horizon is {horizon}; allowed: 1 to {max_horizon}")


async def build_input(
    request: ForecastRequest, loaded: LoadedModel, store: StoreAccess, max_horizon: int
) -> ForecastInput:
    """The input of ``request`` to ``loaded`` (``served_model``'s): its own history, or the latest stored values
    of its series (default: the series named like the model)."""
    check_horizon(request.horizon, max_horizon)
    if request.history is not None:
        return sent_input(request, loaded)
    if loaded.kind == PANEL_ARTIFACT and request.series is None:
        raise needs_series(request.model, loaded)
    name = request.series or request.model
    try:
        info, index, values = await store.latest(name, loaded.model.lookback)
    except SeriesNotFound:
        if request.series is not None:
            raise
        raise NoHistoryError(  # nothing stored under the model's name
            f"history is required: a list of at least {loaded.model.min_history} numbers, oldest first"
        ) from None
    return stored_input(loaded, request.model, name, info.freq, index, values, request.horizon)


def sent_input(request: ForecastRequest, loaded: LoadedModel) -> ForecastInput:
    """A request's own history (for a panel model: a series it never saw) and the timestamps continuing its own."""
    model = loaded.model
    history = model.check_history(request.history)
    timestamps = (
        continue_timestamps(request.timestamps, request.horizon, model.freq) if request.timestamps is not None else None
    )
    return ForecastInput(history[-model.lookback :], timestamps, None)


def stored_input(
    loaded: LoadedModel,
    model_name: str,
    name: str,
    freq: str,
    index: pd.DatetimeIndex,
    values: np.ndarray,
    horizon: int,
) -> ForecastInput:
    """The latest stored values of series ``name`` (``SeriesStore.latest``: ``index`` and ``values`` at the series'
    ``freq``) as the input of version ``loaded`` of ``model_name``, and the timestamps continuing them."""
    model = loaded.model
    check_stored_window(
        name,
        index,
        values,
        freq,
        model.lookback,
        reader=f"model {model_name!r} version {loaded.version}",
        remedy=f"store it (POST /v1/series/{name}/observations) or send history",
    )
    try:  # a panel model checks a series it knows in that series' own scaling
        history = model.check_history(values, name) if loaded.kind == PANEL_ARTIFACT else model.check_history(values)
    except HistoryError as exc:
        raise exc.at(f"series {name!r}: ") from None
    return ForecastInput(history[-model.lookback :], future_timestamps(index[-1], freq, horizon), name)


def needs_series(model_name: str, loaded: LoadedModel) -> NoHistoryError:
    panel = loaded.model
    return NoHistoryError(
        f"model {model_name!r} version {loaded.version} is a panel model of {len(panel.series)} series: give series "
        f"(a stored series: one of its own, listed by GET /v1/models/{model_name}, or any other) or history (at "
        f"least {panel.lookback} numbers, oldest first)"
    )
