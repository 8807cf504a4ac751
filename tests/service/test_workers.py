"""`seqcast serve --workers 2` as a user runs it: @champion moves under load and no request fails, each worker
swaps on its own, every answer is exactly its version's forecast, and /metrics sums both workers."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from svc_helpers import API_KEY, HORIZON, MODEL, copy_versions

from pipelines.tracking.registry import CHAMPION

SEQCAST = str(Path(sys.executable).with_name("seqcast"))
HISTORY = [10.0, 10.5, 11.0, 10.2, 9.8, 9.5, 9.9, 10.4]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metric(text: str, line: str) -> float:
    found = re.search(rf"^{re.escape(line)} (\S+)$", text, re.M)
    assert found, f"{line} is not in /metrics"
    return float(found.group(1))


def loads(url: str, name: str) -> float:
    """How many times the workers together have loaded a version of ``name`` (0 while the server does not answer)."""
    try:
        text = httpx.get(f"{url}/metrics", timeout=2).text
    except httpx.TransportError:
        return 0
    counts = re.findall(rf'^seqcast_model_loads_total\{{[^}}]*model="{name}"[^}}]*\}} (\S+)$', text, re.M)
    return sum(float(c) for c in counts)


def test_two_workers_swap_the_champion_under_load_with_zero_failures_and_sum_their_metrics(
    registered, data_dir, tmp_path
):
    name = copy_versions(registered["client"], MODEL, "svc_workers")
    expected = {v: f.forecast(HISTORY, HORIZON).tolist() for v, f in registered["forecasters"].items()}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "PROMETHEUS_MULTIPROC_DIR")
    }
    env.update(
        SEQCAST_DATA_DIR=str(data_dir),
        SEQCAST_API_KEY=API_KEY,
        SEQCAST_PRELOAD_MODELS=name,
        SEQCAST_MODEL_POLL_SECONDS="0.3",
        SEQCAST_SHUTDOWN_GRACE_SECONDS="1",
        TF_CPP_MIN_LOG_LEVEL="3",
        TMPDIR=str(tmp_path),  # where serve makes its metrics folder
    )
    log = tmp_path / "serve.log"
    with open(log, "w") as stderr:
        proc = subprocess.Popen([SEQCAST, "serve", "--port", str(port), "--workers", "2"], env=env, stderr=stderr)
    try:
        deadline = time.monotonic() + 120
        # both workers have their model: each preload counts one load in the summed counter; 200s from /ready
        # alone may all come from the worker that started first
        while loads(url, name) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.3)
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith("seqcast-metrics-")] != []

        answers: list[tuple[int, dict | str]] = []
        stop = threading.Event()

        def client() -> None:
            while not stop.is_set():
                with httpx.Client(base_url=url, timeout=30) as http:  # a new connection now and then
                    for _ in range(20):
                        r = http.post("/v1/forecast", json={"model": name, "history": HISTORY, "horizon": HORIZON})
                        answers.append((r.status_code, r.json() if r.status_code == 200 else r.text))

        clients = [threading.Thread(target=client) for _ in range(4)]
        for thread in clients:
            thread.start()
        time.sleep(1.0)
        registered["client"].set_registered_model_alias(name, CHAMPION, "2")
        moved_at = len(answers)
        deadline = time.monotonic() + 60
        while not (len(answers) > moved_at + 200 and all(a[1]["version"] == "2" for a in answers[-100:])):
            assert time.monotonic() < deadline, "the workers did not all swap to version 2 in 60 s"
            time.sleep(0.2)
        stop.set()
        for thread in clients:
            thread.join(timeout=60)

        assert [a for a in answers if a[0] != 200] == []
        for _, body in answers:
            assert body == {"model": name, "version": body["version"], "forecast": expected[body["version"]]}
        versions = [body["version"] for _, body in answers]
        assert versions[0] == "1" and "2" in versions

        for _ in range(6):  # whichever worker answers, the counters are both workers' sums
            text = httpx.get(f"{url}/metrics", timeout=5).text
            route = '{method="POST",route="/v1/forecast",status="200"}'
            assert metric(text, f"seqcast_http_requests_total{route}") == len(answers)
            assert metric(text, f'seqcast_model_swaps_total{{model="{name}"}}') == 2  # each worker swapped once
            assert len(re.findall(r"^seqcast_models_loaded\{pid=", text, re.M)) == 2  # one gauge per worker
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("seqcast-metrics-")] == []  # cleaned up
