"""A pass that dies or fails leaves nothing half-done: a real `seqcast retrain` killed (SIGKILL) between registering
its challenger and deciding on it is closed by the next pass; a Ray cluster that does not answer fails the pass in
one line, its run FAILED with the reason; an unknown --name is exit 2 and writes nothing. On a data dir of their own
(the pass experiment's runs are counted)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from mlflow_uris import mlflow_uris_kept
from test_pass import N0, RECIPE, TIMES, VALUES, WORSE

from pipelines.forecasting.pipeline import RECIPE_TAG, train_and_register
from pipelines.retraining.facts import FAILURE_TAG, PASS_EXPERIMENT, PASS_TAG, pass_facts
from pipelines.retraining.leftovers import ABANDONED
from pipelines.retraining.passes import run_pass
from pipelines.settings import Settings, get_settings
from pipelines.store import SeriesStore
from pipelines.tracking.registry import CHAMPION

SEQCAST = str(Path(sys.executable).with_name("seqcast"))
NAME = "rt_killed"
# a version registered by the pass whose decision is not written yet (the gate is between registering and deciding)
UNDECIDED = """
SELECT count(*) FROM model_versions v
WHERE v.name = ? AND v.version > 1 AND NOT EXISTS (
    SELECT 1 FROM model_version_tags t WHERE t.name = v.name AND t.version = v.version AND t.key = 'decision')
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """NAME's champion (version 1) trained with a recipe that throws its weights off, so that a challenger with the
    good recipe beats it and the gate then loads it back to verify it (a second or more between registering and
    deciding); the series then gets the rest of its values."""
    data_dir = tmp_path_factory.mktemp("leftovers")
    settings = Settings(data_dir=data_dir, MLFLOW_TRACKING_URI=None)
    store = SeriesStore(settings.series_store_url)
    store.write(NAME, TIMES[:N0], VALUES[:N0])
    with mlflow_uris_kept():  # this module's own store: later modules' tests must not find MLflow pointed at it
        champion = train_and_register(store.series(NAME), WORSE, NAME, settings=settings, promote_anyway=True)
    store.write(NAME, TIMES[N0:], VALUES[N0:])
    store.close()
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    client.set_tag(client.get_model_version(NAME, champion.version).run_id, RECIPE_TAG, json.dumps(RECIPE.params()))
    return settings, client


def _env(settings: Settings, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    env.update(SEQCAST_DATA_DIR=str(settings.data_dir), TF_CPP_MIN_LOG_LEVEL="3", **more)
    return env


def _passes(client: MlflowClient):
    experiment = client.get_experiment_by_name(PASS_EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], "tags.`seqcast.holder` LIKE '%'", max_results=100)
    return {r.info.run_id: r for r in runs}


def test_a_killed_pass_is_closed_by_the_next_and_its_undecided_version_abandoned(world):
    settings, client = world
    command = [SEQCAST, "retrain", "--name", NAME, "--workers", "1", "--min-new-points", "0"]
    killed = subprocess.Popen(command, env=_env(settings), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    db = sqlite3.connect(f"file:{settings.data_dir / 'mlflow.db'}?mode=ro", uri=True, timeout=30)
    try:
        deadline = time.monotonic() + 300
        while True:  # SIGKILL the moment its challenger is registered and not yet decided on
            try:
                if db.execute(UNDECIDED, (NAME,)).fetchone()[0]:
                    killed.kill()
                    break
            except sqlite3.OperationalError:  # the tables are not there yet, or a writer holds the lock
                pass
            assert killed.poll() is None, killed.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "the pass registered no challenger in 300 s"
            time.sleep(0.001)
        killed.wait(30)
    finally:
        killed.kill()
        db.close()
    assert killed.returncode == -signal.SIGKILL

    # what the kill left: the pass and its training run RUNNING, version 2 READY with no decision
    (dead,) = _passes(client).values()
    assert dead.info.status == "RUNNING"
    (trained,) = client.search_runs(
        [client.get_experiment_by_name(NAME).experiment_id], f"tags.`{PASS_TAG}` = '{dead.info.run_id}'"
    )
    assert trained.info.status == "RUNNING"
    orphan = client.get_model_version(NAME, "2")
    assert (orphan.status, orphan.run_id, "decision" in orphan.tags) == ("READY", trained.info.run_id, False)

    # the next pass (it takes the dead pass's lease over at once: its process is gone) closes all of it
    summary = run_pass([NAME], settings=settings, workers=1, min_new_points=10**6)
    assert [(r.name, r.status) for r in summary.results] == [(NAME, "skipped")]
    assert summary.closed == [dead.info.run_id]
    reason = (
        "its process died (killed, out of memory or its host lost) before the pass ended; "
        f"closed by pass {summary.run_id}"
    )
    dead = client.get_run(dead.info.run_id)
    assert (dead.info.status, dead.data.tags[FAILURE_TAG]) == ("KILLED", reason)
    trained = client.get_run(trained.info.run_id)
    assert (trained.info.status, trained.data.tags[FAILURE_TAG]) == ("FAILED", reason)
    tags = client.get_model_version(NAME, "2").tags
    assert (tags["decision"], tags["abandoned_reason"]) == (ABANDONED, f"the pass {reason}")
    assert str(client.get_model_version_by_alias(NAME, CHAMPION).version) == "1"  # never touched
    assert client.get_run(summary.run_id).info.status == "FINISHED"

    # the dead pass counts as killed in the totals /metrics reads; nothing is closed twice
    facts = pass_facts(client)
    assert facts.totals.passes == {"finished": 1, "failed": 0, "killed": 1}
    assert facts.totals.series == {"promoted": 0, "kept": 0, "skipped": 1, "failed": 0}
    again = run_pass([NAME], settings=settings, workers=1, min_new_points=10**6)
    assert again.closed == []
    assert pass_facts(client).totals.passes == {"finished": 2, "failed": 0, "killed": 1}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_ray_cluster_fails_the_pass_in_one_line(world):
    """A process of its own: this session's tests may have joined a local Ray instance already."""
    settings, client = world
    port = _free_port()  # nothing listens there
    before = set(_passes(client))
    started = time.monotonic()
    failed_pass = subprocess.run(
        [SEQCAST, "retrain", "--name", NAME, "--min-new-points", "0"],
        env=_env(settings, SEQCAST_RAY_ADDRESS=f"127.0.0.1:{port}"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert time.monotonic() - started < 60
    (failed,) = [run for run_id, run in _passes(client).items() if run_id not in before]
    reason = f"ConnectionError: no Ray cluster answers at 127.0.0.1:{port} (SEQCAST_RAY_ADDRESS): Connection refused"
    assert (failed.info.status, failed.data.tags[FAILURE_TAG]) == ("FAILED", reason)
    assert failed.data.params["engine"] == "ray"
    # the log lines (progress) come first; the pass's end is one line, with no traceback
    assert (failed_pass.returncode, failed_pass.stdout) == (1, "")
    assert failed_pass.stderr.splitlines()[-1] == f"error: the pass {failed.info.run_id} failed: {reason}"
    assert "Traceback" not in failed_pass.stderr
    assert str(client.get_model_version_by_alias(NAME, CHAMPION).version) == "1"


def test_an_unknown_name_is_exit_2_naming_it_and_writes_nothing(world, monkeypatch, capsys):
    from seqcast.cli import main

    settings, client = world
    monkeypatch.setenv("SEQCAST_DATA_DIR", str(settings.data_dir))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    get_settings.cache_clear()
    before = set(_passes(client))
    try:
        assert main(["retrain", "--name", NAME, "--name", "nosuch"]) == 2
    finally:
        get_settings.cache_clear()
    assert capsys.readouterr().err == (
        f"error: no registered model named 'nosuch'; the models a pass can retrain: {NAME} (--all takes every one)\n"
    )
    assert set(_passes(client)) == before
