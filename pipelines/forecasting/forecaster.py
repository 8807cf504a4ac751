"""A trained network plus the preprocessing it was trained with: raw history in, raw forecast out.

Training, backtesting, the MLflow pyfunc flavour and the service all forecast through this one class.
Saved as a ``.keras`` file (loaded with ``safe_mode=True``) and a JSON config: nothing is pickled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from models import preprocessing  # noqa: F401  (registers the custom layers saved models may hold)
from models.recursive import RecursiveForecaster
from pipelines.forecasting.conformal import extended_widths, independent_forecasts
from pipelines.forecasting.errors import HistoryError
from pipelines.forecasting.scaling import Scaler
from pipelines.forecasting.train_config import DEFAULT_HORIZON
from pipelines.tracking.bundle import load_bundle, save_bundle
from pipelines.tracking.registry import download
from pipelines.tracking.tags import FORECASTER

CONFIG_FILE = "forecaster.json"
# Histories further than this many training standard deviations from the training mean (after the global
# transform) are refused: the networks saturate there and would answer as if the values were ordinary.
MAX_DEVIATIONS = 20.0


def finite_history(history, lookback: int) -> np.ndarray:
    """A flat history of at least ``lookback`` finite numbers as float64, or a :class:`HistoryError` naming why not
    (every forecaster's first check)."""
    values = np.asarray(history, dtype=np.float64)
    if values.ndim != 1:
        raise HistoryError(f"history must be a flat list of numbers; got shape {values.shape}")
    if len(values) < lookback:
        raise HistoryError(f"history has {len(values)} values; this model needs at least {lookback}")
    if not np.isfinite(values).all():
        i = int(np.flatnonzero(~np.isfinite(values))[0])
        raise HistoryError(f"history[{i}] is {values[i]}; only finite numbers are allowed")
    return values


@dataclass(frozen=True)
class Calibration:
    """What a forecaster's conformal intervals come from: the absolute errors of its backtest's forecasts
    ``[forecasts, steps]`` and where each of those forecasts started (None: not saved, a bundle from before)."""

    abs_residuals: list[list[float]]
    origins: list[int] | None = None

    @classmethod
    def of(cls, errors: np.ndarray, origins) -> Calibration:
        return cls(np.abs(errors).round(10).tolist(), [int(o) for o in origins])

    @property
    def steps(self) -> int:
        """How many horizon steps it covers (0: none)."""
        return len(self.abs_residuals[0]) if self.abs_residuals and len(self.abs_residuals[0]) else 0

    def to_dict(self) -> dict:
        return {"abs_residuals": self.abs_residuals, "origins": self.origins}


def _saved_facts(config: dict) -> tuple[int, Calibration | None, dict]:
    """(horizon, calibration, meta) of a saved config. Bundles saved before the typed record kept the horizon
    and the residuals in ``meta`` (``horizon``, ``abs_residuals``, ``calibration_origins``): read them from there."""
    meta = dict(config.get("meta") or {})
    old_horizon = meta.pop("horizon", None)
    old_calibration = {
        "abs_residuals": meta.pop("abs_residuals", None),
        "origins": meta.pop("calibration_origins", None),
    }
    horizon = config.get("horizon") or old_horizon or DEFAULT_HORIZON
    saved = config.get("calibration", old_calibration)
    calibration = (
        Calibration(saved["abs_residuals"], saved.get("origins")) if saved and saved["abs_residuals"] else None
    )
    return int(horizon), calibration, meta


@dataclass
class Forecaster:
    model: keras.Model
    scaler: Scaler
    lookback: int
    variant: str
    season: int | None = None
    freq: str | None = None
    meta: dict = field(default_factory=dict)  # what a search chose (chosen, winner, search_trials, ...)
    # False: forecasts run as a plain TensorFlow graph, for a model forecast once (training's backtests), where
    # XLA's compile costs more than it saves (models/recursive.py); not saved: a loaded model is compiled
    compiled: bool = True
    horizon: int = DEFAULT_HORIZON  # what it was trained and backtested for: the usual request's horizon
    calibration: Calibration | None = None  # None: no intervals

    def __post_init__(self):
        self._recursive = RecursiveForecaster(self.model, compiled=self.compiled)
        lo, hi = self.scaler.inverse(np.array([-MAX_DEVIATIONS, MAX_DEVIATIONS]))
        self._range = (float(lo), float(hi))  # once per model: check_history runs per request

    @property
    def min_history(self) -> int:
        return self.lookback

    def check_history(self, history) -> np.ndarray:
        """The history as float64, or a :class:`HistoryError` naming the first value the model cannot take.

        Only the window the model reads (the last ``lookback`` values) has to be in its range."""
        values = finite_history(history, self.lookback)
        first = len(values) - self.lookback
        window = values[first:]
        refused = self.scaler.outside_domain(window)
        if refused.any():
            i = first + int(np.flatnonzero(refused)[0])
            raise HistoryError(
                f"history[{i}] is {values[i]:g}; this model log-transforms its input, so only values > 0 are allowed"
            )
        lo, hi = self.value_range()
        outside = (window < lo) | (window > hi)
        if outside.any():
            i = first + int(np.flatnonzero(outside)[0])
            raise HistoryError(
                f"history[{i}] is {values[i]:g}, outside the range this model can represent: {lo:.6g} to {hi:.6g} "
                f"(its training data's mean +- {MAX_DEVIATIONS:g} standard deviations"
                f"{' on the log scale' if self.scaler.kind == 'log' else ''})"
            )
        return values

    def value_range(self) -> tuple[float, float]:
        """The raw values this model can take: the training mean +- ``MAX_DEVIATIONS`` standard deviations."""
        return self._range

    def example_history(self) -> np.ndarray:
        """A history every model accepts (the training mean, from the saved scaler): for warm-up and probes."""
        return np.full(self.lookback, float(self.scaler.inverse(np.zeros(1))[0]))

    def usual_horizon(self) -> int:
        return self.horizon

    def is_compiled(self, horizon: int, batch: int = 1) -> bool:
        """Whether forecasting ``batch`` series ``horizon`` steps ahead runs without compiling first."""
        return self._recursive.is_compiled(batch, horizon)

    def each_is_compiled(self, horizon: int, batch: int) -> bool:
        """Whether :meth:`forecast_each` of ``batch`` series ``horizon`` steps ahead runs without compiling."""
        return self._recursive.each_is_compiled(batch, horizon)

    def warm(self) -> None:
        """Compile the single-series program for the usual horizon and forecast once through the whole path."""
        self.forecast(self.example_history(), self.usual_horizon())

    def forecast_batch(self, histories, horizon: int) -> np.ndarray:
        """Many histories (each at least ``lookback`` long) -> ``forecast[B, horizon]`` in one compiled call."""
        if horizon < 1:
            raise HistoryError(f"horizon is {horizon}; it must be at least 1")
        return self.forecast_windows(np.stack([self.check_history(h)[-self.lookback :] for h in histories]), horizon)

    def forecast_windows(self, windows: np.ndarray, horizon: int) -> np.ndarray:
        """Checked windows ``[B, lookback]`` (the last ``lookback`` values of :meth:`check_history`'s result)
        -> ``forecast[B, horizon]`` in one compiled batch call."""
        return self.scaler.inverse(self._recursive(self.scaler.transform(windows), horizon))

    def forecast_each(self, windows: np.ndarray, horizon: int) -> np.ndarray:
        """:meth:`forecast_windows`, but every row the same to the bit as :meth:`forecast` of that series alone
        (one compiled call that loops over the series: ``models/recursive.py``)."""
        return self.scaler.inverse(self._recursive.each(self.scaler.transform(windows), horizon))

    def forecast(self, history, horizon: int) -> np.ndarray:
        return self.forecast_batch([history], horizon)[0]

    @property
    def calibrated_steps(self) -> int:
        """How many horizon steps the intervals are calibrated for (the backtest's horizon; 0: not calibrated)."""
        return self.calibration.steps if self.calibration is not None else 0

    def intervals(self, forecasts: np.ndarray, levels) -> dict[float, tuple[np.ndarray, np.ndarray]]:
        """Conformal intervals from the backtest's absolute errors at each horizon step; past the calibrated
        steps (:attr:`calibrated_steps`) the last calibrated width grows like ``sqrt(h / H)`` (see conformal.py)."""
        forecasts = np.asarray(forecasts, dtype=np.float64)
        horizon = forecasts.shape[-1]
        if self.calibration is None or not self.calibrated_steps:
            raise HistoryError("this model was not calibrated for intervals; retrain it with a backtest")
        residuals = np.asarray(self.calibration.abs_residuals, dtype=np.float64)  # [folds, steps]
        origins = self.calibration.origins  # where the residuals' forecasts started
        folds = independent_forecasts(origins, residuals.shape[1]) if origins else None
        out = {}
        for level in levels:
            if not 0 < level < 1:
                raise HistoryError(f"interval level {level} is outside (0, 1)")
            width = extended_widths(residuals, horizon, level, folds)  # per step, pooled across steps (conformal.py)
            lower, upper = forecasts - width, forecasts + width
            if not (np.isfinite(lower).all() and np.isfinite(upper).all()):  # JSON has no infinity
                raise HistoryError(
                    f"the {level:g} interval is not finite: the level is too close to 1 or the forecast too large; "
                    "ask for a lower level or leave levels out"
                )
            out[level] = (lower, upper)
        return out

    def config(self) -> dict:
        return {
            "variant": self.variant,
            "lookback": self.lookback,
            "season": self.season,
            "freq": self.freq,
            "scaler": self.scaler.to_dict(),
            "meta": self.meta,
            "horizon": self.horizon,
            "calibration": self.calibration.to_dict() if self.calibration is not None else None,
        }

    def save(self, directory: str | Path) -> Path:
        return save_bundle(directory, self.model, CONFIG_FILE, self.config())

    @classmethod
    def load(cls, directory: str | Path, compiled: bool = True) -> Forecaster:
        model, config = load_bundle(directory, CONFIG_FILE)
        horizon, calibration, meta = _saved_facts(config)
        return cls(
            model=model,
            scaler=Scaler.from_dict(config["scaler"]),
            lookback=int(config["lookback"]),
            variant=config["variant"],
            season=config.get("season"),
            freq=config.get("freq"),
            meta=meta,
            compiled=compiled,
            horizon=horizon,
            calibration=calibration,
        )


def load_forecaster(uri: str, dst: str | Path | None = None, compiled: bool = True) -> Forecaster:
    """A registered forecaster, read from its saved Keras file and JSON config (safe_mode, no pickles)."""
    return Forecaster.load(download(uri, dst) / "artifacts" / FORECASTER, compiled)
