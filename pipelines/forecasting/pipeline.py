"""The one forecasting pipeline (CLI, scheduler and tests call it): train -> backtest -> track -> register -> promote."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import replace
from functools import partial
from pathlib import Path

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

from models.baselines import BASELINES
from pipelines import tracking
from pipelines.forecasting import plots
from pipelines.forecasting.backtest import backtest, fold_origins
from pipelines.forecasting.conformal import backtest_coverage
from pipelines.forecasting.data import Series
from pipelines.forecasting.forecaster import HistoryError, load_forecaster
from pipelines.forecasting.metrics import geometric_mean
from pipelines.forecasting.panel import PanelForecaster
from pipelines.forecasting.panel_training import (
    PanelCandidate,
    TrialMap,
    backtest_panel,
    map_in_process,
    pooled_metrics,
    train_panel,
)
from pipelines.forecasting.pyfunc import FORECASTER_ARTIFACT, PANEL_ARTIFACT
from pipelines.forecasting.search import Candidate, auto_search, train_candidate
from pipelines.forecasting.training import TrainConfig
from pipelines.settings import Settings
from pipelines.tracking import registry
from pipelines.tracking.registry import RECIPE_TAG, TrainOutcome, download, log_pyfunc_model, model_uri
from pipelines.tracking.tags import FORECAST, ModelFacts, stored_name

log = logging.getLogger(__name__)

AUTO = "auto"
PYFUNC_ENTRY = Path(__file__).with_name("pyfunc_entry.py")
PANEL_PYFUNC_ENTRY = Path(__file__).with_name("panel_pyfunc_entry.py")
__all__ = ["RECIPE_TAG", "Candidate", "train_and_register", "train_candidate", "train_panel_and_register"]


def score_registered(uri: str, series: Series, config: TrainConfig) -> float:
    """The registered model's MASE on the challenger's exact backtest (inf when it cannot forecast this series)."""
    try:
        forecaster = load_forecaster(uri, compiled=False)  # one backtest
        origins = fold_origins(len(series), config.horizon, config.folds, config.fold_step)
        return backtest(forecaster.forecast_batch, series.values, config.horizon, origins, config.season).summary()[
            "mase"
        ]
    except ValueError as exc:  # e.g. the champion needs a longer history than this split gives
        log.warning("champion %s cannot be scored on this backtest: %s", uri, exc)
        return float("inf")


def verify_registered(name: str, version: str, series: Series, horizon: int) -> str | None:
    """Why version ``version`` must not serve (None when it may): loaded back from the registry as the service
    loads it, it must forecast the series' latest window ``horizon`` steps ahead in finite numbers."""
    forecaster = load_forecaster(model_uri(name, version=version), compiled=False)  # one forecast
    try:
        forecast = forecaster.forecast(series.values, horizon)
    except HistoryError as exc:
        return f"the registered model cannot forecast the latest data: {exc}"
    if not np.isfinite(forecast).all():
        return f"the registered model forecasts non-finite values ({int((~np.isfinite(forecast)).sum())} of {horizon})"
    return None


def _data_window(series: Series) -> dict[str, str | int]:
    """The stretch of data a run trained on: first/last timestamp and count (the store's, when it came from one)."""
    window = series.meta.get("window")
    if window:
        return {"data_first": window["first"], "data_last": window["last"], "data_count": window["count"]}
    if series.timestamps is None:
        return {}
    return {
        "data_first": series.timestamps[0].isoformat(),
        "data_last": series.timestamps[-1].isoformat(),
        "data_count": len(series),
    }


def _log_candidate(candidate: Candidate, series: Series, name: str) -> dict[str, float]:
    config, result = candidate.config, candidate.result
    mlflow.log_params(
        {
            **config.params(),
            "data": series.name,
            "data_source": series.source,
            "data_fingerprint": series.fingerprint,
            "data_length": len(series),
            "freq": series.freq,
            "interpolated": series.interpolated,
            **_data_window(series),
        }
    )
    tracking.log_dataset(series.name, series.fingerprint, data_source(series))
    tracking.log_history(candidate.history)
    metrics = {f"test_{k}": v for k, v in result.summary().items()}
    tracking.log_steps({f"test_{k}_by_step": per_step for k, per_step in result.per_step().items()}, first_step=1)
    # the same backtest for the free baselines, so the UI shows whether the network earned its place
    for baseline, fn in BASELINES.items():
        scored = backtest(
            partial(fn, season=config.season), series.values, config.horizon, result.origins, config.season
        )
        metrics.update({f"baseline_{baseline}_{k}": v for k, v in scored.summary().items()})
    calibration = candidate.forecaster.calibration
    metrics.update(backtest_coverage(calibration.abs_residuals if calibration else []))  # the intervals' own check
    mlflow.log_metrics(metrics)
    mlflow.log_dict(candidate.forecaster.config(), "window_config.json")
    title = f"{name}: {config.variant} on {series.name}"
    for fig, file in (
        (plots.loss_curve(candidate.history, title), "loss_curve.png"),
        (
            plots.forecast_vs_actual(series.values, result.origins[0], result.origins, result.forecasts, title),
            "forecast_vs_actual.png",
        ),
    ):
        mlflow.log_figure(fig, file)
        plt.close(fig)
    return metrics


def _log_model(candidate: Candidate, name: str) -> str:
    # one history in (a column of numbers, oldest first), its forecast out
    signature = ModelSignature(
        inputs=Schema([ColSpec("double")]),
        outputs=Schema([ColSpec("double")]),
        params=ParamSchema([ParamSpec("horizon", "long", candidate.config.horizon)]),
    )
    example = pd.DataFrame({0: candidate.forecaster.example_history()})
    return log_pyfunc_model(
        name, PYFUNC_ENTRY, FORECASTER_ARTIFACT, candidate.forecaster.save, signature=signature, input_example=example
    )


def data_source(series: Series) -> str:
    """Where a series came from, as a run's dataset source: ``store:NAME``, the file, or ``builtin:NAME``."""
    stored = stored_name(series.source)
    if stored is not None:  # read from the series store
        return f"store:{stored}"
    if series.source and Path(series.source).is_file():
        return series.source
    return f"builtin:{series.name}"


def train_and_register(
    series: Series,
    config: TrainConfig,
    name: str,
    *,
    verbose: int = 0,
    settings: Settings | None = None,
    margin: float = 0.0,
    run_tags: dict[str, str] | None = None,
    promote_anyway: bool = False,
) -> TrainOutcome:
    """Train ``config`` (or search, for ``auto``) on ``series``, log the run, register a version of ``name`` and
    move ``@champion`` to it only if its backtest MASE beats the champion's on the same folds by more than
    ``margin`` (relative), is no worse than the best free forecast's (naive, seasonal naive, drift) on those folds,
    and the registered artifact forecasts the latest data in finite numbers (``promote_anyway``: whatever the
    scores)."""
    config = config.resolved(len(series), series.season, series.meta.get("horizon"))
    client, experiment_id = tracking.open_experiment(name, settings)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{name}-{config.variant}") as run:
        mlflow.set_tags(run_tags or {})
        # train: the one configuration, or the search's best (networks x preprocessing, chosen by backtest)
        if config.variant == AUTO:
            best = auto_search(series, config, verbose)
        else:
            best = train_candidate(series, config, verbose)
        # its backtest, beside the free forecasts' on the same folds, logged on the run
        metrics = _log_candidate(best, series, name)
        champion = registry.champion_uri(client, name)
        scores = registry.Scores(
            metrics["test_mase"],
            champion=score_registered(champion, series, best.config) if champion else None,
            floor=best_free_score(metrics),
            margin=margin,
        )
        version = _log_model(best, name)  # registered
        decision = registry.decide(scores, promote_anyway=promote_anyway)
        if decision == registry.PROMOTED:  # only if the registered artifact forecasts the latest data
            problem = verify_registered(name, version, series, best.config.horizon)
            decision = registry.refused(problem) if problem else decision
        facts = ModelFacts(
            FORECAST,
            best.config.variant,
            series=series.name,
            stored=stored_name(series.source) is not None,
            recipe=config.params(),
        )
        window_config = {"window_config": json.dumps(best.forecaster.config())}
        registration = registry.record(client, name, version, facts, scores, decision, window_config)
    return TrainOutcome.of(run.info.run_id, name, facts, registration, metrics, test_start=best.result.origins[0])


def best_free_score(metrics: dict[str, float]) -> float:
    """The lowest MASE of the free forecasts on the run's own backtest (``baseline_<name>_mase``)."""
    return min(metrics[f"baseline_{name}_mase"] for name in BASELINES)


def panel_signature(horizon: int) -> ModelSignature:
    """Each series' history as rows (series, value), oldest first; its forecast as rows (series, step, forecast)."""
    return ModelSignature(
        inputs=Schema([ColSpec("string", "series"), ColSpec("double", "value")]),
        outputs=Schema([ColSpec("string", "series"), ColSpec("long", "step"), ColSpec("double", "forecast")]),
        params=ParamSchema([ParamSpec("horizon", "long", horizon)]),
    )


def load_panel_forecaster(uri: str, compiled: bool = True) -> PanelForecaster:
    """A registered panel model, read from its saved Keras files and JSON config (safe_mode, no pickles)."""
    return PanelForecaster.load(download(uri) / "artifacts" / PANEL_ARTIFACT, compiled)


def score_registered_panel(uri: str, panel: list[Series], candidate: PanelCandidate) -> float:
    """The registered panel model's pooled MASE (geometric mean over the series of what serves each) on the
    challenger's exact per-series folds; inf when it is no panel model or cannot forecast these series."""
    try:
        champion = load_panel_forecaster(uri, compiled=False)  # one backtest
    except (OSError, MlflowException) as exc:
        log.warning("champion %s is not a panel model: %s", uri, exc)
        return float("inf")
    horizon = candidate.forecaster.horizon
    results = backtest_panel(
        champion.forecast_windows, panel, candidate.backtest.origins, horizon, champion.season, champion.lookback
    )
    return geometric_mean([r.summary()["mase"] for r in results])


def verify_registered_panel(name: str, version: str, panel: list[Series], horizon: int) -> str | None:
    """Why panel version ``version`` must not serve: loaded back as the service loads it, every series' latest
    window must forecast ``horizon`` steps in finite numbers."""
    forecaster = load_panel_forecaster(model_uri(name, version=version), compiled=False)
    try:
        windows = np.stack([forecaster.check_history(s.values, s.name)[-forecaster.lookback :] for s in panel])
    except HistoryError as exc:
        return f"the registered model cannot forecast the latest data: {exc}"
    forecasts = forecaster.forecast_windows(windows, horizon, [s.name for s in panel])
    bad = ~np.isfinite(forecasts).all(axis=1)
    if bad.any():
        return f"the registered model forecasts non-finite values for {int(bad.sum())} series, first {panel[int(np.flatnonzero(bad)[0])].name!r}"
    return None


def series_table(candidate: PanelCandidate) -> dict[str, list]:
    """One row per series: its length, what serves it and each competitor's backtest MASE."""
    facts = candidate.forecaster.series
    competitors = list(candidate.backtest.results)
    return {
        "series": list(facts),
        "folds": [len(f.origins) for f in facts.values()],
        "winner": [f.winner for f in facts.values()],
        **{f"mase_{c}": [f.mase[c] for f in facts.values()] for c in competitors},
    }


def panel_digest(panel: list[Series]) -> str:
    """One digest of every series' name and data (each series' own fingerprint)."""
    return hashlib.sha256("".join(f"{s.name}:{s.fingerprint};" for s in panel).encode()).hexdigest()[:16]


def train_panel_and_register(
    panel: list[Series],
    config: TrainConfig,
    name: str,
    *,
    source: str,
    verbose: int = 0,
    settings: Settings | None = None,
    margin: float = 0.0,
    run_tags: dict[str, str] | None = None,
    map_trials: TrialMap = map_in_process,
    promote_anyway: bool = False,
) -> TrainOutcome:
    """Train one network across ``panel`` (:func:`pipelines.forecasting.panel_training.train_panel`), log the run, register
    a version of ``name`` and move ``@champion`` only if its pooled MASE beats the champion's on the same
    per-series folds by more than ``margin`` and the registered artifact forecasts every series. ``map_trials``
    runs an ``auto`` search's trials (in this process by default; ``pipelines.retraining.fanout.map_on``: a
    process pool or Ray)."""

    client, experiment_id = tracking.open_experiment(name, settings)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{name}-panel-{config.variant}") as run:
        mlflow.set_tags(run_tags or {})
        candidate = train_panel(panel, config, verbose, map_trials=map_trials)  # trained and backtested
        resolved = candidate.config
        metrics = _log_panel_candidate(candidate, panel, config, source)
        champion = registry.champion_uri(client, name)
        scores = registry.Scores(
            metrics["test_mase"],
            champion=score_registered_panel(champion, panel, candidate) if champion else None,
            floor=best_free_score(metrics),
            margin=margin,
        )
        version = log_pyfunc_model(
            name,
            PANEL_PYFUNC_ENTRY,
            PANEL_ARTIFACT,
            candidate.forecaster.save,
            signature=panel_signature(resolved.horizon),
            input_example=pd.DataFrame(
                {"series": panel[0].name, "value": panel[0].values[-candidate.forecaster.lookback :]}
            ),
        )
        decision = registry.decide(scores, promote_anyway=promote_anyway)
        if decision == registry.PROMOTED:  # only if the registered artifact forecasts every series
            problem = verify_registered_panel(name, version, panel, resolved.horizon)
            decision = registry.refused(problem) if problem else decision
        facts = ModelFacts(
            FORECAST,
            f"panel:{config.variant}",
            series=source,
            stored=all(stored_name(s.source) is not None for s in panel),
            recipe=replace(config, folds=resolved.folds).params(),
            panel=len(panel),
        )
        winners = {c: int(metrics[f"served_by_{c}"]) for c in candidate.backtest.results}
        registration = registry.record(client, name, version, facts, scores, decision, {"winners": json.dumps(winners)})
    return TrainOutcome.of(run.info.run_id, name, facts, registration, metrics)


def _log_panel_candidate(
    candidate: PanelCandidate, panel: list[Series], config: TrainConfig, source: str
) -> dict[str, float]:
    """The panel's params, data, curves, pooled metrics, per-series table and trials on the run."""
    mlflow.log_params(
        {
            **candidate.config.params(),
            "variant": config.variant,
            "data": source,
            "data_source": source,
            "series_count": len(panel),
            "freq": panel[0].freq,
            "chosen": candidate.forecaster.meta["chosen"][:500],
        }
    )
    tracking.log_dataset(source, panel_digest(panel), source)
    tracking.log_history(candidate.curves)
    metrics = pooled_metrics(candidate)
    mlflow.log_metrics(metrics)
    mlflow.log_table(series_table(candidate), "series.json")
    if candidate.trials:
        mlflow.log_dict({"trials": candidate.trials}, "trials.json")
    return metrics
