"""The panel model in process: one network across many series, each series served by its backtest winner."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pipelines.forecasting.data import Series
from pipelines.forecasting.panel import BORROWED, NETWORK, OWN, PanelForecaster
from pipelines.forecasting.panel_training import train_panel
from pipelines.forecasting.pipeline import load_panel_forecaster, train_panel_and_register
from pipelines.forecasting.training import TrainConfig
from pipelines.tracking import tags
from pipelines.tracking.registry import CHAMPION, model_uri

FAST = dict(variant="mlp", epochs=15, units=8, horizon=6, seed=3, normalise="seasonal")


def make_panel(seed: int = 0, seasonal: int = 5, walks: int = 3, n: int = 96) -> list[Series]:
    """Seasonal series at scales from 1e-2 to 1e3 (learnable) and pure random walks (only naive forecasts them)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    index = pd.date_range("2010-01-01", periods=n, freq="MS")
    out = []
    for k in range(seasonal):
        scale = 10.0 ** (k - 2)
        values = scale * (10 + 3 * np.sin(2 * np.pi * t / 12 + k) + 0.05 * t + 0.3 * rng.standard_normal(n))
        out.append(Series(f"season-{k}", values, index, "MS", 12, meta={"horizon": 6}))
    for k in range(walks):
        values = 100 + np.cumsum(5 * rng.standard_normal(n))
        out.append(Series(f"walk-{k}", values, index, "MS", 12, meta={"horizon": 6}))
    return out


@pytest.fixture(scope="module")
def panel():
    return make_panel()


@pytest.fixture(scope="module")
def candidate(panel):
    return train_panel(panel, TrainConfig(**FAST))


def test_walks_are_served_by_a_free_forecast_and_seasonal_series_by_the_network(candidate):
    winners = {name: facts.winner for name, facts in candidate.forecaster.series.items()}
    assert {winners[f"walk-{k}"] for k in range(3)} <= {"naive", "drift"}
    assert [winners[f"season-{k}"] for k in range(5)] == [NETWORK] * 5
    for facts in candidate.forecaster.series.values():  # the winner is the backtest's best, per series
        assert facts.mase[facts.winner] == min(facts.mase.values())


def test_the_pooled_score_is_the_geometric_mean_of_each_series_winner(candidate):
    facts = candidate.forecaster.series.values()
    expected = float(np.exp(np.mean([np.log(f.mase[f.winner]) for f in facts])))
    assert candidate.score == pytest.approx(expected, rel=1e-12)


def test_each_series_forecast_is_its_winner_and_scale_free(candidate, panel):
    forecaster = candidate.forecaster
    windows = np.stack([s.values[-forecaster.lookback :] for s in panel])
    names = [s.name for s in panel]
    both = forecaster.forecast_windows(windows, 6, names)
    walk = panel[5]
    assert np.array_equal(both[5], np.full(6, walk.values[-1])) or forecaster.series[walk.name].winner == "drift"
    # the network forecasts every seasonal series within its own scale (1e-2 .. 1e2)
    for s, row in zip(panel[:5], both[:5], strict=True):
        assert np.abs(row - s.values[-12:-6]).mean() < 0.5 * np.abs(s.values).mean()


def test_a_series_the_panel_never_saw_gets_the_network_and_borrowed_intervals(candidate, panel):
    forecaster = candidate.forecaster
    history = 7.0 * panel[0].values  # a seasonal series at another scale, under a new name
    forecast = forecaster.forecast(history, 6, "new-one")
    network = forecaster.network_forecast(history[None, -forecaster.lookback :], 6, [None])[0]
    assert np.array_equal(forecast, network)
    bands, how = forecaster.intervals(forecast, [0.8], "new-one", history[-forecaster.lookback :])
    assert how == BORROWED
    lower, upper = bands[0.8]
    assert (lower < forecast).all() and (forecast < upper).all()
    _, own = forecaster.intervals(forecast, [0.8], panel[0].name, history)
    assert own == OWN  # four folds of its own


def test_saved_and_loaded_forecasts_the_same(candidate, panel, tmp_path):
    forecaster = candidate.forecaster
    loaded = PanelForecaster.load(forecaster.save(tmp_path / "panel"))
    windows = np.stack([s.values[-forecaster.lookback :] for s in panel])
    names = [s.name for s in panel]
    assert np.array_equal(loaded.forecast_windows(windows, 9, names), forecaster.forecast_windows(windows, 9, names))
    assert loaded.config() == forecaster.config()
    assert loaded.series == forecaster.series and np.array_equal(loaded.pooled_residuals, forecaster.pooled_residuals)
    facts = loaded.series["walk-0"]  # one series' facts, read back from the columns
    assert facts.winner == forecaster.series.winners[5] and len(facts.origins) == len(facts.abs_residuals) == 4


def test_the_same_seed_and_data_give_the_same_panel(candidate, panel):
    again = train_panel(panel, TrainConfig(**FAST))
    assert again.score == candidate.score
    assert again.forecaster.series == candidate.forecaster.series


def test_registered_panel_logs_its_dataset_table_and_keeps_a_better_champion(data_dir, settings, panel):
    first = train_panel_and_register(panel, TrainConfig(**FAST), "panel-spine", source="test:panel")
    worse = TrainConfig(**{**FAST, "epochs": 1, "units": 1, "normalise": "none", "learning_rate": 1e-5})
    second = train_panel_and_register(panel, worse, "panel-spine", source="test:panel")
    assert (first.version, first.promoted) == ("1", True)
    assert second.version == "2" and second.promoted is False
    # the champion (refitted on every series' whole history) scored on the challenger's own folds
    assert np.isfinite(second.champion_score) and second.metrics["test_mase"] > second.champion_score

    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    assert str(client.get_model_version_by_alias("panel-spine", CHAMPION).version) == "1"
    run = client.get_run(first.run_id)
    assert run.data.metrics["series_count"] == len(panel)
    assert run.data.tags[tags.PANEL] == str(len(panel))
    version = client.get_model_version("panel-spine", "1")
    assert (version.tags[tags.TASK], version.tags[tags.SERIES], version.tags[tags.PANEL]) == (
        "forecast",
        "test:panel",
        str(len(panel)),
    )
    assert tags.model_kind(version.tags) == tags.PANEL_FORECASTER
    [dataset] = run.inputs.dataset_inputs
    assert dataset.dataset.name == "test:panel" and json.loads(dataset.dataset.source) == {
        "tags": {"source": "test:panel"}
    }
    table = json.loads(
        Path(mlflow.artifacts.download_artifacts(run_id=first.run_id, artifact_path="series.json")).read_text()
    )
    assert [row[0] for row in table["data"]] == [s.name for s in panel]

    served = load_panel_forecaster(model_uri("panel-spine"))
    windows = np.stack([s.values[-served.lookback :] for s in panel])
    names = [s.name for s in panel]
    assert np.array_equal(
        served.forecast_windows(windows, 6, names),
        load_panel_forecaster(model_uri("panel-spine", version=1)).forecast_windows(windows, 6, names),
    )
