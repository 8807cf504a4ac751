"""Training a panel model (:class:`pipelines.forecasting.panel.PanelForecaster`): one network on windows pooled
from every series, each series' winner chosen on its own backtest.

:func:`train_panel` fits the one training loop (``training.fit_network``) on every series' windows at once, each
series in its own scaler's units (fitted on that series' training part: a panel's values span orders of
magnitude), then backtests every series on its own rolling-origin folds in one batched call. On those folds the
network competes with the free forecasts (naive, seasonal naive, drift) series by series, and each series is
served by its winner. The served networks are then refitted on every series' whole history. ``--variant auto``
searches the per-series search's space (``search.search_space``) on the pooled backtest; its trials are plain
data in and out (:class:`TrialTask` -> :class:`TrialScore`), so a process pool or Ray can run them.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np

from models.baselines import BASELINES
from pipelines.forecasting.backtest import BacktestResult, backtest, scored
from pipelines.forecasting.data import DataError, Series
from pipelines.forecasting.metrics import geometric_mean
from pipelines.forecasting.panel import NETWORK, Member, PanelForecaster, SeriesFacts
from pipelines.forecasting.scaling import Scaler
from pipelines.forecasting.search import COMBINE_TOP, COMBINE_WITHIN, DEFAULT_TRIALS, search_space
from pipelines.forecasting.training import TrainConfig, fit_network, series_windows
from pipelines.seeding import seed_everything

log = logging.getLogger(__name__)

PANEL_FOLDS = 4  # rolling-origin folds per series (half a horizon apart) when --folds is not given
PANEL_EPOCH_STEPS = 64  # batches an epoch at most: an epoch samples the pooled windows, so early stopping checks often


@dataclass
class PanelBacktest:
    """Every series' folds: ``origins[i]`` of series i, the network's forecasts there, each competitor's result."""

    origins: list[list[int]]
    results: dict[str, list[BacktestResult]]  # competitor -> one result per series

    def mase(self, competitor: str) -> np.ndarray:
        return np.array([r.summary()["mase"] for r in self.results[competitor]])


def resolve(panel: Sequence[Series], config: TrainConfig) -> TrainConfig:
    """The config's series-dependent defaults, from the panel: its season and usual horizon (first series'),
    ``PANEL_FOLDS`` folds half a horizon apart, and a lookback that leaves the median series half of what comes
    before its first fold to make windows from (the other series' windows train the network too)."""
    first, given = panel[0], config.lookback
    median = sorted(len(s) for s in panel)[len(panel) // 2]
    folds = config.folds if config.folds > 1 else PANEL_FOLDS
    config = replace(config, folds=1)
    config = replace(config.resolved(median, first.season, first.meta.get("horizon")), folds=folds)
    step = config.fold_step or max(1, config.horizon // 2)
    config = replace(config, fold_step=step, epoch_steps=config.epoch_steps or PANEL_EPOCH_STEPS)
    if not given:  # FROM_SERIES (or None, in a recipe logged before it)
        before_folds = median - config.horizon - (folds - 1) * step
        season = config.season or 1
        config = replace(config, lookback=max(2, min(max(2 * season, 8) if season > 1 else 12, before_folds // 2)))
    return config


def check_panel(panel: Sequence[Series]) -> None:
    if not panel:
        raise DataError("the panel has no series")
    names = [s.name for s in panel]
    if len(set(names)) != len(names):
        raise DataError(f"series names must be unique in a panel; {sorted({n for n in names if names.count(n) > 1})}")
    freqs = {s.freq for s in panel if s.freq}
    if len(freqs) > 1:
        raise DataError(f"a panel's series share one frequency; these have {', '.join(sorted(freqs))}")


def series_origins(panel: Sequence[Series], config: TrainConfig, lookback: int) -> list[list[int]]:
    """Each series' fold origins (its last ``config.folds`` horizons, ``fold_step`` apart), keeping those that
    leave enough to train on; a series with none is too short and named."""
    need = lookback + 2
    out = []
    for s in panel:
        step = config.fold_step or config.horizon
        origins = [len(s) - config.horizon - k * step for k in reversed(range(config.folds))]
        origins = [o for o in origins if o >= need]
        if not origins:
            raise DataError(
                f"series {s.name!r} has {len(s)} values; the panel's lookback {lookback} and horizon {config.horizon} "
                f"need at least {need + config.horizon}"
            )
        out.append(origins)
    return out


def fit_members(
    panel: Sequence[Series], configs: Sequence[TrainConfig], ends: Sequence[int], verbose: int = 0
) -> tuple[list[Member], list[dict[str, tuple[float, float]]], dict[str, list[float]]]:
    """Fit each config on every series' values before its end, pooled; returns the members, each series' scalers
    (by kind, fitted on the same values) and the first member's loss curves."""
    scalers: list[dict[str, tuple[float, float]]] = [{} for _ in panel]
    members: list[Member] = []
    curves: dict[str, list[float]] = {}
    for config in configs:
        seed_everything(config.seed)
        windows = []
        for i, (s, end) in enumerate(zip(panel, ends, strict=True)):
            values = s.values[:end]
            if config.transform not in scalers[i]:
                fitted = Scaler.fit(values, config.transform)
                scalers[i][config.transform] = (fitted.loc, fitted.scale)
            loc, scale = scalers[i][config.transform]
            if len(values) >= config.lookback + 2:  # a short series still gets forecasts, from what the rest taught
                windows.append(series_windows(values, config, Scaler(loc, scale, config.transform))[1])
        if not windows:
            raise DataError(f"no series of the panel is longer than lookback {config.lookback} + 2")
        model, history = fit_network(config, windows, verbose=verbose)
        members.append(Member(model, config.transform, config.lookback, config.describe()))
        curves = curves or history
    return members, scalers, curves


def backtest_panel(
    forecast: Callable[[np.ndarray, int, Sequence[str | None]], np.ndarray],
    panel: Sequence[Series],
    origins: list[list[int]],
    horizon: int,
    season: int,
    context: int,
) -> list[BacktestResult]:
    """``forecast(windows, horizon, names)`` at every series' origins in one call, scored series by series."""
    windows: list[np.ndarray] = []
    names: list[str | None] = []
    for s, series_origins_ in zip(panel, origins, strict=True):
        for o in series_origins_:
            windows.append(_context(s.values[:o], context))
            names.append(s.name)
    forecasts = forecast(np.stack(windows), horizon, names)
    results, row = [], 0
    for s, series_origins_ in zip(panel, origins, strict=True):
        k = len(series_origins_)
        results.append(scored(s.values, forecasts[row : row + k], horizon, series_origins_, season))
        row += k
    return results


def _context(values: np.ndarray, context: int) -> np.ndarray:
    """The last ``context`` values, padded at the front with the first one where the series is shorter (the
    series that trained nothing: a network still reads a full window)."""
    tail = values[-context:]
    return np.concatenate([np.full(context - len(tail), tail[0]), tail]) if len(tail) < context else tail


@dataclass
class PanelCandidate:
    forecaster: PanelForecaster
    config: TrainConfig  # the first chosen configuration, resolved
    backtest: PanelBacktest
    curves: dict[str, list[float]]
    trials: list[dict] = field(default_factory=list)

    @property
    def score(self) -> float:
        """The pooled score the champion rule compares: geometric-mean MASE of what serves each series."""
        return geometric_mean([self.forecaster.series[s].mase[self.forecaster.series[s].winner] for s in self.names])

    @property
    def names(self) -> list[str]:
        return list(self.forecaster.series)


def _trial(
    panel: Sequence[Series], configs: list[TrainConfig], origins: list[list[int]], verbose: int
) -> tuple[list[Member], list[BacktestResult], dict]:
    """``configs`` fitted before every series' first origin and backtested on its folds (the networks only)."""
    context = max(c.lookback for c in configs)
    members, scalers, curves = fit_members(panel, configs, [o[0] for o in origins], verbose)
    trial = PanelForecaster(
        members,
        {
            s.name: SeriesFacts(sc, NETWORK, {}, np.zeros((0, configs[0].horizon)), [], 1.0)
            for s, sc in zip(panel, scalers, strict=True)
        },
        season=configs[0].season or 1,
        freq=panel[0].freq,
        horizon=configs[0].horizon,
        pooled_residuals=np.zeros((0, configs[0].horizon)),
        compiled=False,  # forecast once
    )
    results = backtest_panel(trial.network_forecast, panel, origins, configs[0].horizon, trial.season, context)
    return members, results, curves


@dataclass(frozen=True)
class TrialTask:
    """One search trial as plain data, for a worker process or a Ray task: the panel, the configuration, the folds."""

    panel: tuple[Series, ...]
    config: TrainConfig
    origins: tuple[tuple[int, ...], ...]
    index: int


@dataclass(frozen=True)
class TrialScore:
    index: int
    config: TrainConfig
    score: float  # geometric-mean MASE of the network over the series
    forecasts: tuple[np.ndarray, ...]  # per series [folds, horizon]
    curves: dict
    seconds: float


def run_trial(task: TrialTask) -> TrialScore:
    """Fit and backtest one configuration on the panel (what the process pool or Ray runs per trial)."""
    start = time.monotonic()
    _, results, curves = _trial(task.panel, [task.config], [list(o) for o in task.origins], 0)
    score = geometric_mean([r.summary()["mase"] for r in results])
    forecasts = tuple(r.forecasts for r in results)
    return TrialScore(task.index, task.config, score, forecasts, curves, round(time.monotonic() - start, 3))


def map_in_process(fn: Callable[[TrialTask], TrialScore], tasks: list[TrialTask]) -> list[TrialScore]:
    out = []
    for task in tasks:
        log.info("panel trial %d/%d: %s", task.index + 1, len(tasks), task.config.describe())
        out.append(fn(task))
    return out


def search_configs(panel: Sequence[Series], base: TrainConfig) -> list[TrainConfig]:
    """The per-series search's space (``search.search_space``) with the panel's training schedule."""
    positive = all(float(np.min(s.values)) > 0 for s in panel)
    median = sorted(len(s) for s in panel)[len(panel) // 2]
    configs = search_space(replace(base, folds=1), median, positive, panel[0].freq)
    return [
        replace(c, folds=base.folds, batch_size=base.batch_size, epoch_steps=base.epoch_steps, patience=10)
        for c in configs
    ]


TrialMap = Callable[[Callable[[TrialTask], TrialScore], list[TrialTask]], list[TrialScore]]


def train_panel(
    panel: Sequence[Series], config: TrainConfig, verbose: int = 0, map_trials: TrialMap = map_in_process
) -> PanelCandidate:
    """Train ``config`` (``auto``: search, then combine the best few) on the panel, choose each series' winner on
    its backtest and refit the served networks on every series' whole history. ``map_trials(run_trial, tasks)``
    runs the search's trials (in this process by default; a process pool or Ray: ``pipelines/retraining``); the
    result does not depend on where they ran."""
    check_panel(panel)
    start = time.monotonic()
    config = resolve(panel, config)
    trials: list[dict] = []
    if config.variant == "auto":
        space = search_configs(panel, config)[: config.trials or DEFAULT_TRIALS]
        origins = series_origins(panel, config, max(c.lookback for c in space))
        tasks = [TrialTask(tuple(panel), c, tuple(tuple(o) for o in origins), k) for k, c in enumerate(space)]
        scores = sorted(map_trials(run_trial, tasks), key=lambda t: t.index)
        trials = [{"config": t.config.describe(), "mase": round(t.score, 6), "seconds": t.seconds} for t in scores]
        ranked = sorted(scores, key=lambda t: (t.score, t.index))
        best = ranked[0]
        chosen = [
            t for t in ranked if t.config.transform == best.config.transform and t.score <= best.score * COMBINE_WITHIN
        ]
        chosen = chosen[:COMBINE_TOP]
        configs = [t.config for t in chosen]
        network = [
            scored(
                s.values, np.mean([t.forecasts[i] for t in chosen], axis=0), config.horizon, origins[i], config.season
            )
            for i, s in enumerate(panel)
        ]
        curves = best.curves
    else:
        configs = [config]
        origins = series_origins(panel, config, config.lookback)
        _, network, curves = _trial(panel, configs, origins, verbose)
    season = configs[0].season or 1
    panel_backtest = PanelBacktest(origins, {NETWORK: network})
    for name, fn in BASELINES.items():  # on each series' whole history before each origin, as for one series
        free = partial(fn, season=season)
        panel_backtest.results[name] = [
            backtest(free, s.values, configs[0].horizon, o, season) for s, o in zip(panel, origins, strict=True)
        ]
    members, scalers, _ = fit_members(panel, configs, [len(s) for s in panel], 0)
    facts: dict[str, SeriesFacts] = {}
    pooled: list[np.ndarray] = []
    for i, s in enumerate(panel):
        mase = {c: panel_backtest.results[c][i].summary()["mase"] for c in panel_backtest.results}
        winner = min(mase, key=lambda c: (mase[c], c != NETWORK))  # ties go to the network
        result = panel_backtest.results[winner][i]
        residuals = np.abs(result.errors).round(10)
        pooled.append((residuals / result.scales[:, None]).round(10))
        facts[s.name] = SeriesFacts(
            scalers[i],
            winner,
            {c: round(v, 6) for c, v in mase.items()},
            residuals,
            list(result.origins),
            float(result.scales[-1]),
            float(s.values[-1] - s.values[0]) / max(len(s) - 1, 1),
        )
    forecaster = PanelForecaster(
        members,
        facts,
        season=season,
        freq=panel[0].freq,
        horizon=configs[0].horizon,
        pooled_residuals=np.concatenate(pooled),
        meta={
            "chosen": " + ".join(c.describe() for c in configs),
            "search_trials": len(trials),
            "seconds": round(time.monotonic() - start, 1),
        },
    )
    return PanelCandidate(forecaster, configs[0], panel_backtest, curves, trials)


def pooled_metrics(candidate: PanelCandidate) -> dict[str, float]:
    """Geometric-mean MASE over the series: what serves each one, the network alone and each free forecast."""
    out = {"test_mase": candidate.score, "series_count": float(len(candidate.names))}
    for competitor in candidate.backtest.results:
        key = "network" if competitor == NETWORK else f"baseline_{competitor}"
        out[f"{key}_mase"] = geometric_mean(candidate.backtest.mase(competitor))
    winners = [f.winner for f in candidate.forecaster.series.values()]
    for competitor in candidate.backtest.results:
        out[f"served_by_{competitor}"] = float(winners.count(competitor))
    return {k: (round(v, 6) if math.isfinite(v) else v) for k, v in out.items()}
