"""A panel search's trials on the process pool and on Ray (``fanout.map_on``) give the trials and the model the
same search gives in this process: configurations, scores and forecasts to the bit."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from pipelines.forecasting.panel_training import TrialScore, map_in_process, train_panel
from pipelines.forecasting.training import TrainConfig
from pipelines.retraining.fanout import map_on, start_pool_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "forecasting"))
from test_panel import make_panel

SEARCH = TrainConfig(variant="auto", trials=2, epochs=3, units=4, horizon=6, seed=3)


def searched(mapper):
    """The panel search run through ``mapper``, with the trial scores it returned."""
    seen: list[TrialScore] = []

    def recording(task, tasks):
        scores = mapper(task, tasks)
        seen.extend(scores)
        return scores

    candidate = train_panel(make_panel(walks=1, seasonal=3), SEARCH, map_trials=recording)
    return candidate, seen


def same_trials(a: list[TrialScore], b: list[TrialScore]) -> None:
    assert [(t.index, t.config, t.score) for t in a] == [(t.index, t.config, t.score) for t in b]
    for x, y in zip(a, b, strict=True):
        assert len(x.forecasts) == len(y.forecasts) == 4
        assert all(np.array_equal(f, g) for f, g in zip(x.forecasts, y.forecasts, strict=True))
        assert x.curves == y.curves


def same_model(a, b) -> None:
    assert [{k: v for k, v in t.items() if k != "seconds"} for t in a.trials] == [
        {k: v for k, v in t.items() if k != "seconds"} for t in b.trials
    ]
    assert a.score == b.score
    assert a.forecaster.meta["chosen"] == b.forecaster.meta["chosen"]
    assert a.forecaster.series == b.forecaster.series


@pytest.fixture(scope="module")
def in_process():
    start_pool_server(2, None)  # the pool's fork server loads TensorFlow while this process searches
    return searched(map_in_process)


def test_a_panel_search_on_a_process_pool_gives_the_same_trials_and_model(in_process):
    candidate, trials = in_process
    assert [t.index for t in trials] == [0, 1] and len(candidate.trials) == 2
    pooled, on_pool = searched(map_on(2))
    same_trials(on_pool, trials)
    same_model(pooled, candidate)


def test_a_panel_search_on_ray_gives_the_same_trials_and_model(in_process, local_ray):
    candidate, trials = in_process
    on_ray, ray_trials = searched(map_on(1, "local"))  # joins the session's local instance
    same_trials(ray_trials, trials)
    same_model(on_ray, candidate)


def test_a_failing_trial_fails_the_search():
    def boom(task):
        raise ValueError(f"trial {task}")

    with pytest.raises(ValueError, match="trial 0"):
        map_on(1)(boom, [0])
    assert map_on(1)(lambda k: k * 2, [3, 1, 2]) == [6, 2, 4]  # plain items keep their order
