"""Accuracy benchmark: ``seqcast train --variant auto`` against statistical forecasters on the built-in series.

Each series holds out its last ``horizon`` points (its manifest's). seqcast trains on the rest through the
pipeline (``train_and_register``: search by backtest, register), the registered model forecasts the
hold-out, and its conformal intervals are checked against it. SeasonalNaive, AutoETS, AutoARIMA and
AutoTheta (statsforecast, the ``bench`` extra) see the same training part. MASE is scaled by the in-sample
seasonal naive with the manifest's season. Not part of the tests:

    .venv/bin/python -m benchmarks.accuracy [--budget 150 | --trials 10] [--seed 42] [--series wineind,lynx] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace

import numpy as np

SERIES = ("wineind", "woolyrnq", "lynx", "austres", "taylor", "heartrate", "shampoo")
NO_SEASON_FOR_ETS_ARIMA = {"taylor"}  # a 48-long season takes hours in AutoETS/AutoARIMA
LEVELS = (0.8, 0.95)
TRAIN_SEED = 42  # TrainConfig's default


def statistical_forecasts(train: np.ndarray, horizon: int, season: int, name: str) -> dict[str, np.ndarray]:
    import pandas as pd
    from statsforecast import StatsForecast
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta, SeasonalNaive

    short = 1 if name in NO_SEASON_FOR_ETS_ARIMA else season
    models = [
        SeasonalNaive(season_length=season),
        AutoETS(season_length=short),
        AutoARIMA(season_length=short),
        AutoTheta(season_length=season),
    ]
    frame = pd.DataFrame({"unique_id": name, "ds": np.arange(len(train)), "y": train})
    out = StatsForecast(models=models, freq=1, n_jobs=1).forecast(df=frame, h=horizon)
    return {col: out[col].to_numpy(dtype=float) for col in ("SeasonalNaive", "AutoETS", "AutoARIMA", "AutoTheta")}


def seqcast_forecast(series, horizon: int, budget: float, trials: int | None, seed: int) -> tuple[np.ndarray, dict, dict]:
    """The same code path as ``seqcast train --variant auto``: train, register, then load the registered model."""
    from pipelines.pipeline import train_and_register
    from pipelines.registry import load_forecaster, model_uri
    from pipelines.training import TrainConfig

    outcome = train_and_register(series, TrainConfig(variant="auto", horizon=horizon, budget=budget, trials=trials, seed=seed), f"bench-{series.name}")
    forecaster = load_forecaster(model_uri(outcome.name, version=outcome.version))
    forecast = forecaster.forecast(series.values, horizon)
    intervals = forecaster.intervals(forecast, LEVELS)
    return forecast, intervals, {"variant": outcome.variant, "config": forecaster.config()}


def geometric_mean(values) -> float:
    values = np.asarray(values, dtype=float)
    return float(np.exp(np.mean(np.log(values))))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=150.0, help="seconds of --variant auto search per series")
    parser.add_argument("--trials", type=int, help="exactly this many configurations per series (reproducible; overrides --budget)")
    parser.add_argument("--seed", type=int, default=TRAIN_SEED, help="seqcast's training seed")
    parser.add_argument("--series", default=",".join(SERIES))
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ["SEQCAST_DATA_DIR"] = tempfile.mkdtemp(prefix="seqcast-accuracy-")  # a throwaway MLflow store
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    from pipelines import metrics
    from pipelines.data import load_series

    started = time.monotonic()
    rows, covered, n_points = [], {lv: 0 for lv in LEVELS}, 0
    for name in args.series.split(","):
        full = load_series(name)
        horizon, season = int(full.meta["horizon"]), int(full.season or 1)
        timestamps = full.timestamps[:-horizon] if full.timestamps is not None else None
        train = replace(full, values=full.values[:-horizon], timestamps=timestamps)
        actual = full.values[-horizon:]
        scale = metrics.naive_scale(train.values, season)

        t0 = time.monotonic()
        forecast, intervals, info = seqcast_forecast(train, horizon, args.budget, args.trials, args.seed)
        seconds = time.monotonic() - t0
        forecasts = {"seqcast": forecast, **statistical_forecasts(train.values, horizon, season, name)}
        row = {
            "series": name,
            "seconds": round(seconds, 1),
            "chosen": info["config"]["meta"].get("chosen", info["variant"]),
            "mase": {k: float(metrics.mae(actual, f) / scale) for k, f in forecasts.items()},
            "smape": {k: float(metrics.smape(actual, f)) for k, f in forecasts.items()},
            "coverage": {},
        }
        for level, (lower, upper) in intervals.items():
            inside = int(np.sum((actual >= lower) & (actual <= upper)))
            covered[level] += inside
            row["coverage"][str(level)] = inside / horizon
        n_points += horizon
        rows.append(row)
        print(f"{name}: seqcast MASE {row['mase']['seqcast']:.3f} ({row['chosen']}, {seconds:.0f}s)", flush=True)

    methods = list(rows[0]["mase"])
    print()
    print("| series | " + " | ".join(methods) + " |")
    print("| --- |" + " --- |" * len(methods))
    for row in rows:
        cells = [f"{row['mase'][m]:.3f} / {row['smape'][m]:.1f}" for m in methods]
        print(f"| {row['series']} | " + " | ".join(cells) + " |")
    geo = {m: geometric_mean([r["mase"][m] for r in rows]) for m in methods}
    mean_smape = {m: float(np.mean([r["smape"][m] for r in rows])) for m in methods}
    print("| geometric mean MASE / mean sMAPE | " + " | ".join(f"{geo[m]:.3f} / {mean_smape[m]:.1f}" for m in methods) + " |")
    beats = sum(r["mase"]["seqcast"] < r["mase"]["SeasonalNaive"] for r in rows)
    print(f"\ncells: MASE / sMAPE (%). seqcast beats seasonal naive on {beats} of {len(rows)} series")
    pooled = {str(lv): covered[lv] / n_points for lv in LEVELS}
    print("pooled interval coverage on the hold-outs: " + ", ".join(f"{float(k):.0%}: {v:.1%}" for k, v in pooled.items())
          + f" ({n_points} points)")  # fmt: skip
    print(f"total {time.monotonic() - started:.0f}s; the runs and trials: SEQCAST_DATA_DIR={os.environ['SEQCAST_DATA_DIR']} seqcast ui")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": rows, "geometric_mean_mase": geo, "pooled_coverage": pooled, "beats_seasonal_naive": beats}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
