"""A retraining pass over 16 small stored series, three ways in one run, each as a scheduled job runs it (`seqcast
retrain` in a fresh process, start-up included): in that process (--workers 1), on a pool of 2 worker processes
(--workers 2), and on a local Ray instance with 2 CPUs (SEQCAST_RAY_ADDRESS=local). Every pass faces the same
champions (the aliases are put back between passes), so all three must make the same decisions. Prints the
command's seconds, the speed-up over the sequential pass, and the per-series overhead of each engine (wall time x
workers / series, less the mean time inside a task, from the child runs). With --repeat R the three passes run R
rounds, interleaved, so a shared machine's slow minutes fall on every engine alike; the speed-up is the median of
the rounds' own speed-ups (each compares passes run back to back), beside the ratio of the median seconds.

    .venv/bin/python -m benchmarks.retrain [--series 16] [--epochs 10] [--repeat 1]
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.process import import_tensorflow_quietly, quiet_libraries

SEQCAST = str(Path(sys.executable).with_name("seqcast"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--length", type=int, default=200, help="stored values per series")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of the three passes")
    args = parser.parse_args()
    quiet_libraries()
    import_tensorflow_quietly()
    logging.basicConfig(level=logging.WARNING)

    from mlflow.tracking import MlflowClient

    from pipelines.forecasting.pipeline import train_and_register
    from pipelines.forecasting.training import TrainConfig
    from pipelines.settings import Settings
    from pipelines.store import SeriesStore
    from pipelines.tracking.registry import CHAMPION

    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="seqcast-bench-retrain-")), MLFLOW_TRACKING_URI=None)
    store = SeriesStore(settings.series_store_url)
    recipe = TrainConfig(variant="gru", units=8, epochs=args.epochs, horizon=7, lookback=14, learning_rate=1e-2)
    times = pd.date_range("2024-01-01", periods=args.length, freq="D")
    names = [f"s{i:02d}" for i in range(args.series)]
    start = time.monotonic()
    for i, name in enumerate(names):
        rng = np.random.default_rng(i)
        t = np.arange(args.length)
        values = 10 + (1 + i % 3) * np.sin(2 * np.pi * t / 7 + i) + 0.01 * i * t + 0.2 * rng.normal(size=args.length)
        store.write(name, times, values)
        train_and_register(store.series(name), recipe, name, settings=settings)
    store.close()
    print(f"{args.series} series of {args.length} values, champions trained in {time.monotonic() - start:.1f} s")

    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    champions = {name: str(client.get_model_version_by_alias(name, CHAMPION).version) for name in names}
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    env.update(SEQCAST_DATA_DIR=str(settings.data_dir), TF_CPP_MIN_LOG_LEVEL="3")
    runs = [("sequential", 1, {}), ("pool", 2, {}), ("ray", 2, {"SEQCAST_RAY_ADDRESS": "local"})]
    timings: dict[str, list[tuple[float, float]]] = {engine: [] for engine, _, _ in runs}  # (seconds, in a task)
    decisions = {}
    for round_ in range(args.repeat):
        for engine, workers, extra in runs:
            for name, version in champions.items():
                client.set_registered_model_alias(name, CHAMPION, version)
            command = [SEQCAST, "retrain", "--workers", str(workers), "--min-new-points", "0"]
            command += [arg for name in names for arg in ("--name", name)]
            start = time.monotonic()
            done = subprocess.run(command, env={**env, **extra}, capture_output=True, text=True)
            seconds = time.monotonic() - start
            assert done.returncode == 0, done.stderr[-3000:]
            parent = re.search(r"^pass (\w+): .* on (\w+):", done.stdout, re.M)
            assert parent and parent.group(2) == engine, done.stdout[-2000:]
            experiment = client.get_run(parent.group(1)).info.experiment_id
            children = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent.group(1)}'")
            timings[engine].append((seconds, float(np.mean([c.data.metrics["seconds"] for c in children]))))
            decisions[engine, round_] = {
                c.info.run_name: (c.data.tags["status"], round(c.data.metrics["challenger_mase"], 6)) for c in children
            }
            print(f"round {round_ + 1}: {engine} {seconds:.1f} s", flush=True)

    base = float(np.median([s for s, _ in timings["sequential"]]))
    print()
    print(
        "| engine | workers | seqcast retrain seconds (median) | speed-up (median of rounds) "
        "| median seconds' ratio | speed-up per round | seconds in a task (mean) | overhead per series |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    overhead = {}
    for engine, workers, _ in runs:
        seconds = float(np.median([s for s, _ in timings[engine]]))
        inside = float(np.median([i for _, i in timings[engine]]))
        overhead[engine] = seconds * workers / len(names) - inside
        # each round's engines ran back to back, so a round's ratio compares them on the same machine load
        speedups = [b / s for (b, _), (s, _) in zip(timings["sequential"], timings[engine], strict=True)]
        rounds = ", ".join(f"{x:.2f}x" for x in speedups)
        print(
            f"| {engine} | {workers} | {seconds:.1f} | {float(np.median(speedups)):.2f}x | {base / seconds:.2f}x "
            f"| {rounds} | {inside:.2f} | {overhead[engine]:+.2f} s |"
        )
    print(f"\nper-series overhead of a Ray task over a pool task: {overhead['ray'] - overhead['pool']:+.2f} s")
    same = all(d == decisions["sequential", 0] for d in decisions.values())
    print(f"same decisions on all three engines, every round: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
