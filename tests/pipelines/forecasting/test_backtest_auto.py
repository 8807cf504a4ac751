"""``--variant auto`` through the pipeline: searched by backtest, combined, registered, served with intervals."""

from dataclasses import replace

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from models.baselines import seasonal_naive
from pipelines.forecasting import search
from pipelines.forecasting.conformal import extended_widths, independent_forecasts
from pipelines.forecasting.forecaster import load_forecaster
from pipelines.forecasting.pipeline import train_and_register
from pipelines.forecasting.training import TrainConfig
from pipelines.tracking.registry import model_uri

EPOCHS = 2  # the search's own schedule (200, early stopping) tunes accuracy, which the benchmark measures


def test_auto_searches_registers_and_calibrates_intervals(tiny_series, settings, monkeypatch, capfd):
    space = search.search_space
    monkeypatch.setattr(search, "search_space", lambda *a, **k: [replace(c, epochs=EPOCHS) for c in space(*a, **k)])
    monkeypatch.setattr(search, "DEFAULT_TRIALS", 3)  # no --trials and no --budget: the default trial count
    # verbose 1, as `seqcast train` without --quiet: a line per trial, no Keras epoch lines
    outcome = train_and_register(tiny_series, TrainConfig(variant="auto", horizon=6, seed=0), "auto-tiny", verbose=1)
    assert outcome.promoted
    out, err = capfd.readouterr()
    lines = [line for line in err.splitlines() if line.startswith("trial ")]
    assert [line.split(":")[0] for line in lines] == [f"trial {k}/7" for k in range(1, 8)]  # 3 networks, 4 free
    assert all(": backtest MASE " in line for line in lines)
    assert "Epoch " not in out + err and "/step" not in out + err
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
    assert trials["metrics.test_mase"].notna().all()
    networks = trials[trials["params.epochs"] != "0"]
    assert len(networks) == 3  # exactly the default trial count, whatever the clock
    free = trials[trials["params.epochs"] == "0"]  # naive and seasonal naive, in both scalings (a positive series)
    assert sorted(free["params.normalise"]) == ["last", "last", "seasonal", "seasonal"]
    # what is served never backtests worse than the free forecasts on the same folds
    assert outcome.metrics["test_mase"] <= free["metrics.test_mase"].min() + 1e-6
    best_free = min(outcome.metrics["baseline_naive_mase"], outcome.metrics["baseline_seasonal_naive_mase"])
    assert free["metrics.test_mase"].min() == pytest.approx(best_free, rel=1e-5)  # the networks' own baselines

    forecaster = load_forecaster(model_uri("auto-tiny", version=outcome.version))
    assert forecaster.meta["chosen"] and forecaster.meta["search_trials"] == len(networks)
    assert forecaster.meta["winner"] in ("network", "naive", "seasonal_naive")
    folds = int(run.data.params["folds"])
    earlier = forecaster.calibration.origins[:-folds]  # refits before the backtest, for the intervals
    assert earlier and max(earlier) < forecaster.calibration.origins[-folds]
    assert np.shape(forecaster.calibration.abs_residuals) == (len(earlier) + folds, 6)
    forecast = forecaster.forecast(tiny_series.values, 6)
    assert forecast.shape == (6,) and np.all(np.isfinite(forecast))
    intervals = forecaster.intervals(forecast, [0.8, 0.95])
    (lo80, hi80), (lo95, hi95) = intervals[0.8], intervals[0.95]
    assert np.all(lo95 <= lo80) and np.all(lo80 < forecast) and np.all(hi80 <= hi95)
    # the 95% tail floor counts the overlapping folds as the horizons they cover, not one each
    folds_worth = independent_forecasts(forecaster.calibration.origins, 6)
    assert 1 <= folds_worth < len(forecaster.calibration.origins)
    np.testing.assert_allclose(
        hi95 - forecast, extended_widths(forecaster.calibration.abs_residuals, 6, 0.95, folds_worth)
    )


def test_auto_serves_seasonal_naive_where_no_network_beats_it(tiny_series, settings, monkeypatch):
    """Networks without the normalisation that starts them at a baseline, trained for one epoch, lose to seasonal
    naive on a seasonal series: the free forecast is what gets served, as the untrained model it is."""
    space = search.search_space
    raw = lambda *a, **k: [replace(c, normalise="none", epochs=1) for c in space(*a, **k)]  # noqa: E731
    monkeypatch.setattr(search, "search_space", raw)
    outcome = train_and_register(tiny_series, TrainConfig(variant="auto", horizon=6, trials=2, seed=0), "auto-free")

    forecaster = load_forecaster(model_uri("auto-free", version=outcome.version))
    assert forecaster.meta["winner"] == "seasonal_naive"
    assert forecaster.meta["chosen"].startswith("seasonal_naive[")
    assert outcome.metrics["test_mase"] == pytest.approx(outcome.metrics["baseline_seasonal_naive_mase"], rel=1e-5)
    history = tiny_series.values
    np.testing.assert_allclose(forecaster.forecast(history, 6), seasonal_naive([history], 6, 12)[0], rtol=1e-5)
    assert forecaster.calibrated_steps == 6  # its intervals come from the same backtest as any model's
