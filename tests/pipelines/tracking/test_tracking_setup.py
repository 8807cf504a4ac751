"""Two processes that open one empty data dir's MLflow store at the same moment (two first `seqcast train` runs):
MLflow sets the SQLite schema up as a client opens it, and two at once crashed (``duplicate column name: step``).
Real processes, released together once both have imported MLflow; they call only the tracking set-up, where the
crash was."""

from __future__ import annotations

import os
import subprocess
import sys
import time

OPEN = """
import sys, time
from pathlib import Path
from pipelines.settings import Settings
from pipelines.tracking.experiments import configure, experiment_for
data_dir, go = Path(sys.argv[1]), Path(sys.argv[2])
settings = Settings(data_dir=data_dir, MLFLOW_TRACKING_URI=None)
(data_dir.parent / f"ready-{sys.argv[3]}").touch()
while not go.exists():
    time.sleep(0.001)
client = configure(settings)
print(experiment_for("first", settings), len(client.search_registered_models()))
"""


def test_two_processes_set_up_an_empty_store_at_once(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    data_dir, go = tmp_path / "data", tmp_path / "go"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN, str(data_dir), str(go), str(i)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    try:
        deadline = time.monotonic() + 120
        while not all((tmp_path / f"ready-{i}").exists() for i in range(2)):
            assert all(p.poll() is None for p in processes), [p.communicate()[0][-2000:] for p in processes]
            assert time.monotonic() < deadline
            time.sleep(0.01)
        go.touch()
        outputs = [p.communicate(timeout=120)[0] for p in processes]
    finally:
        for p in processes:
            p.kill()
    assert [p.returncode for p in processes] == [0, 0], [o[-3000:] for o in outputs]
    # one experiment, created by whichever came first and found by the other
    assert sorted(o.strip().splitlines()[-1] for o in outputs) == ["1 0", "1 0"]
    assert (data_dir / "mlflow.db.lock").exists()
