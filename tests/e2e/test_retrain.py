"""The retraining loop as a user runs it: ingest, train, serve, push more observations, `seqcast retrain`, and the
running service answers from the new version with no restart and no failed request. A worse recipe is not
promoted; a pass killed mid-training changes nothing, and the next pass runs normally."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections import Counter

import httpx
import numpy as np
import pandas as pd
import pytest
from e2e_helpers import API_KEY, SEQCAST, clean_env, free_port, seqcast, wait_for
from mlflow.tracking import MlflowClient

from pipelines.forecasting.pipeline import RECIPE_TAG
from pipelines.settings import Settings
from pipelines.tracking.registry import CHAMPION

NAME = "demand"
N0, N = 120, 160
TIMES = pd.date_range("2024-01-01", periods=N, freq="D")
# a level shift after day N0: the champion never saw it, a challenger trained on the stored series does
VALUES = 10 + np.sin(2 * np.pi * np.arange(N) / 7) + 0.1 * np.random.default_rng(1).normal(size=N)
VALUES[N0:] += 3


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("e2e-retrain")
    env = clean_env(SEQCAST_DATA_DIR=str(data_dir), TF_CPP_MIN_LOG_LEVEL="3", SEQCAST_API_KEY=API_KEY)
    csv = data_dir / "first.csv"
    pd.DataFrame({"timestamp": TIMES[:N0], "value": VALUES[:N0]}).to_csv(csv, index=False)
    assert seqcast(env, "ingest", NAME, "--data", str(csv)).returncode == 0
    trained = seqcast(env, "train", "--series", NAME, "--name", NAME, "--variant", "gru", "--units", "4",
                      "--epochs", "3", "--learning-rate", "0.01", "--horizon", "7", "--lookback", "14", "--quiet")  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    port = free_port()
    log = data_dir / "serve.log"
    with open(log, "w") as stderr:
        server = subprocess.Popen(
            [SEQCAST, "serve", "--port", str(port)],
            env={**env, "SEQCAST_MODEL_POLL_SECONDS": "0.5", "SEQCAST_SHUTDOWN_GRACE_SECONDS": "1"},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    url = f"http://127.0.0.1:{port}"
    wait_for(f"{url}/ready", server, status=200)
    settings = Settings(data_dir=data_dir, MLFLOW_TRACKING_URI=None)  # not the URI earlier tests left in os.environ
    yield env, url, MlflowClient(settings.tracking_uri, settings.tracking_uri)
    server.terminate()
    server.wait(timeout=30)


class Stream:
    """Forecasts from the stored series, one after another, while the test works: statuses and versions seen."""

    def __init__(self, url: str):
        self.url, self.stop, self.seen = url, threading.Event(), []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stop.is_set():
                r = client.post("/v1/forecast", json={"model": NAME, "horizon": 7})
                self.seen.append((r.status_code, r.json().get("version")))

    def until(self, version: str, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while not (self.seen and self.seen[-1][1] == version):
            assert time.monotonic() < deadline, f"still serving {self.seen[-1:]} after {seconds} s"
            time.sleep(0.1)

    def close(self) -> Counter:
        self.stop.set()
        self.thread.join(timeout=30)
        return Counter(self.seen)


def champion(client: MlflowClient) -> str:
    return str(client.get_model_version_by_alias(NAME, CHAMPION).version)


def test_retraining_promotes_a_better_model_that_the_running_service_serves_without_a_failed_request(loop):
    env, url, client = loop
    more = httpx.post(
        f"{url}/v1/series/{NAME}/observations",
        headers={"X-API-Key": API_KEY},
        json={"timestamps": [t.isoformat() for t in TIMES[N0:]], "values": VALUES[N0:].tolist()},
    )
    assert (more.status_code, more.json()["inserted"]) == (200, N - N0)  # 201 is for a new series
    stream = Stream(url)
    stream.until("1")
    passed = seqcast(env, "retrain", "--name", NAME, "--workers", "1")
    assert passed.returncode == 0, passed.stderr[-3000:]
    assert f"{NAME}: version 2 promoted (MASE" in passed.stdout
    assert "1 promoted, 0 kept, 0 skipped, 0 failed" in passed.stdout
    stream.until("2")
    seen = stream.close()
    assert {status for status, _ in seen} == {200}, seen
    assert {version for _, version in seen} == {"1", "2"}

    detail = httpx.get(f"{url}/v1/models/{NAME}").json()
    assert "aliases" in detail, detail
    assert detail["aliases"] == {CHAMPION: "2"}
    last = detail["last_retrain"]
    assert (last["status"], last["decision"], last["version"], last["champion_version"]) == (
        "promoted",
        "promoted",
        "2",
        "1",
    )
    assert last["new_points"] == N - N0 and last["data_window"]["count"] == N
    assert last["challenger_mase"] < last["champion_mase"] * 0.98


def test_a_killed_pass_changes_nothing_and_the_next_pass_with_a_worse_recipe_keeps_the_champion(loop):
    env, url, client = loop
    served = champion(client)
    run_id = client.get_model_version(NAME, served).run_id
    recipe = json.loads(client.get_run(run_id).data.tags[RECIPE_TAG])
    client.set_tag(run_id, RECIPE_TAG, json.dumps({**recipe, "learning_rate": 1e4}))  # weights thrown far off
    command = [SEQCAST, "retrain", "--name", NAME, "--workers", "1", "--min-new-points", "0"]

    # killed while training: the training run has started, nothing is registered yet
    versions = len(client.search_model_versions(f"name = '{NAME}'"))
    killed = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    experiment = client.get_experiment_by_name(NAME).experiment_id
    deadline = time.monotonic() + 60
    while not client.search_runs([experiment], "attributes.status = 'RUNNING'"):
        assert killed.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert champion(client) == served
    assert len(client.search_model_versions(f"name = '{NAME}'")) == versions
    assert httpx.post(f"{url}/v1/forecast", json={"model": NAME, "horizon": 7}).json()["version"] == served

    # the killed pass's lease names a process that is gone: the next pass takes it at once, and its
    # challenger (the worse recipe) is registered but not promoted
    after = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert after.returncode == 0, after.stderr[-3000:]
    assert f"{NAME}: version {versions + 1} kept champion" in after.stdout
    assert "0 promoted, 1 kept, 0 skipped, 0 failed" in after.stdout
    assert champion(client) == served
    client.set_tag(run_id, RECIPE_TAG, json.dumps(recipe))


def test_a_second_pass_while_one_runs_is_refused(loop, monkeypatch, capsys):
    env, _, _ = loop
    from pipelines.settings import get_settings
    from pipelines.store import SeriesStore
    from pipelines.store.lease import Lease
    from seqcast.cli import main

    monkeypatch.setenv("SEQCAST_DATA_DIR", env["SEQCAST_DATA_DIR"])
    get_settings.cache_clear()
    store = SeriesStore(get_settings().series_store_url)
    try:
        with Lease(store, "retraining").held():
            assert main(["retrain", "--all"]) == 3
    finally:
        store.close()
        get_settings.cache_clear()
    assert capsys.readouterr().err.startswith("error: 'retraining' is held by ")
