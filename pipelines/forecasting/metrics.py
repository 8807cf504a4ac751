"""Forecast accuracy: MAE, RMSE, sMAPE (percent, 0-200) and MASE (scaled by the in-sample seasonal naive)."""

from __future__ import annotations

import numpy as np


def mae(actual, forecast, axis=None):
    return np.mean(np.abs(np.asarray(actual) - np.asarray(forecast)), axis=axis)


def rmse(actual, forecast, axis=None):
    return np.sqrt(np.mean((np.asarray(actual) - np.asarray(forecast)) ** 2, axis=axis))


def smape(actual, forecast, axis=None):
    a, f = np.asarray(actual, dtype=float), np.asarray(forecast, dtype=float)
    denom = np.abs(a) + np.abs(f)
    ratio = np.divide(2 * np.abs(a - f), denom, out=np.zeros_like(denom), where=denom > 0)
    return 100 * np.mean(ratio, axis=axis)


def naive_scale(insample, season: int | None = 1) -> float:
    """MAE of the in-sample seasonal naive forecast (naive where the history is shorter than two seasons)."""
    insample = np.asarray(insample, dtype=float)
    m = season if season and len(insample) > season else 1
    if len(insample) <= m:
        return 1.0
    scale = float(np.mean(np.abs(insample[m:] - insample[:-m])))
    return scale if scale > 1e-12 else 1.0


def mase(actual, forecast, insample, season: int | None = 1, axis=None):
    return mae(actual, forecast, axis=axis) / naive_scale(insample, season)


def geometric_mean(values) -> float:
    """The geometric mean, each value floored at 1e-12: how a panel's per-series MASE pool (as the M4 did)."""
    values = np.maximum(np.asarray(values, dtype=np.float64), 1e-12)
    return float(np.exp(np.mean(np.log(values))))
