"""`seqcast serve` as a user runs it: a trained model in the registry, served over a real socket."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
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
    env.update(SEQCAST_DATA_DIR=str(data_dir), TF_CPP_MIN_LOG_LEVEL="3", SEQCAST_API_KEY=API_KEY,
               SEQCAST_MODEL_POLL_SECONDS="0.5")
    trained = subprocess.run(
        [SEQCAST, "train", "--data", "sine_noise", "--name", "sine", "--variant", "lstm", "--units", "4",
         "--lookback", "12", "--epochs", "1", "--quiet"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    port = _free_port()
    proc = subprocess.Popen([SEQCAST, "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "seqcast serve never became ready"
        time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=30)
    assert API_KEY not in proc.stderr.read()  # the key is never logged


def test_serve_forecasts_the_trained_champion(server):
    history = [1.0 + 0.01 * i for i in range(24)]
    stamps = [f"2024-01-{d:02d}" for d in range(1, 25)]
    r = httpx.post(f"{server}/v1/forecast", json={"model": "sine", "history": history, "timestamps": stamps, "horizon": 48})
    assert r.status_code == 200
    body = r.json()
    assert (body["model"], body["version"], len(body["forecast"])) == ("sine", "1", 48)
    assert body["timestamps"][:2] == ["2024-01-25T00:00:00", "2024-01-26T00:00:00"]
    assert body["timestamps"][-1] == "2024-03-12T00:00:00"


def test_serve_rejects_bad_input_and_oversized_chunked_bodies(server):
    r = httpx.post(f"{server}/v1/forecast", content='{"model": "sine", "history": [NaN], "horizon": 3}',
                   headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["msg"] == "Input should be a finite number"

    def chunks():
        yield b'{"model": "sine", "history": ['
        for _ in range(200):
            yield b"1.0," * 2000
        yield b"1.0], \"horizon\": 3}"

    r = httpx.post(f"{server}/v1/forecast", content=chunks(), headers={"content-type": "application/json"})
    assert (r.status_code, r.json()) == (
        413, {"detail": "request body is over the limit of 1000000 bytes (SEQCAST_MAX_BODY_BYTES)"}
    )


def test_serve_reload_needs_the_key(server):
    assert httpx.post(f"{server}/v1/models/sine/reload").status_code == 401
    assert httpx.post(f"{server}/v1/models/sine/reload", headers={"X-API-Key": "nope"}).status_code == 403
    r = httpx.post(f"{server}/v1/models/sine/reload", headers={"X-API-Key": API_KEY})
    assert (r.status_code, r.json()) == (
        200, {"name": "sine", "changes": [{"ref": "@champion", "version": "1", "previous": "1", "changed": False}]}
    )
    assert 'route="/v1/models/{name}/reload",status="403"' in httpx.get(f"{server}/metrics").text
