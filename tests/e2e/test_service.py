"""`seqcast serve` as a user runs it: a trained model in the registry, served over a real socket."""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

SEQCAST = str(Path(sys.executable).with_name("seqcast"))
API_KEY = "e2e-key"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("serve-data")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(
        SEQCAST_DATA_DIR=str(data_dir),
        TF_CPP_MIN_LOG_LEVEL="3",
        SEQCAST_API_KEY=API_KEY,
        SEQCAST_MODEL_POLL_SECONDS="0.5",
    )
    trained = subprocess.run(
        [
            SEQCAST,
            "train",
            "--data",
            "sine_noise",
            "--name",
            "sine",
            "--variant",
            "lstm",
            "--units",
            "4",
            "--lookback",
            "12",
            "--epochs",
            "1",
            "--quiet",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    port = _free_port()
    log = data_dir / "serve.log"
    env.update(SEQCAST_SHUTDOWN_GRACE_SECONDS="1", SEQCAST_REGISTRY_TIMEOUT_SECONDS="60")
    with open(log, "w") as stderr:
        proc = subprocess.Popen(
            [SEQCAST, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=stderr, text=True
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "seqcast serve never became ready"
        time.sleep(0.2)
    yield Served(url, proc, data_dir, log)
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=30)
    assert API_KEY not in log.read_text()  # the key is never logged


@dataclass
class Served:
    url: str
    proc: subprocess.Popen
    data_dir: Path
    log: Path

    def __str__(self) -> str:
        return self.url


def test_serve_forecasts_the_trained_champion(server):
    history = [1.0 + 0.01 * i for i in range(24)]
    stamps = [f"2024-01-{d:02d}" for d in range(1, 25)]
    r = httpx.post(
        f"{server.url}/v1/forecast", json={"model": "sine", "history": history, "timestamps": stamps, "horizon": 48}
    )
    assert r.status_code == 200
    body = r.json()
    assert (body["model"], body["version"], len(body["forecast"])) == ("sine", "1", 48)
    assert body["timestamps"][:2] == ["2024-01-25T00:00:00", "2024-01-26T00:00:00"]
    assert body["timestamps"][-1] == "2024-03-12T00:00:00"


def test_serve_rejects_bad_input_and_oversized_chunked_bodies(server):
    r = httpx.post(
        f"{server.url}/v1/forecast",
        content='{"model": "sine", "history": [NaN], "horizon": 3}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["msg"] == "Input should be a finite number"

    def chunks():
        yield b'{"model": "sine", "history": ['
        for _ in range(200):
            yield b"1.0," * 2000
        yield b'1.0], "horizon": 3}'

    r = httpx.post(f"{server.url}/v1/forecast", content=chunks(), headers={"content-type": "application/json"})
    assert (r.status_code, r.json()) == (
        413,
        {"detail": "request body is over the limit of 1000000 bytes (SEQCAST_MAX_BODY_BYTES)"},
    )


def test_serve_reload_needs_the_key(server):
    assert httpx.post(f"{server.url}/v1/models/sine/reload").status_code == 401
    assert httpx.post(f"{server.url}/v1/models/sine/reload", headers={"X-API-Key": "nope"}).status_code == 403
    r = httpx.post(f"{server.url}/v1/models/sine/reload", headers={"X-API-Key": API_KEY})
    assert (r.status_code, r.json()) == (
        200,
        {"name": "sine", "changes": [{"ref": "@champion", "version": "1", "previous": "1", "changed": False}]},
    )
    assert 'route="/v1/models/{name}/reload",status="403"' in httpx.get(f"{server.url}/metrics").text


def test_serve_logs_loads_with_time_and_level(server):
    line = re.compile(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO service\.cache: serving sine@champion: version 1 \(forecaster\)$",
        re.M,
    )
    assert line.search(server.log.read_text()), server.log.read_text()[-3000:]


def test_sigterm_exits_within_the_grace_period_while_a_request_waits_on_the_registry(server):
    """Last in this module: it stops the server. The request waits on a locked registry (busy for 20 s)."""
    db = sqlite3.connect(server.data_dir / "mlflow.db", isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")
    try:
        waiting = threading.Thread(target=lambda: httpx.post(
            f"{server.url}/v1/forecast", json={"model": "other", "history": [1.0] * 12, "horizon": 2}, timeout=60
        ))  # fmt: skip
        waiting.start()
        time.sleep(0.5)
        started = time.monotonic()
        server.proc.terminate()
        server.proc.wait(timeout=30)
        took = time.monotonic() - started
    finally:
        db.execute("ROLLBACK")
        db.close()
        waiting.join(timeout=60)
    assert took < 6, f"shutdown took {took:.1f} s with a 1 s grace period"
