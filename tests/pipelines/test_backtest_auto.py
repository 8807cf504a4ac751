"""``--variant auto`` through the pipeline: searched by backtest, combined, registered, served with intervals."""

from dataclasses import replace

import mlflow
import numpy as np
from mlflow.tracking import MlflowClient

from pipelines.forecasting import search
from pipelines.forecasting.forecaster import load_forecaster
from pipelines.forecasting.pipeline import train_and_register
from pipelines.forecasting.training import TrainConfig
from pipelines.tracking.registry import model_uri

EPOCHS = 2  # the search's own schedule (200, early stopping) tunes accuracy, which the benchmark measures


def test_auto_searches_registers_and_calibrates_intervals(tiny_series, settings, monkeypatch):
    space = search.search_space
    monkeypatch.setattr(search, "search_space", lambda *a, **k: [replace(c, epochs=EPOCHS) for c in space(*a, **k)])
    outcome = train_and_register(tiny_series, TrainConfig(variant="auto", horizon=6, trials=3, seed=0), "auto-tiny")
    assert outcome.promoted
    for key in (
        "test_mase",
        "test_smape",
        "baseline_seasonal_naive_mase",
        "baseline_naive_mase",
        "baseline_drift_mase",
    ):
        assert np.isfinite(outcome.metrics[key]), key

    assert 0 <= outcome.metrics["interval_coverage_80"] <= outcome.metrics["interval_coverage_95"] <= 1
    run = mlflow.get_run(outcome.run_id)
    assert int(run.data.params["folds"]) > 1 and run.data.params["fold_step"] == "3"  # overlapping folds
    client = MlflowClient()
    per_step = client.get_metric_history(outcome.run_id, "test_mase_by_step")
    assert [m.step for m in per_step] == [1, 2, 3, 4, 5, 6]
    trials = mlflow.search_runs([run.info.experiment_id], filter_string="params.trial = 'True'")
    assert len(trials) == 3 and trials["metrics.test_mase"].notna().all()  # exactly --trials, whatever the clock

    forecaster = load_forecaster(model_uri("auto-tiny", version=outcome.version))
    assert forecaster.meta["chosen"] and forecaster.meta["search_trials"] == len(trials)
    folds = int(run.data.params["folds"])
    earlier = forecaster.meta["calibration_origins"][:-folds]  # refits before the backtest, for the intervals
    assert earlier and max(earlier) < forecaster.meta["calibration_origins"][-folds]
    assert np.shape(forecaster.meta["abs_residuals"]) == (len(earlier) + folds, 6)
    forecast = forecaster.forecast(tiny_series.values, 6)
    assert forecast.shape == (6,) and np.all(np.isfinite(forecast))
    intervals = forecaster.intervals(forecast, [0.8, 0.95])
    (lo80, hi80), (lo95, hi95) = intervals[0.8], intervals[0.95]
    assert np.all(lo95 <= lo80) and np.all(lo80 < forecast) and np.all(hi80 <= hi95)
