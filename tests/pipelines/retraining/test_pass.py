"""Retraining passes on the embedded MLflow store and the session's SQLite series store: the gate, the record a
pass leaves (parent run, child runs, version tags, the model's last decision), failures kept to their series,
and the same decisions in this process, on a process pool and on a local Ray instance."""

from __future__ import annotations

import json
import threading

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pipelines.forecasting.pipeline import RECIPE_TAG, train_and_register
from pipelines.forecasting.training import TrainConfig
from pipelines.retraining.challenge import points_after, recipe_of, seen_in_test
from pipelines.retraining.facts import PASS_EXPERIMENT
from pipelines.retraining.passes import run_pass
from pipelines.settings import get_settings
from pipelines.store import SeriesStore
from pipelines.tracking.registry import BELOW_BASELINE, CHAMPION, LAST_RETRAIN_TAG, promote_if_better

RECIPE = TrainConfig(variant="gru", units=4, epochs=3, horizon=6, lookback=12, seed=3, learning_rate=1e-2)
# a deliberately worse recipe: a learning rate that throws the weights far off (an untrained network would not
# do: it starts as a seasonal naive forecast, which is good on this series)
WORSE = TrainConfig(variant="gru", units=4, epochs=3, horizon=6, lookback=12, seed=3, learning_rate=1e4)
N0, N = 120, 160  # the champions saw N0 values; A then receives the rest
TIMES = pd.date_range("2024-01-01", periods=N, freq="D")
VALUES = 10 + np.sin(2 * np.pi * np.arange(N) / 12) + 0.01 * np.arange(N)
VALUES = VALUES + 0.1 * np.random.default_rng(0).normal(size=N)
A, B = "rt_a", "rt_b"


class World:
    def __init__(self, settings, client: MlflowClient, champions: dict[str, str]):
        self.settings, self.client, self.champions = settings, client, champions
        self.recipes = {name: self.run_of(name).data.tags[RECIPE_TAG] for name in champions}

    def run_of(self, name: str, version: str | None = None):
        version = version or self.champions[name]
        return self.client.get_run(self.client.get_model_version(name, version).run_id)

    def champion(self, name: str) -> str:
        return str(self.client.get_model_version_by_alias(name, CHAMPION).version)

    def reset(self) -> None:
        """Every champion back to the first version, with its own recipe: each test faces the same champions."""
        for name, version in self.champions.items():
            self.client.set_registered_model_alias(name, CHAMPION, version)
            self.client.set_tag(self.run_of(name).info.run_id, RECIPE_TAG, self.recipes[name])

    def set_recipe(self, name: str, config: TrainConfig) -> None:
        self.client.set_tag(self.run_of(name).info.run_id, RECIPE_TAG, json.dumps(config.params()))


@pytest.fixture(scope="module")
def world(data_dir) -> World:
    """A and B trained on their first N0 stored values (version 1 is @champion); A then gets N - N0 more."""
    get_settings.cache_clear()
    settings = get_settings()
    store = SeriesStore(settings.series_store_url)
    champions = {}
    for name in (A, B):
        store.write(name, TIMES[:N0], VALUES[:N0])
        champions[name] = train_and_register(store.series(name), RECIPE, name).version
    store.write(A, TIMES[N0:], VALUES[N0:])
    store.close()
    return World(settings, MlflowClient(settings.tracking_uri, settings.tracking_uri), champions)


@pytest.fixture
def fresh(world) -> World:
    world.reset()
    return world


def _decisions(summary) -> dict[str, tuple]:
    return {r.name: (r.status, r.decision, r.challenger_mase, r.champion_mase) for r in summary.results}


def test_a_pass_promotes_only_past_the_margin_and_records_every_decision(fresh):
    w = fresh
    summary = run_pass([A, B], settings=w.settings, workers=1)
    a, b = sorted(summary.results, key=lambda r: r.name)

    # A: 40 new points; the challenger moves @champion only if 2% better on the same latest folds
    assert a.new_points == N - N0 and a.data_window == {
        "first": "2024-01-01T00:00:00",
        "last": TIMES[-1].isoformat(),
        "count": N,
    }
    # stated, not derived: with 40 more points the challenger beats the champion by more than the margin
    # (seeded: MASE 0.822 against 0.956 when written)
    assert (a.status, a.decision) == ("promoted", "promoted")
    assert a.challenger_mase < a.champion_mase * (1 - w.settings.retrain_margin)
    assert w.champion(A) == a.version != w.champions[A]
    tags = w.client.get_model_version(A, a.version).tags
    assert tags["decision"] == a.decision and tags["margin"] == "0.02"
    assert float(tags["challenger_mase"]) == pytest.approx(a.challenger_mase, rel=1e-5)
    # the champion saw values up to day N0; the latest folds (the last 6 days) are all new to it
    assert a.champion_seen_test_points == 0

    # B: nothing new since its champion's data: skipped, nothing registered
    assert (b.status, b.version) == ("skipped", None)
    assert b.decision == (
        f"skipped: 0 new observations of {B!r} since the champion's data (to {TIMES[N0 - 1].isoformat()}); "
        "at least 1 needed"
    )
    assert w.champion(B) == w.champions[B]

    # the record: one parent run with the counts, one child per series, each model's last decision
    parent = w.client.get_run(summary.run_id)
    assert parent.info.status == "FINISHED" and parent.data.params["engine"] == "sequential"
    counts = {k: parent.data.metrics[k] for k in ("series", "promoted", "kept", "skipped", "failed")}
    assert counts == {"series": 2, "promoted": 1, "kept": 0, "skipped": 1, "failed": 0}
    children = w.client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{summary.run_id}'", max_results=10
    )
    assert {c.info.run_name: c.data.tags["decision"] for c in children} == {A: a.decision, B: b.decision}
    child_a = next(c for c in children if c.info.run_name == A)
    assert child_a.data.params["data_last"] == TIMES[-1].isoformat() and child_a.data.metrics["new_points"] == N - N0
    assert child_a.data.metrics["challenger_mase"] == pytest.approx(a.challenger_mase)
    last = json.loads(w.client.get_registered_model(B).tags[LAST_RETRAIN_TAG])
    assert (last["status"], last["decision"], last["pass_run_id"]) == ("skipped", b.decision, summary.run_id)
    assert w.client.get_experiment(parent.info.experiment_id).name == PASS_EXPERIMENT


def test_a_worse_recipe_is_not_promoted_and_a_failing_series_fails_alone(fresh):
    w = fresh
    w.set_recipe(A, WORSE)
    w.set_recipe(B, TrainConfig(**{**RECIPE.params(), "lookback": 500}))  # longer than the series: cannot train
    summary = run_pass([A, B], settings=w.settings, workers=1, min_new_points=0)
    results = {r.name: r for r in summary.results}
    assert results[A].status == "kept" and results[A].challenger_mase > 2 * results[A].champion_mase
    # worse than the free forecasts too: the gate's floor answers first (pipelines/tracking/registry.py)
    assert results[A].decision == BELOW_BASELINE
    assert results[B].status == "failed" and results[B].decision.startswith("failed: ValueError: ")
    assert summary.failed == [B]
    assert (w.champion(A), w.champion(B)) == (w.champions[A], w.champions[B])
    assert w.client.get_run(summary.run_id).info.status == "FAILED"
    assert w.client.get_run(summary.run_id).data.tags["failed_series"] == B


def test_a_pass_stopped_before_its_series_ran_trains_nothing_and_ends_killed(fresh):
    w = fresh
    stop = threading.Event()
    stop.set()  # SIGTERM between the pass's start and its first series
    summary = run_pass([A, B], settings=w.settings, workers=1, min_new_points=0, stop=stop)
    assert (summary.stopped, summary.results) == (True, [])
    run = w.client.get_run(summary.run_id)
    assert run.info.status == "KILLED"
    assert {k: run.data.metrics[k] for k in ("series", "promoted", "kept", "skipped", "failed")} == {
        "series": 2,
        "promoted": 0,
        "kept": 0,
        "skipped": 0,
        "failed": 0,
    }
    assert (w.champion(A), w.champion(B)) == (w.champions[A], w.champions[B])


def test_the_gate_refuses_a_non_finite_score_or_an_artifact_that_does_not_verify(fresh):
    w = fresh
    version = w.champions[B]
    other = w.champions[A]  # any registered version of another model serves to exercise the gate
    assert promote_if_better(w.client, A, other, float("nan"), 1.0) == "refused: its backtest mase is nan"
    refused = promote_if_better(w.client, A, other, 0.5, 1.0, verify=lambda v: f"version {v} forecasts NaN")
    assert refused == f"refused: version {other} forecasts NaN"
    assert w.client.get_model_version(A, other).tags["decision"] == refused
    assert w.champion(B) == version


def test_a_pool_and_ray_make_the_same_decisions_and_lose_nothing(fresh, local_ray):
    """min_new_points=0: both series train, two at once, registering into one SQLite MLflow store."""
    w = fresh
    before = {name: len(w.client.search_model_versions(f"name = '{name}'")) for name in (A, B)}
    pool = run_pass([A, B], settings=w.settings, workers=2, min_new_points=0)
    w.reset()
    on_ray = run_pass(  # "local": joins the session's local instance (conftest.py)
        [A, B], settings=w.settings.model_copy(update={"ray_address": "local"}), workers=2, min_new_points=0
    )
    assert (pool.engine, on_ray.engine) == ("pool", "ray")
    assert _decisions(on_ray) == _decisions(pool)
    assert {r.status for r in pool.results} <= {"promoted", "kept"}
    # B has nothing new: its champion saw the test folds, which the pass's record says; the version's decision stays
    # the gate's, written once (a tag of its own holds the count)
    b = next(r for r in pool.results if r.name == B)
    seen = b.champion_seen_test_points
    tags = w.client.get_model_version(B, b.version).tags
    assert seen and tags["champion_seen_test_points"] == str(seen)
    assert tags["decision"] in ("promoted", "kept champion", BELOW_BASELINE)
    assert b.decision == (
        f"{tags['decision']}; the champion's data covered {seen} of the test folds' points, so this comparison "
        "favours it"
    )
    # both passes registered both challengers and logged both children: no run and no version lost
    after = {name: len(w.client.search_model_versions(f"name = '{name}'")) for name in (A, B)}
    assert after == {name: before[name] + 2 for name in (A, B)}
    for summary in (pool, on_ray):
        children = w.client.search_runs(
            [w.client.get_run(summary.run_id).info.experiment_id],
            f"tags.mlflow.parentRunId = '{summary.run_id}'",
        )
        assert sorted(c.info.run_name for c in children) == [A, B]
        assert all(r.version for r in summary.results)


def test_recipes_new_points_and_seen_points():
    params = {**{k: str(v) for k, v in RECIPE.params().items()}, "data": "x"}
    assert recipe_of({}, params) == RECIPE  # a run logged before the recipe tag: from its parameters
    assert recipe_of({RECIPE_TAG: json.dumps(WORSE.params())}, params) == WORSE
    assert recipe_of({}, {"variant": "cnn", "epochs": "3"}) is None  # an image classifier's run
    from pipelines.forecasting.data import Series

    series = Series("s", VALUES, TIMES)
    assert points_after(series, TIMES[N0 - 1].isoformat()) == N - N0
    assert points_after(series, None) == N
    assert points_after(series, TIMES[N0 - 1].tz_localize("UTC").isoformat()) == N - N0  # zoned vs naive
    assert seen_in_test(series, N - 6, TIMES[N - 3].isoformat()) == 4
    assert seen_in_test(series, N - 6, TIMES[N0].isoformat()) == 0
