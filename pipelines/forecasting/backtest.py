"""Rolling-origin backtest: one loop for every model, networks and baselines alike.

Origins expand the history (fold k forecasts from ``values[:origin_k]``); the last fold ends at the series'
end. With one fold this is the plain held-out tail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pipelines.forecasting import metrics

ForecastFn = Callable[[list, int], np.ndarray]  # (histories, horizon) -> forecasts[len(histories), horizon]


def fold_origins(n: int, horizon: int, folds: int = 1, step: int | None = None) -> list[int]:
    step = step or horizon
    origins = [n - horizon - k * step for k in reversed(range(folds))]
    if origins[0] < 2:
        raise ValueError(
            f"series has {n} values; {folds} fold(s) of horizon {horizon} with step {step} need at least "
            f"{horizon + (folds - 1) * step + 2}"
        )
    return origins


@dataclass
class BacktestResult:
    origins: list[int]
    forecasts: np.ndarray  # [folds, horizon]
    actuals: np.ndarray  # [folds, horizon]
    scales: np.ndarray  # MASE denominators per fold
    season: int | None

    @property
    def errors(self) -> np.ndarray:
        return self.actuals - self.forecasts

    def summary(self) -> dict[str, float]:
        a, f = self.actuals, self.forecasts
        return {
            "mae": float(metrics.mae(a, f)),
            "rmse": float(metrics.rmse(a, f)),
            "smape": float(metrics.smape(a, f)),
            "mase": float(np.mean(metrics.mae(a, f, axis=1) / self.scales)),
        }

    def per_step(self) -> dict[str, np.ndarray]:
        a, f = self.actuals, self.forecasts
        return {
            "mae": metrics.mae(a, f, axis=0),
            "rmse": metrics.rmse(a, f, axis=0),
            "smape": metrics.smape(a, f, axis=0),
            "mase": np.mean(np.abs(a - f) / self.scales[:, None], axis=0),
        }


def backtest(
    forecast_fn: ForecastFn, values: np.ndarray, horizon: int, origins: list[int], season: int | None = None
) -> BacktestResult:
    values = np.asarray(values, dtype=np.float64)
    forecasts = forecast_fn([values[:o] for o in origins], horizon)
    return scored(values, forecasts, horizon, origins, season)


def scored(
    values: np.ndarray, forecasts, horizon: int, origins: list[int], season: int | None = None
) -> BacktestResult:
    """``forecasts[k]`` (made from ``values[:origins[k]]``) against what followed: a panel's folds are forecast in
    one call for every series, then scored series by series here."""
    values = np.asarray(values, dtype=np.float64)
    actuals = np.stack([values[o : o + horizon] for o in origins])
    scales = np.array([metrics.naive_scale(values[:o], season) for o in origins])
    return BacktestResult(list(origins), np.asarray(forecasts, dtype=np.float64), actuals, scales, season)
