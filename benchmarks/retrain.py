"""A retraining pass over 16 small stored series, three ways in one run: in this process, on a pool of 2 worker
processes, and on a local Ray instance with 2 CPUs. Every pass faces the same champions (the aliases are put
back between passes), so all three must make the same decisions. Prints seconds, speed-up over the sequential
pass, and the per-series overhead of each engine (wall time x workers / series, less the time inside the task).

    .venv/bin/python -m benchmarks.retrain [--series 16] [--epochs 10]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.process import import_tensorflow_quietly, quiet_libraries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--length", type=int, default=200, help="stored values per series")
    args = parser.parse_args()
    quiet_libraries()
    import_tensorflow_quietly()
    logging.basicConfig(level=logging.WARNING)

    from mlflow.tracking import MlflowClient

    from pipelines.forecasting.pipeline import train_and_register
    from pipelines.forecasting.training import TrainConfig
    from pipelines.retraining import run_pass
    from pipelines.settings import Settings
    from pipelines.store import SeriesStore
    from pipelines.tracking.registry import CHAMPION

    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="seqcast-bench-retrain-")))
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
    runs = [("sequential", 1, settings), ("pool", 2, settings)]
    runs.append(("ray", 2, settings.model_copy(update={"ray_address": "local"})))
    rows, decisions = [], {}
    for engine, workers, engine_settings in runs:
        for name, version in champions.items():
            client.set_registered_model_alias(name, CHAMPION, version)
        summary = run_pass(names, settings=engine_settings, workers=workers, min_new_points=0)
        assert summary.engine == engine and not summary.failed, summary.failed
        inside = float(np.mean([r.seconds for r in summary.results]))
        overhead = summary.seconds * workers / len(names) - inside
        rows.append((engine, workers, summary.seconds, inside, overhead))
        decisions[engine] = {r.name: (r.status, round(r.challenger_mase or 0, 6)) for r in summary.results}
    if "ray" in decisions:
        import ray

        ray.shutdown()

    base = rows[0][2]
    print()
    print("| engine | workers | pass seconds | speed-up | seconds in a task (mean) | overhead per series |")
    print("| --- | --- | --- | --- | --- | --- |")
    for engine, workers, seconds, inside, overhead in rows:
        print(f"| {engine} | {workers} | {seconds:.1f} | {base / seconds:.2f}x | {inside:.2f} | {overhead:+.2f} s |")
    pool, ray_row = rows[1], rows[2]
    print(f"\nper-series overhead of a Ray task over a pool task: {ray_row[4] - pool[4]:+.2f} s")
    same = decisions["pool"] == decisions["sequential"] == decisions["ray"]
    print(f"same decisions on all three engines: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
