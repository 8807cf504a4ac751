"""``--variant auto``: search networks and their preprocessing per series by backtest, within a time budget.

Every trial is one ``train_candidate`` (the one training loop, then the one backtest loop) on the series the
caller gave — never on data it holds out. The best configuration is then trained again as an ensemble over
seeds (its backtest gives the logged metrics and the conformal residuals) and, last, refitted on the whole
series so the served model has seen the most recent data.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import mlflow
import numpy as np
import pandas as pd

from pipelines.training import TrainConfig, fit_forecaster

log = logging.getLogger(__name__)

DEFAULT_BUDGET_S = 240.0
ENSEMBLE_MEMBERS = 5
MAX_FOLDS = 6
SEARCH_SHARE = 0.6  # of the budget; the rest trains the ensemble and refits it


@dataclass
class Trial:
    config: TrainConfig
    score: float  # backtest MASE; inf when the configuration cannot be trained on this series
    seconds: float
    error: str | None = None


def backtest_folds(n: int, horizon: int, lookback: int) -> tuple[int, int]:
    """(folds, step): overlapping folds half a horizon apart, as many as leave ~2/3 of the series to fit on.

    Several folds per horizon step give the conformal intervals their residuals and make the choice less of a
    coin toss than one split."""
    step = max(1, horizon // 2)
    min_fit = max(lookback + 8, int(0.65 * n))
    folds = 1
    while folds < MAX_FOLDS and n - horizon - folds * step >= min_fit:
        folds += 1
    return folds, step


def weekly_season(freq: str | None, season: int) -> int | None:
    """Sub-daily data also repeats weekly (weekends): 7 daily seasons, when the frequency says so."""
    if not freq or season <= 1:
        return None
    try:
        sub_daily = pd.tseries.frequencies.to_offset(freq) < pd.Timedelta(days=1)
    except (TypeError, ValueError):
        return None
    return 7 * season if sub_daily else None


def search_space(base: TrainConfig, n: int, positive: bool, freq: str | None = None) -> list[TrainConfig]:
    """Candidate configurations, most promising first (the budget may end the list early).

    Each normalisation starts from its own baseline (naive, window mean, seasonal naive) and learns a
    correction; the search's training schedule (lr, epochs, patience) suits that start."""
    season = base.season or 1
    base = replace(base, learning_rate=3e-3, epochs=200, patience=20, members=1)
    shapes = []  # (normalise, normalise_season, lookback)
    week = weekly_season(freq, season)
    if week and n - base.horizon * base.folds > 4 * (week + season):
        shapes.append(("seasonal", week, week + season))
    if season > 1 and base.lookback - season >= 2:
        shapes.append(("seasonal", season, base.lookback))
    shapes += [("last", None, base.lookback), ("mean", None, base.lookback)]
    transforms = ["standard", "log"] if positive else ["standard"]
    configs = []
    for variant in ("mlp", "gru"):
        for normalise, norm_season, lookback in shapes:
            for transform in transforms:
                configs.append(
                    replace(base, variant=variant, normalise=normalise, normalise_season=norm_season,
                            lookback=lookback, transform=transform)
                )  # fmt: skip
    return configs


def run_trials(
    configs: list[TrainConfig],
    evaluate: Callable[[TrainConfig], float],
    budget_s: float,
    clock: Callable[[], float] = time.monotonic,
) -> list[Trial]:
    """Evaluate configurations in order until the budget is spent (the first always runs)."""
    start = clock()
    trials: list[Trial] = []
    for config in configs:
        spent = clock() - start
        mean_trial = spent / len(trials) if trials else 0.0
        if trials and spent + mean_trial > budget_s:
            log.info("search budget %.0fs spent after %d of %d trials", budget_s, len(trials), len(configs))
            break
        t0 = clock()
        try:
            score, error = float(evaluate(config)), None
        except ValueError as exc:  # e.g. a lookback the series is too short for
            score, error = float("inf"), str(exc)
        if not np.isfinite(score):
            score = float("inf")
        trials.append(Trial(config, score, clock() - t0, error))
    return trials


def best_trial(trials: list[Trial]) -> Trial:
    usable = [t for t in trials if np.isfinite(t.score)]
    if not usable:
        raise ValueError(f"no configuration could be trained on this series; first error: {trials[0].error}")
    return min(usable, key=lambda t: t.score)


def auto_search(series, base: TrainConfig, train: Callable[[TrainConfig], object]):
    """Search, then train the best configuration as an ensemble and refit it on the whole series.

    ``train(config)`` is the pipeline's ``train_candidate`` (fit before the first backtest origin, backtest
    after it); it returns a candidate with ``.score``, ``.config``, ``.forecaster``. Returns the ensemble's
    candidate, its forecaster replaced by the refit one (keeping the backtest residuals for intervals).
    """
    start = time.monotonic()
    budget = base.budget if base.budget is not None else DEFAULT_BUDGET_S
    if base.folds == 1 and base.fold_step is None:
        folds, step = backtest_folds(len(series), base.horizon, base.lookback)
        base = replace(base, folds=folds, fold_step=step)
    positive = bool(np.min(series.values) > 0)

    def evaluate(config: TrainConfig) -> float:
        candidate = train(config)
        _log_trial(candidate.config, candidate.score)
        return candidate.score

    trials = run_trials(search_space(base, len(series), positive, series.freq), evaluate, budget * SEARCH_SHARE)
    chosen = best_trial(trials)
    log.info("auto on %s: %d trials, best %s (backtest MASE %.4f)", series.name, len(trials), chosen.config.describe(), chosen.score)
    final = train(replace(chosen.config, members=ENSEMBLE_MEMBERS))
    meta = dict(final.forecaster.meta)
    refit, _ = fit_forecaster(series.values, final.config, freq=series.freq)
    refit.meta.update(meta, chosen=final.config.describe(), search_trials=len(trials), search_seconds=round(time.monotonic() - start, 1), refit=True)
    final.forecaster = refit
    return final


def _log_trial(config: TrainConfig, score: float) -> None:
    """One nested MLflow run per trial (when a run is active): its configuration and backtest MASE."""
    if mlflow.active_run() is None:
        return
    with mlflow.start_run(run_name=config.describe(), nested=True):
        mlflow.log_params({**config.params(), "trial": True})
        mlflow.log_metric("test_mase", score if np.isfinite(score) else np.nan)
