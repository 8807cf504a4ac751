"""The console script as a user runs it: train twice (promote, then keep), serve, and the pyfunc contract."""

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

SEQCAST = str(Path(sys.executable).with_name("seqcast"))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("cli-data")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(SEQCAST_DATA_DIR=str(data_dir), TF_CPP_MIN_LOG_LEVEL="3")
    return env


def seqcast(env, *args, timeout=300):
    return subprocess.run([SEQCAST, *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_train_promotes_then_keeps_champion(env, tmp_path):
    t = np.arange(200)
    frame = pd.DataFrame({"day": pd.date_range("2024-01-01", periods=200, freq="D"), "sales": 5 + np.sin(t / 5)})
    frame.to_csv(tmp_path / "sales.csv", index=False)
    common = ["--data", str(tmp_path / "sales.csv"), "--time-col", "day", "--value-col", "sales", "--name", "sales",
              "--horizon", "7", "--lookback", "10", "--variant", "lstm"]  # fmt: skip
    first = seqcast(env, "train", *common, "--epochs", "8", "--learning-rate", "0.01")
    assert first.returncode == 0, first.stderr[-3000:]
    assert re.search(r"^run id: [0-9a-f]{32}$", first.stdout, re.M)
    assert re.search(r"^test_mase: \d+\.\d{4}$", first.stdout, re.M)
    assert "registered sales: version 1, promoted" in first.stdout
    assert "Epoch 1/8" in first.stdout  # the per-epoch progress bar

    # a deliberately worse setting: one unit, one epoch, a learning rate too small to move it
    second = seqcast(env, "train", *common, "--units", "1", "--epochs", "1", "--learning-rate", "0.00001", "--quiet")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "registered sales: version 2, not promoted (@champion stays)" in second.stdout
    assert "Epoch" not in second.stdout

    skipped = seqcast(env, "train", *common, "--if-missing")
    assert skipped.returncode == 0 and "already has @champion (version 1); skipping training" in skipped.stdout


def test_bad_data_is_a_clear_error(env, tmp_path):
    (tmp_path / "bad.csv").write_text("timestamp,value\n2024-01-01,1\n2024-01-02,x\n")
    result = seqcast(env, "train", "--data", str(tmp_path / "bad.csv"), "--name", "bad")
    assert result.returncode == 2
    assert "error: column 'value' row 1 holds 'x'; values must be numbers" in result.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, process: subprocess.Popen, seconds: float = 120) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while True:
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            assert process.poll() is None, f"{process.args} exited"
            assert time.monotonic() < deadline, f"{url} did not answer in {seconds} s"
            time.sleep(0.5)


def test_ui_lists_runs_and_a_tracking_server_overrides_the_store(env, tmp_path):
    """`seqcast ui` is a real MLflow server on the embedded store; MLFLOW_TRACKING_URI points training at it."""
    from mlflow.tracking import MlflowClient

    port = _free_port()
    ui = subprocess.Popen(
        [SEQCAST, "ui", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        uri = f"http://127.0.0.1:{port}"
        assert _wait_for(f"{uri}/health", ui).status_code == 200
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name("sales")
        runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
        assert len(runs) >= 2
        for run in runs[:2]:
            assert {"variant", "lookback", "horizon", "seed", "data_fingerprint"} <= set(run.data.params)
            assert "test_mase" in run.data.metrics
            assert {"loss_curve.png", "forecast_vs_actual.png"} <= {
                a.path for a in client.list_artifacts(run.info.run_id)
            }

        remote = {**env, "MLFLOW_TRACKING_URI": uri}
        result = seqcast(remote, "train", "--data", "manybody", "--name", "remote", "--epochs", "2", "--quiet")
        assert result.returncode == 0, result.stderr[-3000:]
        assert "registered remote: version 1, promoted" in result.stdout
        assert str(client.get_model_version_by_alias("remote", "champion").version) == "1"
    finally:
        ui.terminate()
        ui.wait(timeout=30)


def test_serve_answers_health(env):
    port = _free_port()
    server = subprocess.Popen(
        [SEQCAST, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        assert _wait_for(f"http://127.0.0.1:{port}/health", server).status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
