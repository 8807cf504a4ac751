"""The real processes with SEQCAST_LOG_FORMAT=json: `seqcast serve --workers 2` (every stderr line is JSON, the
access line's fields, no query value, one warning per worker for a flood of unknown-model requests, a request
still running past the shutdown grace answered 503 with no traceback) and `seqcast retrain` (every line JSON)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from svc_helpers import API_KEY, HORIZON, MODEL, copy_versions
from test_workers import free_port

from pipelines.settings import Settings
from pipelines.store import SeriesStore
from service.errors import SHUTTING_DOWN

SEQCAST = str(Path(sys.executable).with_name("seqcast"))
HISTORY = [10.0, 10.5, 11.0, 10.2, 9.8, 9.5, 9.9, 10.4]
SECRET = "SECRET-4f1d2a"


def json_env(data_dir: Path, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "PROMETHEUS_MULTIPROC_DIR")
    }
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # what a user has: the command silences TensorFlow itself
    env.update(SEQCAST_DATA_DIR=str(data_dir), SEQCAST_LOG_FORMAT="json", TMPDIR=str(tmp_path), **extra)
    return env


def json_lines(text: str) -> list[dict]:
    """Every line of ``text`` as JSON (fails naming the first line that is not)."""
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
    return out


def test_serve_with_two_workers_logs_json_only_redacts_queries_and_answers_503_past_the_grace(
    registered, data_dir, tmp_path
):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = json_env(
        data_dir,
        tmp_path,
        SEQCAST_API_KEY=API_KEY,
        SEQCAST_PRELOAD_MODELS=MODEL,
        SEQCAST_MODEL_POLL_SECONDS="0",
        SEQCAST_SHUTDOWN_GRACE_SECONDS="1",
        SEQCAST_REGISTRY_TIMEOUT_SECONDS="60",  # the slow request below outlasts the grace, not this
    )
    stderr_path, stdout_path = tmp_path / "serve.err", tmp_path / "serve.out"
    with open(stderr_path, "w") as stderr, open(stdout_path, "w") as stdout:
        proc = subprocess.Popen(
            [SEQCAST, "serve", "--port", str(port), "--workers", "2", "--access-log"],
            env=env,
            stdout=stdout,
            stderr=stderr,
        )
    lock = None
    try:
        deadline = time.monotonic() + 150
        ready = 0  # consecutive 200s from /ready on fresh connections: both workers have their model
        while ready < 6:
            assert proc.poll() is None and time.monotonic() < deadline, stderr_path.read_text()[-3000:]
            try:
                ready = ready + 1 if httpx.get(f"{url}/ready", timeout=2).status_code == 200 else 0
            except httpx.TransportError:
                ready = 0
            time.sleep(0.1 if ready else 0.3)

        health = httpx.get(f"{url}/health", params={"api_key": SECRET}, headers={"X-Request-ID": "req-secret"})
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        unknown = [
            httpx.post(f"{url}/v1/forecast", json={"model": "no_such_model", "history": HISTORY, "horizon": 2})
            for _ in range(30)
        ]
        assert {(r.status_code, r.json()["detail"]) for r in unknown} == {
            (404, "no registered model named 'no_such_model'; GET /v1/models lists them")
        }

        # a request that waits on a locked registry (an alias no worker has cached) while the server stops
        uri = Settings(data_dir=data_dir).tracking_uri
        lock = sqlite3.connect(uri.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False)
        lock.execute("BEGIN EXCLUSIVE")
        slow: list[httpx.Response | Exception] = []

        def wait_for_it() -> None:
            body = {"model": MODEL, "history": HISTORY, "horizon": HORIZON, "alias": "slow"}
            try:
                slow.append(httpx.post(f"{url}/v1/forecast", json=body, timeout=60))
            except httpx.HTTPError as exc:
                slow.append(exc)

        waiter = threading.Thread(target=wait_for_it)
        waiter.start()
        time.sleep(1.5)  # in flight, waiting on the registry
        proc.send_signal(signal.SIGTERM)
        waiter.join(timeout=60)
        assert proc.wait(timeout=60) == 0
    finally:
        if lock is not None:
            lock.execute("ROLLBACK")
            lock.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    answer = slow[0]
    assert isinstance(answer, httpx.Response), answer
    assert (answer.status_code, answer.json()) == (503, {"detail": SHUTTING_DOWN})
    assert answer.headers["retry-after"] == "1"

    text = stderr_path.read_text()
    lines = json_lines(text)
    assert stdout_path.read_text() == ""
    assert SECRET not in text and "Traceback" not in text and "CancelledError" not in text
    errors = [line["message"] for line in lines if line["level"] in ("ERROR", "CRITICAL")]
    assert errors == ["Cancel 1 running task(s), timeout graceful shutdown exceeded"]  # uvicorn's word, no traceback
    assert [line for line in lines if "exception" in line] == []
    access = next(
        line for line in lines if line.get("request_id") == "req-secret" and line["logger"] == "seqcast.access"
    )
    assert {k: access[k] for k in ("method", "path", "query", "status", "request_id")} == {
        "method": "GET",
        "path": "/health",
        "query": "api_key=*",
        "status": 200,
        "request_id": "req-secret",
    }
    assert isinstance(access["duration_ms"], float) and access["duration_ms"] >= 0
    refused = [line for line in lines if line["level"] == "WARNING" and line["message"].startswith("refused: ")]
    assert 1 <= len(refused) <= 2  # one per worker at most, for 30 refusals
    assert len({line["pid"] for line in refused}) == len(refused)
    assert [line for line in lines if line["logger"] == "seqcast.access" and line["status"] == 404] != []
    assert sum(line.get("path") == "/v1/forecast" and line["status"] == 503 for line in lines) == 1


def test_retrain_logs_json_only(registered, data_dir, tmp_path):
    name = copy_versions(registered["client"], MODEL, "svc_json_retrain")
    t = pd.date_range("2024-01-01", periods=96, freq="h")
    store = SeriesStore(Settings(data_dir=data_dir).series_store_url)
    try:
        store.write(name, t, registered["series"].values + np.linspace(0, 1, 96), freq="h")
    finally:
        store.close()
    done = subprocess.run(
        [SEQCAST, "retrain", "--name", name, "--workers", "1", "--min-new-points", "0"],
        env=json_env(data_dir, tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = json_lines(done.stderr)
    assert [line for line in lines if line["level"] in ("ERROR", "CRITICAL")] == []
    assert f"{name}: version 3 " in done.stdout  # the pass's report stays the command's output


def test_stderr_lines_in_json_mode():
    from pipelines.logs import _StderrAsJson

    convert = _StderrAsJson(0, 0, 0)._convert
    assert convert(b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR") is None
    assert convert(b"I0000 00:00:1796676655.841767   15654 port.cc:153] oneDNN custom operations are on.") is None
    assert (
        convert(b'{"level": "INFO", "message": "a worker\'s line"}')
        == b'{"level": "INFO", "message": "a worker\'s line"}'
    )
    warned = json.loads(convert(b"E1207 20:50:50.103512   99 cuda_dnn.cc:8] no GPU") or b"")
    assert {k: warned[k] for k in ("level", "logger", "message")} == {
        "level": "ERROR",
        "logger": "tensorflow.native",
        "message": "no GPU",
    }
    raw = json.loads(convert(b"Traceback (most recent call last):") or b"")
    assert {k: raw[k] for k in ("level", "logger", "message")} == {
        "level": "WARNING",
        "logger": "stderr",
        "message": "Traceback (most recent call last):",
    }
