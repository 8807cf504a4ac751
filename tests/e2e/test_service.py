"""`seqcast serve` as a user runs it: the model conftest's ``trained`` registered, served over a real socket."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from e2e_helpers import API_KEY, MODEL, SEQCAST, free_port, wait_for


@pytest.fixture(scope="module")
def server(env, trained):
    data_dir = Path(env["SEQCAST_DATA_DIR"])
    port = free_port()
    log = data_dir / "serve.log"
    serve_env = {
        **env,
        "SEQCAST_MODEL_POLL_SECONDS": "0.5",
        "SEQCAST_SHUTDOWN_GRACE_SECONDS": "1",
        "SEQCAST_REGISTRY_TIMEOUT_SECONDS": "60",
    }
    with open(log, "w") as stderr:
        proc = subprocess.Popen(
            [SEQCAST, "serve", "--port", str(port)], env=serve_env, stdout=subprocess.DEVNULL, stderr=stderr, text=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/ready", proc, status=200)
    except AssertionError as exc:
        raise AssertionError(f"seqcast serve never became ready: {exc}\n{log.read_text()[-3000:]}") from exc
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


def test_serve_answers_health(server):
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}


def test_serve_forecasts_the_trained_champion(server):
    history = [5.0 + 0.01 * i for i in range(24)]
    stamps = [f"2024-01-{d:02d}" for d in range(1, 25)]
    r = httpx.post(
        f"{server.url}/v1/forecast", json={"model": MODEL, "history": history, "timestamps": stamps, "horizon": 48}
    )
    assert r.status_code == 200
    body = r.json()
    assert (body["model"], body["version"], len(body["forecast"])) == (MODEL, "1", 48)
    assert body["timestamps"][:2] == ["2024-01-25T00:00:00", "2024-01-26T00:00:00"]
    assert body["timestamps"][-1] == "2024-03-12T00:00:00"


def test_serve_rejects_bad_input_and_oversized_chunked_bodies(server):
    r = httpx.post(
        f"{server.url}/v1/forecast",
        content=f'{{"model": "{MODEL}", "history": [NaN], "horizon": 3}}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["msg"] == "Input should be a finite number"

    def chunks():
        yield f'{{"model": "{MODEL}", "history": ['.encode()
        for _ in range(200):
            yield b"1.0," * 2000
        yield b'1.0], "horizon": 3}'

    r = httpx.post(f"{server.url}/v1/forecast", content=chunks(), headers={"content-type": "application/json"})
    assert (r.status_code, r.json()) == (
        413,
        {"detail": "request body is over the limit of 1000000 bytes (SEQCAST_MAX_BODY_BYTES)"},
    )


def test_serve_reload_needs_the_key(server):
    assert httpx.post(f"{server.url}/v1/models/{MODEL}/reload").status_code == 401
    assert httpx.post(f"{server.url}/v1/models/{MODEL}/reload", headers={"X-API-Key": "nope"}).status_code == 403
    r = httpx.post(f"{server.url}/v1/models/{MODEL}/reload", headers={"X-API-Key": API_KEY})
    assert (r.status_code, r.json()) == (
        200,
        {"name": MODEL, "changes": [{"ref": "@champion", "version": "1", "previous": "1", "changed": False}]},
    )
    assert 'route="/v1/models/{name}/reload",status="403"' in httpx.get(f"{server.url}/metrics").text


def test_serve_logs_loads_with_time_and_level(server):
    line = re.compile(
        rf"^\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d,\d{{3}} INFO service\.cache: serving {MODEL}@champion: version 1 \(forecaster\)$",
        re.M,
    )
    assert line.search(server.log.read_text()), server.log.read_text()[-3000:]


def test_sigterm_exits_within_the_grace_period_while_a_request_waits_on_the_registry(server):
    """Last in this module: it stops the server. The request waits on a locked registry (busy for 20 s)."""
    ended = []  # how the waiting request ended: a status, or the error of a dropped connection

    def wait():
        body = {"model": "other", "history": [1.0] * 12, "horizon": 2}
        try:
            ended.append(httpx.post(f"{server.url}/v1/forecast", json=body, timeout=60).status_code)
        except httpx.HTTPError as exc:  # the server went away under it: expected
            ended.append(type(exc).__name__)

    db = sqlite3.connect(server.data_dir / "mlflow.db", isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")
    try:
        waiting = threading.Thread(target=wait)
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
    assert len(ended) == 1, "the waiting request was neither answered nor dropped"
