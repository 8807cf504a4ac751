"""A panel model retrained as one unit by a pass, on the embedded MLflow store and the session's SQLite series
store: the challenger trains on the panel's current stored series (a series stored since included), the pipeline's
pooled gate keeps a better champion, and too few new points skip it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from pipelines.forecasting.pipeline import RECIPE_TAG, train_panel_and_register
from pipelines.forecasting.training import TrainConfig
from pipelines.retraining import challenge
from pipelines.retraining.passes import forecasting_models, run_pass
from pipelines.settings import get_settings
from pipelines.store import SeriesStore
from pipelines.tracking.registry import CHAMPION
from pipelines.tracking.tags import PANEL

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "forecasting"))
from test_panel import make_panel

NAME = "rt_panel"
SOURCE = "store:rtp-season-*,rtp-walk-*"
RECIPE = TrainConfig(variant="mlp", epochs=15, units=8, horizon=6, seed=3, normalise="seasonal")
# a network that learns nothing: every series falls back to its free forecast, worse than the champion's network
WORSE = TrainConfig(**{**RECIPE.params(), "epochs": 1, "units": 1, "normalise": "none", "learning_rate": 1e-5})
N0, N = 84, 96  # the champion saw N0 values of each series; each then receives the rest
STORED = [f"rtp-{s.name}" for s in make_panel(walks=1, seasonal=3)]  # rtp-season-0..2, rtp-walk-0
NEW = "rtp-season-new"  # stored after the champion trained: matches the panel's patterns


class World:
    def __init__(self, settings, client: MlflowClient, champion: str):
        self.settings, self.client, self.champion = settings, client, champion
        self.run_id = client.get_model_version(NAME, champion).run_id
        self.recipe = client.get_run(self.run_id).data.tags[RECIPE_TAG]

    def current(self) -> str:
        return str(self.client.get_model_version_by_alias(NAME, CHAMPION).version)

    def reset(self) -> None:
        self.client.set_registered_model_alias(NAME, CHAMPION, self.champion)
        self.client.set_tag(self.run_id, RECIPE_TAG, self.recipe)


@pytest.fixture(scope="module")
def world(data_dir) -> World:
    """The champion trained on the first N0 values of 4 stored series; then every series gets N - N0 more and a
    fifth series matching the panel's patterns is stored."""
    get_settings.cache_clear()
    settings = get_settings()
    store = SeriesStore(settings.series_store_url)
    panel = make_panel(walks=1, seasonal=3)
    for name, s in zip(STORED, panel, strict=True):
        store.write(name, s.timestamps[:N0], s.values[:N0])
    champion = train_panel_and_register(list(store.panel(STORED)), RECIPE, NAME, source=SOURCE)
    assert champion.promoted
    for name, s in zip(STORED, panel, strict=True):
        store.write(name, s.timestamps[N0:], s.values[N0:])
    store.write(NEW, panel[0].timestamps, 3.0 * panel[1].values)
    store.close()
    return World(settings, MlflowClient(settings.tracking_uri, settings.tracking_uri), champion.version)


@pytest.fixture
def fresh(world) -> World:
    world.reset()
    return world


def test_a_panel_is_one_forecasting_model_and_knows_its_trained_series(fresh):
    assert NAME in forecasting_models(fresh.client)
    assert challenge.trained_lengths(NAME, fresh.champion) == dict.fromkeys(STORED, N0)


def test_a_panel_retrained_with_a_worse_recipe_keeps_its_champion(fresh):
    w = fresh
    w.client.set_tag(w.run_id, RECIPE_TAG, json.dumps(WORSE.params()))
    summary = run_pass([NAME], settings=w.settings, workers=1, min_new_points=0)
    [result] = summary.results
    assert (result.status, result.decision) == ("kept", "kept champion")
    assert result.challenger_mase > result.champion_mase * (1 - w.settings.retrain_margin)
    assert w.current() == w.champion
    tags = w.client.get_model_version(NAME, result.version).tags
    assert (tags["decision"], tags[PANEL]) == ("kept champion", "5")
    run = w.client.get_run(result.training_run_id)
    # the recipe as asked, with the panel's folds (PANEL_FOLDS) the champion was backtested on
    assert json.loads(run.data.tags[RECIPE_TAG]) == json.loads(json.dumps({**WORSE.params(), "folds": 4}))
    assert run.data.params["data_source"] == SOURCE


def test_a_panel_challenger_trains_on_every_current_series_and_a_series_stored_since(fresh):
    w = fresh
    summary = run_pass([NAME], settings=w.settings, workers=1)
    [result] = summary.results
    assert result.status in {"promoted", "kept"} and result.series == SOURCE
    assert result.new_points == 4 * (N - N0) + N  # each series' N - N0 new values, all N of the new series
    assert result.data_window == {
        "series": 5,
        "first": "2010-01-01T00:00:00",
        "last": "2017-12-01T00:00:00",
        "count": 5 * N,
    }
    run = w.client.get_run(result.training_run_id)
    assert run.data.metrics["series_count"] == 5 and run.data.tags[PANEL] == "5"
    table = json.loads(
        Path(
            mlflow.artifacts.download_artifacts(run_id=result.training_run_id, artifact_path="series.json")
        ).read_text()
    )
    assert [row[0] for row in table["data"]] == sorted([*STORED, NEW])
    assert challenge.trained_lengths(NAME, result.version) == {**dict.fromkeys(STORED, N), NEW: N}
    # the pipeline's gate decided: the champion's pooled MASE on the challenger's own per-series folds
    wins = result.challenger_mase < result.champion_mase * (1 - w.settings.retrain_margin)
    assert result.decision == ("promoted" if wins else "kept champion")
    assert w.current() == (result.version if wins else w.champion)
    child = w.client.search_runs(
        [w.client.get_run(summary.run_id).info.experiment_id], f"tags.mlflow.parentRunId = '{summary.run_id}'"
    )
    assert [(c.info.run_name, c.data.params["series"], c.data.params["data_series"]) for c in child] == [
        (NAME, SOURCE, "5")
    ]


def test_a_panel_with_too_few_new_points_is_skipped(fresh):
    w = fresh
    versions = len(w.client.search_model_versions(f"name = '{NAME}'"))
    summary = run_pass([NAME], settings=w.settings, workers=1, min_new_points=4 * (N - N0) + N + 1)
    [result] = summary.results
    assert (result.status, result.version) == ("skipped", None)
    assert result.decision == (
        f"skipped: {4 * (N - N0) + N} new observations over the panel's 5 series ({SOURCE}) since the champion's "
        f"data; at least {4 * (N - N0) + N + 1} needed"
    )
    assert len(w.client.search_model_versions(f"name = '{NAME}'")) == versions and w.current() == w.champion


def test_a_panel_from_a_file_retrains_on_the_stored_series_named_like_its_own(world):
    from pipelines.forecasting.data import Series

    panel = make_panel(walks=1, seasonal=3)
    named = [Series(n, s.values, s.timestamps, s.freq, s.season) for n, s in zip(STORED[:2], panel, strict=False)]
    gone = Series("rtp-never-stored", panel[3].values, panel[3].timestamps, panel[3].freq, panel[3].season)
    first = train_panel_and_register([*named, gone], RECIPE, "rt_panel_file", source="panel.csv")
    summary = run_pass(["rt_panel_file"], settings=world.settings, workers=1, min_new_points=0)
    [result] = summary.results
    assert result.status in {"promoted", "kept"} and result.series == "panel.csv"
    assert world.client.get_run(result.training_run_id).data.params["data_source"] == "panel.csv"
    # the stored two of its three series; the series stored since (NEW) is not the file's
    assert challenge.trained_lengths("rt_panel_file", result.version) == dict.fromkeys(STORED[:2], N)
    assert result.data_window["series"] == 2 and result.new_points == 0  # same lengths as the file's
    assert first.version == "1"

    store = SeriesStore(world.settings.series_store_url)
    try:
        assert challenge._panel_names(store, "panel.csv", {"nowhere-1": 10, "nowhere-2": 10}) == (
            [],
            "none of the panel's 2 series (trained from panel.csv) is stored; ingest them (seqcast ingest) to "
            "retrain it",
        )
        assert challenge._panel_names(store, "store:nowhere-*", {}) == (
            [],
            "no stored series matches 'nowhere-*' (the panel's source, store:nowhere-*)",
        )
        assert challenge._panel_names(store, "store:nowhere-*,rtp-walk-*", {}) == (["rtp-walk-0"], None)
    finally:
        store.close()
