"""The console script as a user runs it: train twice (promote, then keep; conftest's ``trained``), a clear error
for bad data, and `seqcast ui` as the tracking server that training can point at."""

import re
import subprocess

from e2e_helpers import MODEL, SEQCAST, free_port, seqcast, wait_for


def test_train_promotes_then_keeps_champion(trained):
    first, second, skipped = trained.first, trained.second, trained.skipped
    assert re.search(r"^run id: [0-9a-f]{32}$", first.stdout, re.M)
    assert re.search(r"^test_mase: \d+\.\d{4}$", first.stdout, re.M)
    assert f"registered {MODEL}: version 1, promoted" in first.stdout
    assert "Epoch 1/8" in first.stdout  # the per-epoch progress bar

    # the deliberately worse version loses to a free forecast too: registered, not served
    assert f"registered {MODEL}: version 2, not promoted: its backtest is worse than a free forecast's" in second.stdout
    assert "Epoch" not in second.stdout  # --quiet

    assert skipped.returncode == 0 and "already has @champion (version 1); skipping training" in skipped.stdout


def test_bad_data_is_a_clear_error(env, tmp_path):
    (tmp_path / "bad.csv").write_text("timestamp,value\n2024-01-01,1\n2024-01-02,x\n")
    result = seqcast(env, "train", "--data", str(tmp_path / "bad.csv"), "--name", "bad")
    assert result.returncode == 2
    assert "error: column 'value' row 1 holds 'x'; values must be numbers" in result.stderr


def test_ui_lists_runs_and_a_tracking_server_overrides_the_store(env, trained):
    """`seqcast ui` is a real MLflow server on the embedded store; MLFLOW_TRACKING_URI points training at it."""
    from mlflow.tracking import MlflowClient

    port = free_port()
    # one server worker and no job runner: the same server, started without four processes importing MLflow
    ui_env = {**env, "MLFLOW_WORKERS": "1", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    ui = subprocess.Popen(
        [SEQCAST, "ui", "--port", str(port)], env=ui_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        uri = f"http://127.0.0.1:{port}"
        assert wait_for(f"{uri}/health", ui).status_code == 200
        client = MlflowClient(uri, uri)  # the server's registry, whatever MLflow's globals say
        experiment = client.get_experiment_by_name(MODEL)
        runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
        assert len(runs) == 2  # the two trainings; --if-missing started none
        for run in runs:
            assert {"variant", "lookback", "horizon", "seed", "data_fingerprint"} <= set(run.data.params)
            assert "test_mase" in run.data.metrics
            assert {"loss_curve.png", "forecast_vs_actual.png"} <= {
                a.path for a in client.list_artifacts(run.info.run_id)
            }
        assert [run.data.params["units"] for run in runs] == ["32", "1"]

        remote = {**env, "MLFLOW_TRACKING_URI": uri}
        # two epochs lose to drift on the 16 energies: served anyway, this test is about the tracking server
        result = seqcast(
            remote, "train", "--data", "manybody", "--name", "remote", "--epochs", "2", "--quiet", "--promote-anyway"
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert "registered remote: version 1, promoted" in result.stdout
        assert str(client.get_model_version_by_alias("remote", "champion").version) == "1"
    finally:
        ui.terminate()
        ui.wait(timeout=30)
