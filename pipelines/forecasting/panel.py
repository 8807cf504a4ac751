"""A panel model as served: networks shared by many series, each series served by its backtest winner (the
networks or a free forecast); trained by ``panel_training.py``.

Serving (:class:`PanelForecaster`) reads the last ``lookback`` values of a series (the context): the networks
forecast in the series' stored scaling, the free forecasts from the same context (drift: the line through the
context's first and last values). A series the panel never saw is forecast by the networks, scaled by its own
context, and marked unseen. Intervals are conformal, from the series' own backtest errors where it has
``MIN_OWN_FOLDS`` folds, else from the panel's errors scaled by the series' seasonal-naive MAE.

Saved as one ``.keras`` file per network (``safe_mode=True``) and a JSON config: nothing is pickled.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from models import preprocessing  # noqa: F401  (registers the custom layers saved models may hold)
from models.baselines import BASELINES
from models.recursive import RecursiveForecaster
from pipelines.forecasting import metrics
from pipelines.forecasting.conformal import extended_widths, independent_forecasts
from pipelines.forecasting.forecaster import MAX_DEVIATIONS, HistoryError, finite_history

log = logging.getLogger(__name__)

CONFIG_FILE = "panel.json"
SERIES_FILE = "series.npz"  # what the panel knows of each series, as arrays (loaded with allow_pickle=False)
NETWORK = "network"
MIN_OWN_FOLDS = 3  # fewer backtest folds than this: the series' intervals borrow the panel's errors, scaled
OWN = "series backtest"
BORROWED = "panel backtest, scaled by this history's seasonal-naive MAE"


@dataclass(frozen=True)
class Member:
    """One network of the served combination: its Keras model reads the last ``lookback`` values in ``kind``
    scaling (each series' own scaler of that kind)."""

    model: keras.Model
    kind: str
    lookback: int
    description: str


@dataclass
class SeriesFacts:
    """What the panel model knows of one series it was trained on."""

    scalers: dict[str, tuple[float, float]]  # kind -> (loc, scale), fitted on the series' whole training history
    winner: str  # NETWORK or a free forecast's name: what serves this series
    mase: dict[str, float]  # backtest MASE of the network and of each free forecast
    abs_residuals: np.ndarray  # the winner's backtest errors [folds, horizon], raw units
    origins: list[int]  # where those folds started
    scale: float  # the series' in-sample seasonal-naive MAE (its MASE denominator)
    slope: float = 0.0  # drift's: the line through the first and last values the panel trained on


class SeriesTable(Mapping[str, SeriesFacts]):
    """What a panel model knows of every series, held as columns: a 10,000-series panel is a few arrays, not
    10,000 objects (the service's memory must not grow with the series count). Reads as a mapping name ->
    :class:`SeriesFacts`, each built when asked for."""

    def __init__(self, names: list[str], winners: list[str], arrays: dict[str, np.ndarray]):
        self.names = names
        self.positions = {name: i for i, name in enumerate(names)}
        self.winners = list(winners)
        # scaler_<kind> [N, 2]; mase [N, C] over the names in mase_of; residuals [N, F, H] and origins [N, F],
        # padded with NaN and -1 where a series has fewer folds; scale [N]
        self.arrays = arrays

    @classmethod
    def of(cls, facts: dict[str, SeriesFacts]) -> SeriesTable:
        names = list(facts)
        rows = list(facts.values())
        kinds = sorted({k for f in rows for k in f.scalers})
        mase_of = sorted({c for f in rows for c in f.mase})
        folds = max((len(f.origins) for f in rows), default=0)
        horizon = max((f.abs_residuals.shape[1] for f in rows if f.abs_residuals.ndim == 2), default=0)
        residuals = np.full((len(rows), folds, horizon), np.nan)
        origins = np.full((len(rows), folds), -1, dtype=np.int64)
        for i, f in enumerate(rows):
            residuals[i, : len(f.abs_residuals)] = f.abs_residuals
            origins[i, : len(f.origins)] = f.origins
        arrays = {
            **{f"scaler_{k}": np.array([f.scalers.get(k, (np.nan, np.nan)) for f in rows]) for k in kinds},
            "mase": np.array([[f.mase.get(c, np.nan) for c in mase_of] for f in rows]).reshape(len(rows), -1),
            "mase_of": np.array(mase_of, dtype=str),
            "residuals": residuals,
            "origins": origins,
            "scale": np.array([f.scale for f in rows], dtype=np.float64),
            "slope": np.array([f.slope for f in rows], dtype=np.float64),
        }
        return cls(names, [f.winner for f in rows], arrays)

    def __getitem__(self, name: str) -> SeriesFacts:
        i = self.positions[name]
        a = self.arrays
        folds = int((a["origins"][i] >= 0).sum())
        kinds = [key.removeprefix("scaler_") for key in a if key.startswith("scaler_")]
        return SeriesFacts(
            {k: (float(a[f"scaler_{k}"][i, 0]), float(a[f"scaler_{k}"][i, 1])) for k in kinds},
            self.winners[i],
            {str(c): float(v) for c, v in zip(a["mase_of"], a["mase"][i], strict=True) if np.isfinite(v)},
            a["residuals"][i, :folds],
            [int(o) for o in a["origins"][i, :folds]],
            float(a["scale"][i]),
            float(a["slope"][i]),
        )

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self.positions

    def scalers(self, kind: str, names: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
        """(known [B] bool, loc/scale [B, 2]) of each name's ``kind`` scaler (rows of unknown names are NaN)."""
        rows = np.array([self.positions.get(n, -1) if n is not None else -1 for n in names], dtype=np.int64)
        known = rows >= 0
        out = np.full((len(rows), 2), np.nan)
        out[known] = self.arrays[f"scaler_{kind}"][rows[known]]
        return known, out

    def header(self, horizon: int) -> dict:
        """The JSON side of the saved table: names and winners in order, and each series' length when trained (its
        last fold's origin + the horizon: what retraining counts new points from)."""
        origins = self.arrays["origins"]
        last = origins[np.arange(len(origins)), np.maximum((origins >= 0).sum(axis=1) - 1, 0)]
        return {"names": self.names, "winners": self.winners, "lengths": (last + horizon).tolist()}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SeriesTable):
            return NotImplemented
        return (
            (self.names, self.winners) == (other.names, other.winners)
            and self.arrays.keys() == other.arrays.keys()
            and all(np.array_equal(v, other.arrays[k], equal_nan=v.dtype.kind == "f") for k, v in self.arrays.items())
        )


class PanelForecaster:
    """Networks shared by a panel of series plus what it knows of each: raw windows in, raw forecasts out."""

    def __init__(
        self,
        members: list[Member],
        series: Mapping[str, SeriesFacts],
        *,
        season: int,
        freq: str | None,
        horizon: int,
        pooled_residuals: np.ndarray,
        meta: dict | None = None,
        compiled: bool = True,
    ):
        self.members = members
        self.series = series if isinstance(series, SeriesTable) else SeriesTable.of(dict(series))
        self.season, self.freq, self.horizon = season, freq, horizon
        # every series' backtest errors over its MASE scale [rows, horizon]: arrays, not lists (10,000 series)
        self.pooled_residuals = np.asarray(pooled_residuals, dtype=np.float64)
        self.meta = meta or {}
        self.lookback = max(m.lookback for m in members)
        self.variant = "panel"
        self._recursive = [RecursiveForecaster(m.model, compiled=compiled) for m in members]
        self._log = any(m.kind == "log" for m in members)

    @property
    def min_history(self) -> int:
        return self.lookback

    def usual_horizon(self) -> int:
        return self.horizon

    def knows(self, name: str | None) -> bool:
        return name is not None and name in self.series

    def check_history(self, history, name: str | None = None) -> np.ndarray:
        """The history as float64, or a :class:`HistoryError` naming the first value the networks cannot take."""
        values = finite_history(history, self.lookback)
        first = len(values) - self.lookback
        window = values[first:]
        if self._log and (window <= 0).any():
            i = first + int(np.flatnonzero(window <= 0)[0])
            raise HistoryError(
                f"history[{i}] is {values[i]:g}; this model log-transforms its input, so only values > 0 are allowed"
            )
        if self.knows(name):  # a seen series in its own scaling: far outside it, the networks saturate
            for member in self.members:
                loc, scale = self.series[name].scalers[member.kind]  # type: ignore[index]
                z = (_forward(window, member.kind) - loc) / scale
                if (np.abs(z) > MAX_DEVIATIONS).any():
                    i = first + int(np.flatnonzero(np.abs(z) > MAX_DEVIATIONS)[0])
                    raise HistoryError(
                        f"history[{i}] is {values[i]:g}, more than {MAX_DEVIATIONS:g} standard deviations from "
                        f"series {name!r}'s training values; this model cannot represent it"
                    )
        return values

    def winner(self, name: str | None) -> str:
        return self.series.winners[self.series.positions[name]] if self.knows(name) else NETWORK  # type: ignore[index]

    def network_forecast(self, windows: np.ndarray, horizon: int, names: Sequence[str | None]) -> np.ndarray:
        """The networks' mean forecast ``[B, horizon]`` from raw windows ``[B, >= lookback]``, one call per network
        for all rows; each row in its series' scaling (an unseen series' own, fitted on its window)."""
        windows = np.asarray(windows, dtype=np.float64)
        out = np.zeros((len(windows), horizon))
        for member, recursive in zip(self.members, self._recursive, strict=True):
            x = _forward(windows[:, -member.lookback :], member.kind)
            known, scalers = self.series.scalers(member.kind, names)
            spread = x.std(axis=1)  # an unseen series is scaled by its own window
            loc = np.where(known, scalers[:, 0], x.mean(axis=1))
            scale = np.where(known, scalers[:, 1], np.where(spread > 1e-12, spread, 1.0))
            z = recursive((x - loc[:, None]) / scale[:, None], horizon)
            y = z * scale[:, None] + loc[:, None]
            out += np.exp(np.minimum(y, 700.0)) if member.kind == "log" else y
        return out / len(self.members)

    def forecast_windows(self, windows: np.ndarray, horizon: int, names: Sequence[str | None]) -> np.ndarray:
        """Each row forecast by its series' winner: the networks, or a free forecast (naive and seasonal naive from
        the window; drift along the slope of the whole history the panel trained on)."""
        if horizon < 1:
            raise HistoryError(f"horizon is {horizon}; it must be at least 1")
        windows = np.asarray(windows, dtype=np.float64)[:, -self.lookback :]
        out = self.network_forecast(windows, horizon, names)
        steps = np.arange(1, horizon + 1)
        for r, name in enumerate(names):
            won = self.winner(name)
            if won == "drift" and name is not None:  # along the slope of the history it trained on (the backtest's)
                out[r] = windows[r, -1] + self.series.arrays["slope"][self.series.positions[name]] * steps
            elif won != NETWORK:
                out[r] = BASELINES[won]([windows[r]], horizon, self.season)[0]
        return out

    def forecast(self, history, horizon: int, name: str | None = None) -> np.ndarray:
        return self.forecast_windows(self.check_history(history, name)[None, -self.lookback :], horizon, [name])[0]

    def intervals(
        self, forecast: np.ndarray, levels, name: str | None, window: np.ndarray
    ) -> tuple[dict[float, tuple[np.ndarray, np.ndarray]], str]:
        """Conformal intervals around ``forecast`` and how they were made (:data:`OWN` or :data:`BORROWED`)."""
        facts = self.series.get(name) if name is not None else None
        if facts is not None and len(facts.abs_residuals) >= MIN_OWN_FOLDS:
            residuals, folds, how = (
                facts.abs_residuals,
                independent_forecasts(facts.origins, self.horizon),
                OWN,
            )
        else:
            scale = facts.scale if facts is not None else metrics.naive_scale(window, self.season)
            residuals, folds, how = self.pooled_residuals * scale, None, BORROWED
        out = {}
        for level in levels:
            if not 0 < level < 1:
                raise HistoryError(f"interval level {level} is outside (0, 1)")
            width = extended_widths(residuals, len(forecast), level, folds)
            lower, upper = forecast - width, forecast + width
            if not (np.isfinite(lower).all() and np.isfinite(upper).all()):
                raise HistoryError(f"the {level:g} interval is not finite; ask for a lower level or leave levels out")
            out[level] = (lower, upper)
        return out, how

    def config(self) -> dict:
        return {
            "members": [
                {"file": f"member_{k}.keras", "kind": m.kind, "lookback": m.lookback, "description": m.description}
                for k, m in enumerate(self.members)
            ],
            "season": self.season,
            "freq": self.freq,
            "horizon": self.horizon,
            "meta": self.meta,
            "series": self.series.header(self.horizon),
        }

    def arrays(self) -> dict[str, np.ndarray]:
        """The numbers saved beside the JSON config (``SERIES_FILE``): every series' facts and the pooled errors."""
        return {**self.series.arrays, "pooled_residuals": self.pooled_residuals}

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = self.config()
        for member, entry in zip(self.members, config["members"], strict=True):
            member.model.save(directory / entry["file"])
        (directory / CONFIG_FILE).write_text(json.dumps(config))
        np.savez(directory / SERIES_FILE, allow_pickle=False, **self.arrays())
        return directory

    @classmethod
    def load(cls, directory: str | Path, compiled: bool = True) -> PanelForecaster:
        directory = Path(directory)
        config = json.loads((directory / CONFIG_FILE).read_text())
        with np.load(directory / SERIES_FILE, allow_pickle=False) as saved:  # plain arrays: nothing unpickled
            arrays = {key: saved[key] for key in saved.files}
        pooled = arrays.pop("pooled_residuals")
        members = [
            Member(
                keras.saving.load_model(directory / m["file"], safe_mode=True, compile=False),
                m["kind"],
                int(m["lookback"]),
                m["description"],
            )
            for m in config["members"]
        ]
        return cls(
            members,
            SeriesTable(config["series"]["names"], config["series"]["winners"], arrays),
            season=int(config["season"]),
            freq=config.get("freq"),
            horizon=int(config["horizon"]),
            pooled_residuals=pooled,
            meta=config.get("meta", {}),
            compiled=compiled,
        )


def _forward(values: np.ndarray, kind: str) -> np.ndarray:
    return np.log(values) if kind == "log" else values
