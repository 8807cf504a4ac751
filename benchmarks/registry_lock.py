"""Cached forecasts while the registry is locked: a real ``seqcast serve``, its MLflow SQLite store held under
an exclusive lock (as a long write by another process holds it) while unknown aliases are asked for, and
a steady stream of forecasts of the already served model. Prints their latencies. Not part of the tests:

    .venv/bin/python -m benchmarks.registry_lock [--lock 15] [--rate 20] [--misses 45]
"""

from __future__ import annotations

import argparse
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

SEQCAST = str(Path(sys.executable).with_name("seqcast"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", type=float, default=15.0, help="seconds the registry stays locked")
    parser.add_argument("--rate", type=float, default=20.0, help="cached forecasts per second")
    parser.add_argument("--misses", type=int, default=45, help="concurrent requests for unknown aliases")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="seqcast-bench-lock-"))
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(SEQCAST_DATA_DIR=str(data_dir), TF_CPP_MIN_LOG_LEVEL="3", SEQCAST_MODEL_POLL_SECONDS="0")
    subprocess.run(
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
            "8",
            "--lookback",
            "12",
            "--epochs",
            "2",
            "--quiet",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [SEQCAST, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("seqcast serve did not become ready")
            time.sleep(0.2)
        body = {"model": "sine", "history": list(np.sin(np.arange(24) / 3)), "horizon": 12}
        with httpx.Client(base_url=url, timeout=120) as client:
            for _ in range(20):
                client.post("/v1/forecast", json=body).raise_for_status()

        db = sqlite3.connect(data_dir / "mlflow.db", isolation_level=None, check_same_thread=False)
        db.execute("BEGIN EXCLUSIVE")
        locked_at = time.monotonic()
        miss_status: list[int] = []

        def miss(i: int) -> None:
            r = httpx.post(f"{url}/v1/forecast", json={**body, "alias": f"unknown{i}"}, timeout=120)
            miss_status.append(r.status_code)

        misses = [threading.Thread(target=miss, args=(i,)) for i in range(args.misses)]
        for t in misses:
            t.start()
        latencies, statuses = [], []
        with httpx.Client(base_url=url, timeout=120) as client:
            start = time.monotonic()
            i = 0
            while time.monotonic() - locked_at < args.lock:
                started = time.perf_counter()
                r = client.post("/v1/forecast", json=body)
                latencies.append(time.perf_counter() - started)
                statuses.append(r.status_code)
                i += 1
                time.sleep(max(0.0, start + i / args.rate - time.monotonic()))
        db.execute("ROLLBACK")
        db.close()
        for t in misses:
            t.join()
    finally:
        server.terminate()
        server.wait(timeout=30)

    ms = np.array(latencies) * 1000
    print(f"registry locked for {args.lock:g} s; {args.misses} requests for unknown aliases during the lock")
    print(f"cached forecasts: {len(ms)} at {args.rate:g}/s, status {sorted(set(statuses))}")
    print(f"  latency ms: p50 {np.percentile(ms, 50):.2f}  p99 {np.percentile(ms, 99):.2f}  max {ms.max():.2f}")
    print(f"  under 100 ms: {(ms < 100).sum()} of {len(ms)}")
    counts = {s: miss_status.count(s) for s in sorted(set(miss_status))}
    print(f"unknown-alias requests by status: {counts}")
    return 0 if (ms < 100).all() else 1


if __name__ == "__main__":
    sys.exit(main())
