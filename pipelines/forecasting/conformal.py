"""Split-conformal interval widths from backtest residuals, per horizon step.

A handful of backtest folds gives too few residuals per step for a 95% quantile (with 5 folds every level
would be "the largest one"), so residuals are pooled across steps after dividing by each step's typical
error, and the pooled quantile is scaled back per step. The typical error is the mean absolute residual,
kept non-decreasing over the horizon because a recursive forecast's errors accumulate.

Above 80% the pooled quantile samples the tail of only a few folds (a fold's errors move together across its
steps), so a width is at least the 80% width times a Student t's ratio between the two levels, with one
degree of freedom fewer than the independent forecasts the residuals come from (:func:`tail_ratio`,
:func:`independent_forecasts`).

Past the calibrated horizon ``H`` (the backtest's last step) there are no residuals. The widths go on growing
like a random walk's spread: step ``h > H`` gets the last calibrated width times ``sqrt(h / H)``
(:func:`extended_widths`). A forecast that long says up to which step its intervals were calibrated.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from scipy import stats

REFERENCE_LEVEL = 0.8  # the widest level whose conformal quantile a few folds estimate well


def step_spread(abs_residuals: np.ndarray) -> np.ndarray:
    spread = np.maximum.accumulate(np.mean(abs_residuals, axis=0))
    floor = max(float(spread.max()) * 1e-6, 1e-12)
    return np.maximum(spread, floor)


def interval_widths(abs_residuals, horizon: int, level: float, folds: float | None = None) -> np.ndarray:
    """Half-widths ``[horizon]`` for a central interval at ``level`` from ``abs_residuals[folds, steps]``.

    Above ``REFERENCE_LEVEL`` the width is at least the conformal width at ``REFERENCE_LEVEL`` times
    :func:`tail_ratio` (the tail floor): the residuals of one fold move together across its steps, so a
    handful of folds pooled over the steps looks like many draws but samples the tail of only a few, and the
    empirical 95% quantile came out too light (the 95% intervals covered 84-89% of the dev hold-outs while the
    80% ones covered 77-80%). ``folds``: how many independent forecasts the rows amount to
    (:func:`independent_forecasts`; by default one per row)."""
    residuals = np.abs(np.asarray(abs_residuals, dtype=np.float64))[:, :horizon]
    spread = step_spread(residuals)
    pooled = (residuals / spread).ravel()
    scale = _pooled_quantile(pooled, level)
    if level > REFERENCE_LEVEL:
        ratio = tail_ratio(level, float(len(residuals) if folds is None else folds))
        scale = max(scale, _pooled_quantile(pooled, REFERENCE_LEVEL) * ratio)
    return scale * spread


@lru_cache(maxsize=64)
def tail_ratio(level: float, folds: float) -> float:
    """How much wider a central interval at ``level`` is than one at ``REFERENCE_LEVEL`` for a Student t with
    ``folds - 1`` degrees of freedom: the spread of a forecast error measured on ``folds`` independent
    forecasts (nearly one draw each) predicts the next error as a t, wider in the tail the fewer they are (1.94
    at 95% with 4 folds, 1.70 with 7; a normal distribution's 1.53 with many)."""
    t = stats.t(df=max(folds - 1.0, 1.0))
    return float(t.ppf((1 + level) / 2) / t.ppf((1 + REFERENCE_LEVEL) / 2))


def independent_forecasts(origins: Sequence[int], horizon: int) -> float:
    """How many independent forecasts residual rows from these origins amount to: the distinct time steps
    their forecasts cover, in horizons. Folds half a horizon apart overlap, and their errors share those steps
    (six such folds are worth 3.5)."""
    covered, reach = 0, min(origins, default=0)  # steps covered so far, and where the last forecast ended
    for start in sorted(origins):
        covered += start + horizon - max(start, reach)  # the steps this forecast adds
        reach = start + horizon
    return max(covered / horizon, 1.0)


def _pooled_quantile(pooled: np.ndarray, level: float) -> float:
    n = pooled.size
    q = min(1.0, np.ceil((n + 1) * level) / n)  # the finite-sample conformal correction
    return float(np.quantile(pooled, q, method="higher"))


def extended_widths(abs_residuals, horizon: int, level: float, folds: float | None = None) -> np.ndarray:
    """Half-widths ``[horizon]`` at any horizon: conformal up to the calibrated steps ``H``, then the last
    calibrated width grown like ``sqrt(h / H)`` (the spread of a random walk's ``h``-step error)."""
    residuals = np.abs(np.asarray(abs_residuals, dtype=np.float64))
    calibrated = residuals.shape[1]
    widths = interval_widths(residuals, min(horizon, calibrated), level, folds)
    if horizon <= calibrated:
        return widths
    steps = np.arange(calibrated + 1, horizon + 1, dtype=np.float64)
    return np.concatenate([widths, widths[-1] * np.sqrt(steps / calibrated)])


def coverage(actuals, forecasts, widths) -> float:
    """Share of actuals inside ``forecast ± width`` (broadcast over folds)."""
    a, f = np.asarray(actuals, dtype=np.float64), np.asarray(forecasts, dtype=np.float64)
    return float(np.mean(np.abs(a - f) <= np.asarray(widths)))


def backtest_coverage(abs_residuals, levels=(0.8, 0.95)) -> dict[str, float]:
    """Leave-one-fold-out coverage of the intervals on the backtest: each fold judged by widths from the others
    (``interval_coverage_80`` ...); empty with fewer than two folds."""
    residuals = np.abs(np.asarray(abs_residuals, dtype=np.float64))
    if residuals.ndim != 2 or len(residuals) < 2:
        return {}
    out = {}
    for level in levels:
        inside = [
            np.abs(residuals[k]) <= interval_widths(np.delete(residuals, k, axis=0), residuals.shape[1], level)
            for k in range(len(residuals))
        ]
        out[f"interval_coverage_{round(level * 100)}"] = float(np.mean(inside))
    return out
