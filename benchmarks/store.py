"""Series store: ingest throughput into SQLite and PostgreSQL, and /v1/forecast from the store vs with history.

    .venv/bin/python benchmarks/store.py [--points 1000000] [--batch 10000] [--requests 400]

1. Ingest ``--points`` hourly points as batches of ``--batch`` through ``SeriesStore.write`` (the REST
   route's path without HTTP: ISO-8601 strings in, the training data's checks, one upserting transaction per
   batch), into a fresh SQLite file and a fresh PostgreSQL database (127.0.0.1:5432, user root, database
   ``test``; skipped if none answers): points/s.
2. One tiny LSTM registered in a temporary MLflow store, served by ``seqcast serve``'s app under uvicorn on
   loopback; ``--requests`` sequential ``POST /v1/forecast`` of each kind, interleaved: from the store (no
   history) and with the same ``lookback`` values and their timestamps in the body. p50, p90 and the ratio.
Prints a table. Not part of the test run.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")

import httpx
import numpy as np
import pandas as pd

PG_ADMIN = "host=127.0.0.1 port=5432 user=root dbname=test connect_timeout=3"


def ingest(url: str, points: int, batch: int) -> tuple[float, float]:
    from pipelines.store import SeriesStore

    store = SeriesStore(url, max_points=batch)
    stamps = pd.date_range("2020-01-01", periods=points, freq="h")
    values = np.random.default_rng(0).normal(size=points)
    batches = [
        ([t.isoformat() for t in stamps[i : i + batch]], values[i : i + batch].tolist())
        for i in range(0, points, batch)
    ]
    started = time.perf_counter()
    for ts, vs in batches:
        result = store.write("bench", ts, vs)
        assert result.inserted == len(ts)
    elapsed = time.perf_counter() - started
    started = time.perf_counter()
    again = store.write("bench", *batches[-1])  # a re-sent batch: all unchanged
    resend = time.perf_counter() - started
    assert again.unchanged == len(batches[-1][0])
    assert store.summaries("bench")[0].length == points
    store.close()
    return points / elapsed, len(batches[-1][0]) / resend


def postgres_db():
    import psycopg

    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True)
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL skipped: {exc}")
        return None, None
    name = f"seqcast_bench_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://root@127.0.0.1:5432/{name}", lambda: admin.execute(
        f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def latency(tmp: Path, requests: int) -> dict[str, list[float]]:
    import uvicorn

    from pipelines.forecasting.data import Series
    from pipelines.forecasting.pipeline import train_and_register
    from pipelines.forecasting.training import TrainConfig
    from pipelines.settings import Settings, get_settings
    from service.app import create_app

    os.environ["SEQCAST_DATA_DIR"] = str(tmp)
    get_settings.cache_clear()
    n, lookback = 200, 24
    values = 10 + np.sin(np.arange(n) * 2 * np.pi / 24) + 0.1 * np.random.default_rng(1).normal(size=n)
    config = TrainConfig(variant="lstm", epochs=1, units=8, lookback=lookback, horizon=24, seed=0)
    train_and_register(Series("bench", values, season=24, source="benchmark"), config, "bench")

    settings = Settings(data_dir=tmp, api_key="bench-key", preload_models="bench", model_poll_seconds=0)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    stamps = [t.isoformat() for t in pd.date_range("2024-01-01", periods=n, freq="h")]
    base = f"http://127.0.0.1:{port}"
    times: dict[str, list[float]] = {"from the store": [], "with history": []}
    with httpx.Client(base_url=base, timeout=30) as client:
        r = client.post("/v1/series/bench/observations", json={"timestamps": stamps, "values": values.tolist()},
                        headers={"X-API-Key": "bench-key"})  # fmt: skip
        assert r.status_code == 201, r.text
        bodies = {
            "from the store": {"model": "bench", "horizon": 24},
            "with history": {
                "model": "bench",
                "horizon": 24,
                "history": values[-lookback:].tolist(),
                "timestamps": stamps[-lookback:],
            },
        }
        first = {k: client.post("/v1/forecast", json=b).json() for k, b in bodies.items()}
        assert first["from the store"] == first["with history"], "the two forecasts differ"
        for _ in range(50):  # warm-up
            for body in bodies.values():
                client.post("/v1/forecast", json=body)
        for _ in range(requests):
            for kind, body in bodies.items():
                started = time.perf_counter()
                r = client.post("/v1/forecast", json=body)
                times[kind].append(time.perf_counter() - started)
                assert r.status_code == 200, r.text
    server.should_exit = True
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory(prefix="seqcast-bench-") as tmp:
        rate, resend = ingest(f"sqlite:///{tmp}/series.db", args.points, args.batch)
        rows.append(("SQLite", rate, resend))
        url, drop = postgres_db()
        if url is not None:
            try:
                rate, resend = ingest(url, args.points, args.batch)
                rows.append(("PostgreSQL", rate, resend))
            finally:
                drop()
        (Path(tmp) / "svc").mkdir()
        times = latency(Path(tmp) / "svc", args.requests)

    print(f"\ningest: {args.points:,} points as {args.points // args.batch} batches of {args.batch:,}")
    print("| store | points/s | re-sent batch (unchanged), points/s |")
    print("| --- | --- | --- |")
    for name, rate, resend in rows:
        print(f"| {name} | {rate:,.0f} | {resend:,.0f} |")
    p50 = {k: statistics.median(v) * 1000 for k, v in times.items()}
    p90 = {k: float(np.percentile(v, 90)) * 1000 for k, v in times.items()}
    print(f"\nPOST /v1/forecast over loopback HTTP, {args.requests} sequential requests each, interleaved")
    print("| request | p50 ms | p90 ms |")
    print("| --- | --- | --- |")
    for kind in times:
        print(f"| {kind} | {p50[kind]:.2f} | {p90[kind]:.2f} |")
    print(f"\np50 ratio (store / history): {p50['from the store'] / p50['with history']:.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()
