"""``--variant auto``: search networks and their preprocessing per series by backtest: ``DEFAULT_TRIALS``
configurations unless told a trial count or a time budget.

Every trial is one :func:`train_candidate` (the one training loop, then the one backtest loop) on the series the
caller gave — never on data it holds out; ``seqcast train --variant auto`` shows a ``trial k/N`` line for each. The best few configurations are combined in one Keras model and
refitted on the whole series, so the served model has seen the most recent data (see ``auto_search``).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import mlflow
import numpy as np
import pandas as pd
from tqdm import tqdm

from models.preprocessing import combine_models
from pipelines.forecasting.backtest import BacktestResult, backtest, fold_origins
from pipelines.forecasting.data import Series
from pipelines.forecasting.forecaster import Calibration, Forecaster
from pipelines.forecasting.training import TrainConfig, fit_forecaster

log = logging.getLogger(__name__)

DEFAULT_TRIALS = 10  # configurations searched when neither --trials nor --budget is given: the same on any machine
COMBINE_TOP = 3  # configurations averaged in the served model
COMBINE_WITHIN = 1.3  # ... whose backtest MASE is within this factor of the best
REFIT_MEMBERS = 3  # seeds per configuration in the served model
TRIAL_MEMBERS = 2  # seeds per trial: one seed ranks close configurations by chance
MAX_FOLDS = 6
# batches an epoch at most: a long series (taylor: 94 a pass) checks early stopping as often as a short one
EPOCH_STEPS = 32
# earlier origins where the chosen combination is refitted for the intervals (two covered no better, at 1.5x the refits)
CALIBRATION_REFITS = 1
SEARCH_SHARE = 0.6  # of a --budget; the rest refits the chosen configurations (calibration, then the served model)


@dataclass
class Candidate:
    """A configuration trained before the first backtest origin and backtested on the folds after it."""

    config: TrainConfig
    forecaster: Forecaster
    history: dict[str, list[float]]
    result: BacktestResult

    @property
    def score(self) -> float:
        return self.result.summary()["mase"]


def train_candidate(series: Series, config: TrainConfig, verbose: int = 0, compiled: bool = True) -> Candidate:
    """Fit on everything before the first backtest origin, then backtest on the folds after it; the backtest's
    errors calibrate the intervals (``compiled``: see :class:`Forecaster`; the search's trials are only
    backtested). ``verbose``: Keras' epoch lines."""
    origins = fold_origins(len(series), config.horizon, config.folds, config.fold_step)
    forecaster, history = fit_forecaster(
        series.values[: origins[0]], config, freq=series.freq, verbose=verbose, compiled=compiled
    )
    forecaster.horizon = config.horizon
    result = backtest(forecaster.forecast_batch, series.values, config.horizon, origins, config.season)
    forecaster.calibration = Calibration.of(result.errors, result.origins)  # conformal intervals
    return Candidate(config, forecaster, history, result)


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

    Each normalisation starts from its own baseline (naive, window mean, seasonal naive, level + seasonal
    profile) and learns a correction; the search's training schedule (lr, epochs, patience) suits that start."""
    season = base.season or 1
    base = replace(base, learning_rate=3e-3, epochs=200, patience=20, epoch_steps=EPOCH_STEPS, members=TRIAL_MEMBERS)
    shapes: list[tuple[str, int | None, int]] = []  # (normalise, normalise_season, lookback)
    fit_n = n - base.horizon * base.folds
    week = weekly_season(freq, season)
    if week and fit_n > 4 * (week + season):
        shapes.append(("seasonal", week, week + season))
    seasons = 3 if 6 * season <= fit_n else 2  # a profile over three seasons where there are windows to learn from
    if season > 1 and 2 * seasons * season <= fit_n:
        shapes.append(("profile", season, seasons * season))
    lookback = base.lookback
    if season > 1 and lookback - season >= 2:
        shapes.append(("seasonal", season, lookback))
    if season > 1 and 3 * season > lookback and 3 * (3 * season) <= fit_n:
        shapes.append(("seasonal", season, 3 * season))  # more seasonal differences to read the dynamics from
    shapes.append(("last", None, lookback))
    if season == 1 and lookback >= 4:
        shapes.append(("seasonal", 1, lookback))  # first differences in, the next difference out
    shapes.append(("mean", None, lookback))
    configs = []
    for variant in ("mlp", "gru"):
        for normalise, norm_season, shape_lookback in shapes:
            for transform in transforms(positive):
                configs.append(
                    replace(
                        base,
                        variant=variant,
                        normalise=normalise,
                        normalise_season=norm_season,
                        lookback=shape_lookback,
                        transform=transform,
                    )
                )
    return configs


def transforms(positive: bool) -> list[str]:
    """The global scalings a series can take: ``log`` only where every value is positive."""
    return ["standard", "log"] if positive else ["standard"]


def baseline_configs(base: TrainConfig, positive: bool) -> list[TrainConfig]:
    """The free forecasts, as the untrained normalised models they are (:attr:`TrainConfig.baseline`): naive,
    and seasonal naive where there is a season, in each global scaling so that a combination can take them."""
    season = base.season or 1
    shapes = [("last", None, 2)] + ([("seasonal", season, season + 2)] if season > 1 else [])
    return [
        replace(base, variant="mlp", epochs=0, members=1, normalise=n, normalise_season=m, lookback=lb, transform=t)
        for n, m, lb in shapes
        for t in transforms(positive)
    ]


def run_trials(
    configs: list[TrainConfig],
    evaluate: Callable[[TrainConfig], float],
    budget_s: float,
    clock: Callable[[], float] = time.monotonic,
    max_trials: int | None = None,
) -> list[Trial]:
    """Evaluate configurations in order until the budget is spent (the first always runs).

    With ``max_trials`` exactly that many run and the clock is ignored: a time budget makes the result depend
    on the machine's speed and load, a trial count does not."""
    start = clock()
    trials: list[Trial] = []
    for config in configs[:max_trials] if max_trials else configs:
        spent = clock() - start
        mean_trial = spent / len(trials) if trials else 0.0
        if not max_trials and trials and spent + mean_trial > budget_s:
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


def auto_search(series: Series, base: TrainConfig, verbose: int = 0) -> Candidate:
    """Search, combine the best few configurations, refit the combination on the whole series; returns the
    combination as a candidate (the pipeline logs, registers and promotes it).

    Each trial is :func:`train_candidate` (fit before the first backtest origin, backtest after it), without
    Keras' epoch lines unless ``verbose`` is 2 or more; ``verbose`` 1 shows a ``trial k/N`` line per trial
    (free forecasts included). The best configurations (same global transform, backtest MASE within ``COMBINE_WITHIN`` of the best) are averaged
    in one Keras model: a forecast combination, which is what won M4. Its backtest — the trial models
    combined, on the same folds — gives the logged metrics; the conformal residuals are those folds' errors
    plus the combination's at earlier origins (``calibration_errors``). The served combination is each
    chosen configuration refitted on the whole series as an ensemble over seeds.

    The free forecasts (``baseline_configs``) are trials too, on the same folds: the combination may include
    them, and where its backtest does not beat the best of them, that free forecast is served alone.
    """
    start = time.monotonic()
    trial_count = base.trials or (None if base.budget is not None else DEFAULT_TRIALS)
    if base.folds == 1 and base.fold_step is None:
        folds, step = backtest_folds(len(series), base.horizon, base.lookback)
        base = replace(base, folds=folds, fold_step=step)
    positive = bool(np.min(series.values) > 0)
    candidates: dict[int, Candidate] = {}  # id(config) -> its trial's candidate

    space = search_space(base, len(series), positive, series.freq)
    free = baseline_configs(base, positive)
    searched = min(trial_count, len(space)) if trial_count else len(space)  # a budget may stop it sooner
    # a bar on a terminal; the lines below it wherever the output goes (a log, a CI job)
    total = searched + len(free)
    progress = tqdm(total=total, file=sys.stderr, disable=None if verbose >= 1 else True, leave=False)

    done = 0

    def said(config: TrainConfig, outcome: str) -> None:
        nonlocal done
        done += 1
        progress.update()
        if verbose >= 1:
            tqdm.write(f"trial {done}/{total}: {config.describe()}: {outcome}", file=sys.stderr)

    def evaluate(config: TrainConfig) -> float:
        try:
            candidate = train_candidate(series, config, verbose if verbose >= 2 else 0, compiled=False)
        except ValueError as exc:
            said(config, f"cannot be trained here: {exc}")
            raise
        candidates[id(config)] = candidate
        _log_trial(candidate.config, candidate.score)
        said(config, f"backtest MASE {candidate.score:.4f}")
        return candidate.score

    with progress:
        trials = run_trials(space, evaluate, (base.budget or 0.0) * SEARCH_SHARE, max_trials=trial_count)
        total = progress.total = len(trials) + len(free)  # where the budget ended the search
        baselines = run_trials(free, evaluate, 0.0, max_trials=len(free))  # free: no training, always all of them
    best = best_trial(trials + baselines)
    chosen = [
        t
        for t in sorted(trials + baselines, key=lambda t: t.score)
        if t.config.transform == best.config.transform and t.score <= best.score * COMBINE_WITHIN
    ][:COMBINE_TOP]
    origins = fold_origins(len(series), base.horizon, base.folds, base.fold_step)
    combined = combine_forecasters([candidates[id(t.config)].forecaster for t in chosen])
    result = backtest(combined.forecast_batch, series.values, base.horizon, origins, base.season)
    best_free = best_trial(baselines)
    # a network is served only where its backtest beats every free forecast's
    if result.summary()["mase"] >= best_free.score:
        chosen, result = [best_free], candidates[id(best_free.config)].result
    winner = "network" if any(t.config.baseline is None for t in chosen) else chosen[0].config.baseline
    description = " + ".join(_served_config(t.config).describe() for t in chosen)
    log.info(
        "auto on %s: %d trials, serving %s (%s; backtest MASE %.4f, best free forecast %s %.4f)",
        series.name,
        len(trials),
        description,
        winner,
        result.summary()["mase"],
        best_free.config.baseline,
        best_free.score,
    )

    earlier = calibration_origins(len(series), base.horizon, origins[0], max(t.config.lookback for t in chosen))
    errors = np.concatenate([calibration_errors(series, [t.config for t in chosen], earlier), result.errors])
    refits = [fit_forecaster(series.values, _served_config(t.config), freq=series.freq)[0] for t in chosen]
    served = combine_forecasters(refits)
    served.horizon = base.horizon
    served.calibration = Calibration.of(errors, [*earlier, *origins])  # conformal intervals
    served.meta.update(
        chosen=description,
        winner=winner,
        search_trials=len(trials),
        search_seconds=round(time.monotonic() - start, 1),
    )
    return replace(candidates[id(chosen[0].config)], forecaster=served, result=result)


def _served_config(config: TrainConfig) -> TrainConfig:
    """A chosen configuration as the served model refits it: an ensemble over seeds (a free forecast is one)."""
    return config if config.baseline else replace(config, members=REFIT_MEMBERS)


def calibration_origins(n: int, horizon: int, first_origin: int, lookback: int) -> list[int]:
    """Up to ``CALIBRATION_REFITS`` origins a horizon apart before the first backtest origin, each leaving a
    third of the series (and two lookbacks + 8 values) to fit on."""
    min_fit = max(2 * lookback + 8, n // 3)
    return [o for o in (first_origin - k * horizon for k in range(CALIBRATION_REFITS, 0, -1)) if o >= min_fit]


def calibration_errors(series: Series, configs: list[TrainConfig], origins: list[int]) -> np.ndarray:
    """Errors ``[len(origins), horizon]`` of ``configs`` combined, refitted on the values before each origin.

    The backtest folds alone make intervals too narrow: the configurations were chosen for erring little on
    exactly those folds, and a few overlapping folds see one stretch of the series. These forecasts come from
    earlier stretches that no trial was scored on."""
    horizon = configs[0].horizon
    rows = []
    for origin in origins:
        fitted = [fit_forecaster(series.values[:origin], c, freq=series.freq, compiled=False)[0] for c in configs]
        result = backtest(
            combine_forecasters(fitted).forecast_batch, series.values, horizon, [origin], configs[0].season
        )
        rows.append(result.errors[0])
    return np.asarray(rows, dtype=np.float64).reshape(len(origins), horizon)


def combine_forecasters(forecasters: list[Forecaster]) -> Forecaster:
    """One Forecaster whose forecast is the mean of several's forecasts (same global transform; see
    ``combine_models``): the first one's scaler, the others' inputs and outputs mapped into and out of their
    own scalings inside the model."""
    if len(forecasters) == 1:
        return forecasters[0]
    primary = forecasters[0].scaler
    maps = []
    for f in forecasters:
        if f.scaler.kind != primary.kind:
            raise ValueError(f"cannot combine a {f.scaler.kind!r}-scaled model with a {primary.kind!r}-scaled one")
        maps.append((primary.scale / f.scaler.scale, (primary.loc - f.scaler.loc) / f.scaler.scale))
    model = combine_models([f.model for f in forecasters], maps)
    head = forecasters[0]
    compiled = all(f.compiled for f in forecasters)
    return Forecaster(
        model,
        primary,
        int(model.input_shape[1]),
        head.variant,
        head.season,
        head.freq,
        dict(head.meta),
        compiled,
        head.horizon,
        head.calibration,
    )


def _log_trial(config: TrainConfig, score: float) -> None:
    """One nested MLflow run per trial (when a run is active): its configuration and backtest MASE."""
    parent = mlflow.active_run()
    if parent is None:
        return
    with mlflow.start_run(experiment_id=parent.info.experiment_id, run_name=config.describe(), nested=True):
        mlflow.log_params({**config.params(), "trial": True})
        if np.isfinite(score):  # a configuration that could not train has no score (its params say which)
            mlflow.log_metric("test_mase", score)
