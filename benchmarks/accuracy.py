"""Accuracy benchmark: ``seqcast train --variant auto`` against statistical forecasters on the built-in series.

Each series holds out its last ``horizon`` points (its manifest's). seqcast trains on the rest through the
pipeline (``train_and_register``: search by backtest, register), then the service forecasts the hold-out
as users get it: ``POST /v1/forecast`` (with ``levels``) of the app ``seqcast serve`` runs, over the
benchmark's own MLflow store, loading the model's ``@champion`` from the registry; its conformal intervals
are checked against the hold-out. An answer other than 200 is that series' failure, shown in the table
with the service's detail (and the exit status is 1). SeasonalNaive, AutoETS, AutoARIMA and AutoTheta
(statsforecast, the ``bench`` extra) see the same training part. MASE is scaled by the in-sample seasonal
naive with the manifest's season. Not part of the tests:

    .venv/bin/python -m benchmarks.accuracy [--trials N] [--budget S] [--seed 42] [--series wineind,lynx] [--json out.json]

``--panels [visnights,prison,departures,monthly_mix]`` measures the panels of ``../shared/data/panels/`` instead
(see :func:`panels_main`): the panel model (``train_panel``, per ``--seeds`` seed), per-series ``auto``
(``--no-per-series`` skips it), AutoETS, AutoTheta and SeasonalNaive; geometric-mean MASE per panel and pooled.

Per series and overall it prints, for seqcast and each statistical method: MASE, sMAPE, hold-out coverage of
the 80% and 95% intervals and seconds per series (seqcast's: search, register and the served forecast).
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
from pathlib import Path

import numpy as np

from pipelines.forecasting.metrics import geometric_mean

SERIES = ("wineind", "woolyrnq", "lynx", "austres", "taylor", "heartrate", "shampoo")
NO_SEASON_FOR_ETS_ARIMA = {"taylor"}  # a 48-long season takes hours in AutoETS/AutoARIMA
LEVELS = (0.8, 0.95)
TRAIN_SEED = 42  # TrainConfig's default
LOAD_WAIT_S = 120  # how long a 503 (model still loading) is retried


STAT_METHODS = ("SeasonalNaive", "AutoETS", "AutoARIMA", "AutoTheta")


def statistical_forecasts(train: np.ndarray, horizon: int, season: int, name: str) -> dict[str, dict]:
    """Per method: ``forecast``, ``intervals`` {level: (lower, upper)} at ``LEVELS`` and ``seconds`` (one fit each)."""
    import pandas as pd
    from statsforecast import StatsForecast
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta, SeasonalNaive

    short = 1 if name in NO_SEASON_FOR_ETS_ARIMA else season
    models = {
        "SeasonalNaive": SeasonalNaive(season_length=season),
        "AutoETS": AutoETS(season_length=short),
        "AutoARIMA": AutoARIMA(season_length=short),
        "AutoTheta": AutoTheta(season_length=season),
    }
    frame = pd.DataFrame({"unique_id": name, "ds": np.arange(len(train)), "y": train})
    levels = [round(lv * 100) for lv in LEVELS]
    out = {}
    for method, model in models.items():
        t0 = time.monotonic()
        fc = StatsForecast(models=[model], freq=1, n_jobs=1).forecast(df=frame, h=horizon, level=levels)
        intervals = {
            lv: (fc[f"{method}-lo-{pct}"].to_numpy(dtype=float), fc[f"{method}-hi-{pct}"].to_numpy(dtype=float))
            for lv, pct in zip(LEVELS, levels, strict=True)
        }
        out[method] = {
            "forecast": fc[method].to_numpy(dtype=float),
            "intervals": intervals,
            "seconds": time.monotonic() - t0,
        }
    return out


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

        self.app = create_app(Settings(data_dir=Path(data_dir), preload_models="", model_poll_seconds=0))

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
    deadline = time.monotonic() + LOAD_WAIT_S
    while True:
        try:
            r = client.post("/v1/forecast", json=request)
        except Exception as exc:
            raise ServiceFailure(f"HTTP 500 ({type(exc).__name__}: {exc})") from exc
        # a cold combination can take longer to load and compile than the registry timeout on a slow machine;
        # the load goes on after the 503, so retry as its Retry-After says (the figure is accuracy, not load time)
        if r.status_code != 503 or "Retry-After" not in r.headers or time.monotonic() > deadline:
            break
        time.sleep(float(r.headers["Retry-After"]))
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
    client, series, horizon: int, budget: float | None, trials: int | None, seed: int
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


PANELS = ("visnights", "prison", "departures", "monthly_mix")
PANEL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "panels")
PANEL_STATS = ("AutoETS", "AutoTheta", "SeasonalNaive")


def panel_statistical(train: np.ndarray, horizon: int, season: int, name: str) -> dict[str, dict]:
    """AutoETS, AutoTheta and SeasonalNaive on one series' training part: ``forecast`` and ``seconds`` each."""
    import pandas as pd
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, AutoTheta, SeasonalNaive

    models = {
        "AutoETS": AutoETS(season_length=season),
        "AutoTheta": AutoTheta(season_length=season),
        "SeasonalNaive": SeasonalNaive(season_length=season),
    }
    frame = pd.DataFrame({"unique_id": name, "ds": np.arange(len(train)), "y": train})
    out = {}
    for method, model in models.items():
        t0 = time.monotonic()
        fc = StatsForecast(models=[model], freq=1, n_jobs=1).forecast(df=frame, h=horizon)
        out[method] = {"forecast": fc[method].to_numpy(dtype=float), "seconds": time.monotonic() - t0}
    return out


def load_benchmark_panel(name: str, manifest: dict):
    """(training parts, hold-outs, horizon, season) of one panel: each series without its last ``horizon`` points,
    with the manifest's season and horizon."""
    from pipelines.forecasting.data import load_panel

    horizon, season = int(manifest["horizon"]), int(manifest["season"])
    full = load_panel(os.path.join(PANEL_DIR, f"{name}.csv"))
    train, actual = [], []
    for s in full:
        timestamps = s.timestamps[:-horizon] if s.timestamps is not None else None
        train.append(
            replace(
                s,
                values=s.values[:-horizon],
                timestamps=timestamps,
                season=season,
                meta={**s.meta, "horizon": horizon},
            )
        )
        actual.append(s.values[-horizon:])
    return train, actual, horizon, season


def panel_model_forecasts(train, horizon: int, variant: str, seed: int, trials: int | None) -> tuple[np.ndarray, float]:
    """``train_panel`` on the training parts, then every series' hold-out forecast from its last window in one
    ``forecast_windows`` call (in process: what the service's batch route runs): forecasts [series, horizon], s."""
    from pipelines.forecasting.panel_training import train_panel
    from pipelines.forecasting.training import TrainConfig

    t0 = time.monotonic()
    candidate = train_panel(train, TrainConfig(variant=variant, horizon=horizon, seed=seed, trials=trials))
    forecaster = candidate.forecaster
    windows = np.stack([s.values[-forecaster.lookback :] for s in train])
    forecasts = forecaster.forecast_windows(windows, horizon, [s.name for s in train])
    winners = [forecaster.series[s.name].winner for s in train]
    print(
        f"  panel model seed {seed}: {candidate.forecaster.meta.get('chosen')}; served by "
        + ", ".join(f"{w} {winners.count(w)}" for w in sorted(set(winners))),
        flush=True,
    )
    return forecasts, time.monotonic() - t0


def per_series_auto(
    client, panel_name: str, train, horizon: int, budget: float | None, trials: int | None, seed: int
) -> tuple[list, list, dict]:
    """Each series' own ``auto`` model through the single-series mode's path (:func:`seqcast_forecast`: train,
    register, ``POST /v1/forecast``): (forecasts, seconds per series, {series: failure}); a failed series'
    forecast is NaN."""
    forecasts, seconds, failures = [], [], {}
    for s in train:
        t0 = time.monotonic()
        try:
            forecast, _, info = seqcast_forecast(
                client, replace(s, name=f"{panel_name}-{s.name}"), horizon, budget, trials, seed
            )
            note = info["chosen"]
        except ServiceFailure as exc:
            forecast, note = np.full(horizon, np.nan), f"FAILED: {exc}"
            failures[s.name] = str(exc)
        forecasts.append(np.asarray(forecast, dtype=float))
        seconds.append(time.monotonic() - t0)
        print(f"  per-series auto {s.name}: {seconds[-1]:.0f}s ({note})", flush=True)
    return forecasts, seconds, failures


def panels_main(args) -> int:
    """``--panels``: per panel, the panel model (each seed), per-series auto, AutoETS, AutoTheta, SeasonalNaive."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    data_dir = tempfile.mkdtemp(prefix="seqcast-accuracy-panels-")
    os.environ["SEQCAST_DATA_DIR"] = data_dir
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    from pipelines.forecasting import metrics

    with open(os.path.join(PANEL_DIR, "manifest.json")) as fh:
        manifest = json.load(fh)
    names = args.panels.split(",")
    unknown = [n for n in names if n not in manifest]
    if unknown:
        raise SystemExit(f"unknown panel(s) {unknown}; the panels are {', '.join(manifest)}")
    seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else [args.seed]
    panel_methods = [f"panel seed {seed}" for seed in seeds]
    methods = [*panel_methods, *([] if args.no_per_series else ["per-series auto"]), *PANEL_STATS]
    started = time.monotonic()
    failures: dict[str, str] = {}
    rows = []  # one per series: panel, series, mase {method: x}, seconds {method: s per series}
    for panel_name in names:
        train, actual, horizon, season = load_benchmark_panel(panel_name, manifest[panel_name])
        print(f"{panel_name}: {len(train)} series, horizon {horizon}, season {season}", flush=True)
        forecasts: dict[str, list] = {}
        seconds: dict[str, list] = {}
        for seed, method in zip(seeds, panel_methods, strict=True):
            f, s = panel_model_forecasts(train, horizon, args.variant, seed, args.trials)
            forecasts[method], seconds[method] = list(f), [s / len(train)] * len(train)
        if not args.no_per_series:
            with ServedApp(data_dir) as client:
                forecasts["per-series auto"], seconds["per-series auto"], failed = per_series_auto(
                    client, panel_name, train, horizon, args.budget, args.trials, seeds[0]
                )
            failures.update({f"{panel_name}/{k}": v for k, v in failed.items()})
        for method in PANEL_STATS:
            forecasts[method], seconds[method] = [], []
        for s in train:
            stats = panel_statistical(s.values, horizon, season, s.name)
            for method in PANEL_STATS:
                forecasts[method].append(stats[method]["forecast"])
                seconds[method].append(stats[method]["seconds"])
        for i, s in enumerate(train):
            scale = metrics.naive_scale(s.values, season)
            rows.append(
                {
                    "panel": panel_name,
                    "series": s.name,
                    "mase": {m: float(metrics.mae(actual[i], forecasts[m][i]) / scale) for m in methods},
                    "seconds": {m: float(seconds[m][i]) for m in methods},
                }
            )
        mine = [r for r in rows if r["panel"] == panel_name]
        print(
            f"{panel_name}: " + ", ".join(f"{m} {geometric_mean([r['mase'][m] for r in mine]):.3f}" for m in methods),
            flush=True,
        )

    groups = {n: [r for r in rows if r["panel"] == n] for n in names}
    if len(names) > 1:
        groups[f"pooled ({len(rows)} series)"] = rows
    summary: dict[str, dict] = {
        group: {
            "series": len(members),
            "geometric_mean_mase": {m: geometric_mean([r["mase"][m] for r in members]) for m in methods},
            "seconds_per_series": {m: float(np.mean([r["seconds"][m] for r in members])) for m in methods},
        }
        for group, members in groups.items()
    }
    for entry in summary.values():
        gm = entry["geometric_mean_mase"]
        gm["panel mean of seeds"] = float(np.mean([gm[m] for m in panel_methods]))
        compared = [*panel_methods, *(["panel mean of seeds"] if len(seeds) > 1 else [])]
        entry["ratios"] = {f"{m} / AutoETS": gm[m] / gm["AutoETS"] for m in compared}
        if not args.no_per_series:
            entry["ratios"].update({f"{m} / per-series auto": gm[m] / gm["per-series auto"] for m in compared})

    shown = [*panel_methods, *(["panel mean of seeds"] if len(seeds) > 1 else []), *methods[len(panel_methods) :]]
    print()
    print("geometric-mean MASE (seconds per series)")
    print("| panel | " + " | ".join(shown) + " | " + " | ".join(summary[names[0]]["ratios"]) + " |")
    print("| --- |" + " --- |" * (len(shown) + len(summary[names[0]]["ratios"])))
    for group, g in summary.items():
        cells = []
        for m in shown:
            secs = g["seconds_per_series"].get(m)
            cells.append(f"{g['geometric_mean_mase'][m]:.3f}" + ("" if secs is None else f" ({secs:.2f}s)"))
        cells += [f"{v:.3f}x" for v in g["ratios"].values()]
        print(f"| {group} | " + " | ".join(cells) + " |")
    print(
        f"\nthe panel model: --variant {args.variant}, seeds {','.join(map(str, seeds))}; its seconds per series are "
        f"its panel's training and forecast over the series count. total {time.monotonic() - started:.0f}s"
    )
    for key, error in failures.items():
        print(f"FAILED per-series auto {key}: {error}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "variant": args.variant,
                    "seeds": seeds,
                    "panels": names,
                    "rows": rows,
                    "summary": summary,
                    "failed": failures,
                },
                fh,
                indent=2,
            )
    return 1 if failures else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--budget", type=float, help="seconds for each series' auto search (default: the search's own default)"
    )
    parser.add_argument("--trials", type=int, help="exactly the first N configurations per series, whatever the clock")
    parser.add_argument("--seed", type=int, default=TRAIN_SEED, help="seqcast's training seed")
    parser.add_argument("--series", default=",".join(SERIES))
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument(
        "--panels",
        nargs="?",
        const=",".join(PANELS),
        help="the panels of ../shared/data/panels/ instead (all, or a comma-separated choice: "
        + ",".join(PANELS)
        + "): the panel model against per-series auto and the statistical methods",
    )
    parser.add_argument("--seeds", help="--panels: the panel model's seeds, e.g. 42,1,2 (default: --seed)")
    parser.add_argument("--variant", default="auto", help="--panels: the panel model's variant (default auto)")
    parser.add_argument(
        "--no-per-series", action="store_true", help="--panels: skip per-series auto (about 30 s per series)"
    )
    args = parser.parse_args(argv)
    if args.panels:
        return panels_main(args)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    data_dir = tempfile.mkdtemp(prefix="seqcast-accuracy-")  # a throwaway MLflow store
    os.environ["SEQCAST_DATA_DIR"] = data_dir
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    from pipelines.forecasting import metrics
    from pipelines.forecasting.data import load_series

    started = time.monotonic()
    rows = []
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
            results = {
                "seqcast": {"forecast": forecast, "intervals": intervals, "seconds": seconds},
                **statistical_forecasts(train.values, horizon, season, name),
            }
            row = {
                "series": name,
                "horizon": horizon,
                "chosen": info["chosen"],
                "error": error,
                "seconds": {k: round(r["seconds"], 2) for k, r in results.items()},
                "mase": {},
                "smape": {},
                "coverage": {},
            }
            for method, r in results.items():
                f = r["forecast"]
                row["mase"][method] = None if f is None else float(metrics.mae(actual, f) / scale)
                row["smape"][method] = None if f is None else float(metrics.smape(actual, f))
                row["coverage"][method] = {
                    str(level): int(np.sum((actual >= lower) & (actual <= upper))) / horizon
                    for level, (lower, upper) in r["intervals"].items()
                }
            if error is None:
                cov = row["coverage"]["seqcast"]
                print(
                    f"{name}: seqcast MASE {row['mase']['seqcast']:.3f} sMAPE {row['smape']['seqcast']:.1f} "
                    f"coverage {' / '.join(f'{v:.0%}' for v in cov.values())} ({row['chosen']}, {seconds:.0f}s)",
                    flush=True,
                )
            else:
                print(f"{name}: seqcast FAILED ({seconds:.0f}s): {error}", flush=True)
            rows.append(row)

    failed = [r for r in rows if r["error"] is not None]
    scored = [r for r in rows if r["error"] is None]
    methods = list(rows[0]["mase"])
    levels = [str(lv) for lv in LEVELS]

    def cell(row, m) -> str:
        if row["mase"][m] is None:
            return "FAILED"
        cov = " / ".join(f"{row['coverage'][m][lv]:.0%}" for lv in levels)
        return f"{row['mase'][m]:.3f} / {row['smape'][m]:.1f} / {cov} / {row['seconds'][m]:.1f}s"

    print()
    print("| series | " + " | ".join(methods) + " |")
    print("| --- |" + " --- |" * len(methods))
    for row in rows:
        print(f"| {row['series']} | " + " | ".join(cell(row, m) for m in methods) + " |")
    # over the series every method forecast, so the columns stay comparable
    points = sum(r["horizon"] for r in scored)
    overall: dict[str, dict | None] = {}
    for m in methods:
        if not scored:
            overall[m] = None
            continue
        overall[m] = {
            "geometric_mean_mase": geometric_mean([r["mase"][m] for r in scored]),
            "mean_smape": float(np.mean([r["smape"][m] for r in scored])),
            "pooled_coverage": {lv: sum(r["coverage"][m][lv] * r["horizon"] for r in scored) / points for lv in levels},
            "seconds_per_series": float(np.mean([r["seconds"][m] for r in scored])),
        }
    over = "" if not failed else f" (over the {len(scored)} of {len(rows)} series seqcast served)"

    def overall_cell(m) -> str:
        o = overall[m]
        if o is None:
            return "n/a"
        cov = " / ".join(f"{o['pooled_coverage'][lv]:.1%}" for lv in levels)
        return f"{o['geometric_mean_mase']:.3f} / {o['mean_smape']:.1f} / {cov} / {o['seconds_per_series']:.1f}s"

    print(
        f"| geometric mean MASE / mean sMAPE / pooled coverage / mean seconds{over} | "
        + " | ".join(overall_cell(m) for m in methods)
        + " |"
    )
    beats = sum(r["mase"]["seqcast"] < r["mase"]["SeasonalNaive"] for r in scored)
    within = sum(r["mase"]["seqcast"] <= r["mase"]["SeasonalNaive"] + 0.02 for r in scored)
    print(
        f"\ncells: MASE / sMAPE (%) / hold-out coverage at {' / '.join(f'{float(lv):.0%}' for lv in levels)} / "
        f"seconds per series. seqcast beats seasonal naive on {beats} of {len(rows)} series, is within 0.02 of it "
        f"on {within}" + (f"; failed on {len(failed)}" if failed else "")
    )
    served = overall.get("seqcast")
    pooled = served["pooled_coverage"] if served else {lv: None for lv in levels}
    print(
        "seqcast pooled interval coverage on the hold-outs: "
        + ", ".join(f"{float(k):.0%}: " + ("n/a" if v is None else f"{v:.1%}") for k, v in pooled.items())
        + f" ({points} points)"
    )
    for row in failed:
        print(f"FAILED {row['series']}: {row['error']}")
    print(f"total {time.monotonic() - started:.0f}s; the runs and trials: SEQCAST_DATA_DIR={data_dir} seqcast ui")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "seed": args.seed,
                    "rows": rows,
                    "overall": overall,
                    "geometric_mean_mase": {m: o and o["geometric_mean_mase"] for m, o in overall.items()},
                    "pooled_coverage": pooled,
                    "beats_seasonal_naive": beats,
                    "within_002_of_seasonal_naive": within,
                    "failed": {r["series"]: r["error"] for r in failed},
                },
                fh,
                indent=2,
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
