"""Accuracy benchmark: ``seqcast train --variant auto`` against statistical forecasters on the built-in series.

Each series holds out its last ``horizon`` points (its manifest's). seqcast trains on the rest through the
pipeline (``train_and_register``: search by backtest, register), then the service forecasts the hold-out
as users get it: ``POST /v1/forecast`` (with ``levels``) of the app ``seqcast serve`` runs, over the
benchmark's own MLflow store, loading the model's ``@champion`` from the registry; its conformal intervals
are checked against the hold-out. An answer other than 200 is that series' failure, shown in the table
with the service's detail (and the exit status is 1). SeasonalNaive, AutoETS, AutoARIMA and AutoTheta
(statsforecast, the ``bench`` extra) see the same training part. MASE is scaled by the in-sample seasonal
naive with the manifest's season. Not part of the tests:

    .venv/bin/python -m benchmarks.accuracy [--budget 150 | --trials 10] [--seed 42] [--series wineind,lynx] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
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


class ServiceFailure(RuntimeError):
    """The service did not answer 200; the message is what it said (status and detail)."""


class _ErrorRecords(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def take(self) -> str:
        """The errors logged since the last call, with their exceptions, as one line."""
        taken, self.records = self.records, []
        return "; ".join(
            f"{r.getMessage()}: {type(r.exc_info[1]).__name__}: {r.exc_info[1]}"
            if r.exc_info and r.exc_info[1]
            else r.getMessage()
            for r in taken
        )


class ServedApp:
    """The app ``seqcast serve`` runs, over the benchmark's store, behind an httpx client (ASGI transport: in
    process, no socket) on an event loop of its own. Entering runs the app's startup and leaving its shutdown,
    as uvicorn would; models load from the registry on their first request."""

    def __init__(self, data_dir: str):
        from pipelines.settings import Settings
        from service.app import create_app

        self.app = create_app(Settings(data_dir=data_dir, preload_models="", model_poll_seconds=0))

    def __enter__(self) -> ServedApp:
        import httpx
        from anyio.from_thread import start_blocking_portal

        self._stack = contextlib.ExitStack()
        self.server_errors = _ErrorRecords()  # a 500's body names only a request id; the log says what failed
        logging.getLogger("service").addHandler(self.server_errors)
        self._stack.callback(logging.getLogger("service").removeHandler, self.server_errors)
        self.portal = self._stack.enter_context(start_blocking_portal())
        self._stack.enter_context(self.portal.wrap_async_context_manager(self.app.router.lifespan_context(self.app)))
        transport = httpx.ASGITransport(app=self.app)
        self.client = httpx.AsyncClient(transport=transport, base_url="http://seqcast.bench", timeout=120)
        self._stack.callback(self.portal.call, self.client.aclose)
        return self

    def __exit__(self, *exc) -> None:
        self._stack.__exit__(*exc)

    def post(self, url: str, **kwargs):
        return self.portal.call(functools.partial(self.client.post, url, **kwargs))


def served_forecast(client, name: str, history: np.ndarray, horizon: int) -> tuple[dict, np.ndarray, dict]:
    """``POST /v1/forecast`` of ``name``'s ``@champion`` -> (body, forecast, {level: (lower, upper)})."""
    request = {
        "model": name,
        "history": np.asarray(history, dtype=float).tolist(),
        "horizon": horizon,
        "levels": list(LEVELS),
    }
    client.server_errors.take()
    try:
        r = client.post("/v1/forecast", json=request)
    except Exception as exc:
        raise ServiceFailure(f"HTTP 500 ({type(exc).__name__}: {exc})") from exc
    if r.status_code != 200:
        try:
            detail = r.json().get("detail", r.text)
        except ValueError:
            detail = r.text
        logged = client.server_errors.take()
        raise ServiceFailure(f"HTTP {r.status_code}: {detail}" + (f" (server log: {logged})" if logged else ""))
    body = r.json()
    forecast = np.asarray(body["forecast"], dtype=float)
    bands = {float(level): band for level, band in body.get("intervals", {}).items()}
    if forecast.shape != (horizon,) or set(bands) != set(LEVELS):
        raise ServiceFailure(
            f"HTTP 200 without {horizon} forecasts and intervals at {LEVELS}: {json.dumps(body)[:300]}"
        )
    intervals = {
        lv: (np.asarray(bands[lv]["lower"], dtype=float), np.asarray(bands[lv]["upper"], dtype=float)) for lv in LEVELS
    }
    return body, forecast, intervals


def seqcast_forecast(
    client, series, horizon: int, budget: float, trials: int | None, seed: int
) -> tuple[np.ndarray, dict, dict]:
    """The same code path as ``seqcast train --variant auto`` then ``POST /v1/forecast``: train, register,
    forecast through the service. Raises :class:`ServiceFailure` when the service does not answer 200."""
    from pipelines import tracking
    from pipelines.forecasting.pipeline import train_and_register
    from pipelines.forecasting.training import TrainConfig

    outcome = train_and_register(
        series,
        TrainConfig(variant="auto", horizon=horizon, budget=budget, trials=trials, seed=seed),
        f"bench-{series.name}",
    )
    tags = tracking.configure().get_model_version(outcome.name, outcome.version).tags
    config = json.loads(tags.get("window_config", "{}"))
    info = {
        "variant": outcome.variant,
        "config": config,
        "chosen": config.get("meta", {}).get("chosen", outcome.variant),
    }
    body, forecast, intervals = served_forecast(client, outcome.name, series.values, horizon)
    if body.get("version") != outcome.version:
        raise ServiceFailure(
            f"served version {body.get('version')} of {outcome.name}, not the one just registered ({outcome.version})"
        )
    return forecast, intervals, info


def geometric_mean(values) -> float:
    values = np.asarray(values, dtype=float)
    return float(np.exp(np.mean(np.log(values))))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=150.0, help="seconds of --variant auto search per series")
    parser.add_argument(
        "--trials", type=int, help="exactly this many configurations per series (reproducible; overrides --budget)"
    )
    parser.add_argument("--seed", type=int, default=TRAIN_SEED, help="seqcast's training seed")
    parser.add_argument("--series", default=",".join(SERIES))
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    data_dir = tempfile.mkdtemp(prefix="seqcast-accuracy-")  # a throwaway MLflow store
    os.environ["SEQCAST_DATA_DIR"] = data_dir
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    from pipelines.forecasting import metrics
    from pipelines.forecasting.data import load_series

    started = time.monotonic()
    rows, covered, n_points = [], {lv: 0 for lv in LEVELS}, 0
    with ServedApp(data_dir) as client:
        for name in args.series.split(","):
            full = load_series(name)
            horizon, season = int(full.meta["horizon"]), int(full.season or 1)
            timestamps = full.timestamps[:-horizon] if full.timestamps is not None else None
            train = replace(full, values=full.values[:-horizon], timestamps=timestamps)
            actual = full.values[-horizon:]
            scale = metrics.naive_scale(train.values, season)

            t0 = time.monotonic()
            try:
                forecast, intervals, info = seqcast_forecast(
                    client, train, horizon, args.budget, args.trials, args.seed
                )
                error = None
            except ServiceFailure as exc:
                forecast, intervals, info, error = None, {}, {"chosen": None}, str(exc)
            seconds = time.monotonic() - t0
            forecasts = {"seqcast": forecast, **statistical_forecasts(train.values, horizon, season, name)}
            row = {
                "series": name,
                "seconds": round(seconds, 1),
                "chosen": info["chosen"],
                "error": error,
                "mase": {k: None if f is None else float(metrics.mae(actual, f) / scale) for k, f in forecasts.items()},
                "smape": {k: None if f is None else float(metrics.smape(actual, f)) for k, f in forecasts.items()},
                "coverage": {},
            }
            for level, (lower, upper) in intervals.items():
                inside = int(np.sum((actual >= lower) & (actual <= upper)))
                covered[level] += inside
                row["coverage"][str(level)] = inside / horizon
            if error is None:
                n_points += horizon
                print(
                    f"{name}: seqcast MASE {row['mase']['seqcast']:.3f} ({row['chosen']}, {seconds:.0f}s)", flush=True
                )
            else:
                print(f"{name}: seqcast FAILED ({seconds:.0f}s): {error}", flush=True)
            rows.append(row)

    failed = [r for r in rows if r["error"] is not None]
    scored = [r for r in rows if r["error"] is None]
    methods = list(rows[0]["mase"])
    print()
    print("| series | " + " | ".join(methods) + " |")
    print("| --- |" + " --- |" * len(methods))
    for row in rows:
        cells = [
            "FAILED" if row["mase"][m] is None else f"{row['mase'][m]:.3f} / {row['smape'][m]:.1f}" for m in methods
        ]
        print(f"| {row['series']} | " + " | ".join(cells) + " |")
    # over the series every method forecast, so the columns stay comparable
    geo = {m: geometric_mean([r["mase"][m] for r in scored]) if scored else None for m in methods}
    mean_smape = {m: float(np.mean([r["smape"][m] for r in scored])) if scored else None for m in methods}
    over = "" if not failed else f" (over the {len(scored)} of {len(rows)} series seqcast served)"
    print(
        f"| geometric mean MASE / mean sMAPE{over} | "
        + " | ".join("n/a" if geo[m] is None else f"{geo[m]:.3f} / {mean_smape[m]:.1f}" for m in methods)
        + " |"
    )
    beats = sum(r["mase"]["seqcast"] < r["mase"]["SeasonalNaive"] for r in scored)
    print(
        f"\ncells: MASE / sMAPE (%). seqcast beats seasonal naive on {beats} of {len(rows)} series"
        + (f"; failed on {len(failed)}" if failed else "")
    )
    pooled = {str(lv): covered[lv] / n_points if n_points else None for lv in LEVELS}
    print(
        "pooled interval coverage on the hold-outs: "
        + ", ".join(f"{float(k):.0%}: " + ("n/a" if v is None else f"{v:.1%}") for k, v in pooled.items())
        + f" ({n_points} points)"
    )
    for row in failed:
        print(f"FAILED {row['series']}: {row['error']}")
    print(f"total {time.monotonic() - started:.0f}s; the runs and trials: SEQCAST_DATA_DIR={data_dir} seqcast ui")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "rows": rows,
                    "geometric_mean_mase": geo,
                    "pooled_coverage": pooled,
                    "beats_seasonal_naive": beats,
                    "failed": {r["series"]: r["error"] for r in failed},
                },
                fh,
                indent=2,
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
