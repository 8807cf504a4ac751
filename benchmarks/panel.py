"""Panel benchmark: N generated monthly series stored, one panel model trained on them, all forecast over REST.

    .venv/bin/python -m benchmarks.panel [--series 1000] [--length 144 | --length varied] [--variant auto]
        [--seed 42] [--auto-seconds 32] [--calls 5] [--data-dir DIR] [--skip-ingest] [--skip-train] [--rss-only]

1. **Generate** ``--series`` realistic monthly series (seeded): a level whose scale spans 5 orders of magnitude
   (10^0 to 10^5), a trend (linear, sometimes with a break), a yearly season of one or two harmonics (additive
   or multiplicative), AR(1) noise and now and then a level shift; ``--length 144`` for the cost figures, or
   ``--length varied`` (60 to 300 points each). All end on the same month.
2. **Ingest** them into the series store of a fresh data dir (``SeriesStore.write``, one batch per series, as
   ``seqcast ingest --data long.csv`` stores them): series and points per second.
3. **Train** one panel model over every stored series (``store.names`` + ``store.panel``, then
   ``train_panel_and_register`` with ``--variant``): seconds in all and per series, and how many times cheaper
   per series that is than a per-series ``auto`` model (``--auto-seconds``, measured earlier: 32 s per series
   on 2 cores).
4. **Serve**: ``seqcast serve`` as a subprocess on a free port over that data dir (``SEQCAST_PRELOAD_MODELS``
   = the panel model, so ``/ready`` means loaded); one ``POST /v1/forecast/batch`` ``{"model", "horizon"}``
   forecasts every series of the model (first call, then the median of ``--calls``); a few single
   ``POST /v1/forecast`` ``{"model", "series", "horizon"}`` calls; the service process's RSS (VmRSS) after
   loading and after the batch calls.

``--data-dir DIR`` keeps the store and the model; ``--skip-ingest`` reuses its stored series, ``--skip-train``
its registered model too, ``--rss-only`` (both skips) starts the service, makes one batch call and prints the
RSS. Exits 1 on any answer other than 200. Not part of the tests.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import httpx
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "gen-"
MODEL = "panel-bench"
FREQ = "MS"
END = pd.Timestamp("2025-12-01")
PERMANENT = "holds none of the servable artifacts"  # a load failure the service's retries cannot mend
READY_S = 600  # a panel of 10,000 series loads its config (every series' facts) before /ready


class Failed(SystemExit):
    """An answer other than 200 (or a service that did not start): the message says which; exit status 1."""

    def __init__(self, message: str):
        print(f"FAILED: {message}", file=sys.stderr, flush=True)
        super().__init__(1)


def generate(n: int, length: int | None, seed: int) -> list[tuple[str, pd.DatetimeIndex, np.ndarray]]:
    """``n`` monthly series (name, timestamps, values), all positive, scales 10^0 to 10^5, seeded."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        size = length or int(rng.integers(60, 301))
        t = np.arange(size, dtype=np.float64)
        scale = 10.0 ** rng.uniform(0.0, 5.0)
        trend = rng.normal(0.0, 0.004) * t  # relative growth per month
        if rng.random() < 0.3:  # a trend break somewhere in the middle
            at = int(rng.integers(size // 3, 2 * size // 3))
            trend[at:] += rng.normal(0.0, 0.006) * (t[at:] - at)
        phase = rng.uniform(0, 2 * np.pi)
        season = rng.uniform(0.0, 0.3) * np.sin(2 * np.pi * t / 12 + phase)
        if rng.random() < 0.5:  # a second harmonic
            season += rng.uniform(0.0, 0.1) * np.sin(4 * np.pi * t / 12 + rng.uniform(0, 2 * np.pi))
        phi, sigma = rng.uniform(0.0, 0.8), rng.uniform(0.01, 0.12)
        noise = np.empty(size)
        noise[0] = rng.normal(0.0, sigma)
        for k in range(1, size):
            noise[k] = phi * noise[k - 1] + rng.normal(0.0, sigma)
        shift = np.zeros(size)
        if rng.random() < 0.15:  # a level shift
            shift[int(rng.integers(size // 4, size)) :] = rng.normal(0.0, 0.2)
        level = np.maximum(1.0 + trend + shift, 0.05)
        if rng.random() < 0.5:  # multiplicative season: it grows with the level
            values = scale * level * (1.0 + season) * (1.0 + noise)
        else:
            values = scale * (level + season + noise)
        values = np.maximum(values, scale * 0.01)
        timestamps = pd.date_range(end=END, periods=size, freq=FREQ)
        out.append((f"{PREFIX}{i:05d}", timestamps, np.round(values, 6)))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """The process's resident set (VmRSS) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def start_service(data_dir: Path, tracking_uri: str, model: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {
        **os.environ,
        "SEQCAST_DATA_DIR": str(data_dir),
        "MLFLOW_TRACKING_URI": tracking_uri,
        "SEQCAST_PRELOAD_MODELS": model,
    }
    command = [str(Path(sys.executable).with_name("seqcast")), "serve", "--port", str(port)]
    log_path = data_dir / "serve.log"
    log = open(log_path, "wb")  # noqa: SIM115 (the service's log, read on failure)
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            pass
        refused = [line for line in log_path.read_text(errors="replace").splitlines() if PERMANENT in line]
        if refused:  # the service retries, but this will not change: say so now
            proc.terminate()
            raise Failed(f"seqcast serve cannot load {model}: {refused[0]}")
        if proc.poll() is not None:
            raise Failed(f"seqcast serve exited ({proc.returncode}) before it was ready; see {data_dir / 'serve.log'}")
        time.sleep(0.2)
    proc.terminate()
    raise Failed(f"seqcast serve was not ready in {READY_S} s; see {data_dir / 'serve.log'}")


def post(client: httpx.Client, url: str, body: dict) -> tuple[float, dict]:
    start = time.perf_counter()
    r = client.post(url, json=body)
    seconds = time.perf_counter() - start
    if r.status_code != 200:
        raise Failed(f"POST {url} {body} answered {r.status_code}: {r.text[:500]}")
    return seconds, r.json()


def check_batch(answer: dict, count: int, horizon: int) -> None:
    results = answer.get("results")
    if not isinstance(results, list) or len(results) != count:
        got = "no results" if not isinstance(results, list) else f"{len(results)} results"
        raise Failed(f"the batch call answered 200 with {got}, not {count}")
    bad = [r for r in results if len(r.get("forecast", [])) != horizon or not np.isfinite(r["forecast"]).all()]
    if bad:
        raise Failed(f"{len(bad)} of {count} batch results lack {horizon} finite forecasts, e.g. {str(bad[0])[:300]}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1000, help="series to generate (default 1000)")
    parser.add_argument("--length", default="144", help="points per series, or 'varied' (60 to 300 each)")
    parser.add_argument("--variant", default="auto", help="the panel model's variant (default auto)")
    parser.add_argument("--seed", type=int, default=42, help="the data's and the training's seed")
    parser.add_argument("--horizon", type=int, default=12)
    parser.add_argument(
        "--auto-seconds", type=float, default=32.0, help="a per-series auto model's cost, s (default 32, measured)"
    )
    parser.add_argument("--calls", type=int, default=5, help="batch calls after the first (their median is shown)")
    parser.add_argument("--singles", type=int, default=20, help="single-series POST /v1/forecast calls timed")
    parser.add_argument("--data-dir", help="keep the store and the model here (default: a fresh temporary dir)")
    parser.add_argument("--skip-ingest", action="store_true", help="use the series already stored in --data-dir")
    parser.add_argument("--skip-train", action="store_true", help="use the model already registered (and series)")
    parser.add_argument("--rss-only", action="store_true", help="serve, one batch call, the RSS (implies the skips)")
    parser.add_argument("--no-serve", action="store_true", help="stop after training")
    parser.add_argument(
        "--workers", type=int, default=1, help="--variant auto: search trials on this many processes (default: here)"
    )
    args = parser.parse_args(argv)
    if args.rss_only:
        args.skip_train = True
    if args.skip_train:
        args.skip_ingest = True
    if args.skip_ingest and not args.data_dir:
        parser.error("--skip-ingest, --skip-train and --rss-only need --data-dir (from an earlier run)")
    length = None if args.length == "varied" else int(args.length)

    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="seqcast-panel-")).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    if not args.skip_ingest and (data_dir / "series.db").exists():
        parser.error(f"{data_dir} already holds a series store: use --skip-ingest, or another --data-dir")
    os.environ["SEQCAST_DATA_DIR"] = str(data_dir)
    os.environ.pop("DATABASE_URL", None)
    from pipelines.settings import Settings

    settings = Settings(data_dir=data_dir, mlflow_tracking_uri=None)
    tracking_uri = settings.tracking_uri
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    from pipelines.store import SeriesStore

    store = SeriesStore(settings.series_store_url, max_points=max(settings.max_batch_points, 1000))
    rows: list[tuple[str, str]] = [("data dir", str(data_dir))]
    failed = False

    if not args.skip_ingest:
        t0 = time.monotonic()
        generated = generate(args.series, length, args.seed)
        gen_s = time.monotonic() - t0
        points = sum(len(v) for _, _, v in generated)
        t0 = time.monotonic()
        for name, timestamps, values in generated:
            store.write(name, timestamps, values, freq=FREQ)
        ingest_s = time.monotonic() - t0
        del generated
        rows += [
            ("series generated / points", f"{args.series} / {points:,} (lengths {args.length}; {gen_s:.1f} s)"),
            (
                "ingest (SeriesStore.write, one batch a series)",
                f"{ingest_s:.1f} s = {args.series / ingest_s:,.0f} series/s, {points / ingest_s:,.0f} points/s",
            ),
        ]
        print(f"ingested {args.series} series in {ingest_s:.1f} s", flush=True)

    t0 = time.monotonic()
    names = store.names([f"{PREFIX}*"])
    count = len(names)
    if not args.skip_train:
        panel = list(store.panel(names))
        read_s = time.monotonic() - t0
        rows.append(("read the panel from the store", f"{count} series in {read_s:.1f} s"))
        from pipelines.forecasting.pipeline import train_panel_and_register
        from pipelines.forecasting.training import TrainConfig

        more: dict[str, Any] = {}
        if args.workers > 1:
            from pipelines.retraining.fanout import map_on, start_pool_server

            start_pool_server(args.workers, None)
            more["map_trials"] = map_on(args.workers)
        print(f"training a panel model ({args.variant}) on {count} series ...", flush=True)
        t0 = time.monotonic()
        outcome = train_panel_and_register(
            panel,
            TrainConfig(variant=args.variant, horizon=args.horizon, seed=args.seed),
            MODEL,
            source=f"store:{PREFIX}*",
            settings=settings,
            promote_anyway=True,  # the service serves @champion: this run's model, whatever the gate says
            **more,
        )
        train_s = time.monotonic() - t0
        del panel
        per_series = train_s / count
        metrics = outcome.metrics
        winners = ", ".join(
            f"{k.removeprefix('served_by_')} {int(v)}" for k, v in metrics.items() if k.startswith("served_by_") and v
        )
        rows += [
            (
                f"train + register (--variant {args.variant}, workers {args.workers})",
                f"{train_s:.1f} s = {train_s / 60:.1f} min, {per_series:.3f} s per series",
            ),
            (
                "against per-series auto",
                f"{args.auto_seconds:g} s per series -> {args.auto_seconds / per_series:,.0f}x cheaper per series "
                f"(per-series auto for all: {args.auto_seconds * count / 3600:.1f} h)",
            ),
            (
                "backtest MASE (geometric mean): served / network / seasonal naive",
                f"{metrics['test_mase']:.3f} / {metrics.get('network_mase', float('nan')):.3f} / "
                f"{metrics.get('baseline_seasonal_naive_mase', float('nan')):.3f}",
            ),
            ("served by", winners or "?"),
            ("registered", f"{MODEL} v{outcome.version} ({outcome.variant}; {outcome.decision or outcome.promoted})"),
        ]
    store.close()

    if not args.no_serve:
        t0 = time.monotonic()
        try:
            proc, port = start_service(data_dir, tracking_uri, MODEL)
        except SystemExit:
            _print(rows)
            raise
        try:
            ready_s = time.monotonic() - t0
            rss_loaded = rss_mb(proc.pid)
            rows += [
                ("seqcast serve: start + preload to /ready", f"{ready_s:.1f} s"),
                ("service RSS with the panel model loaded", f"{rss_loaded:.0f} MB ({count} series)"),
            ]
            url = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=url, timeout=300) as client:
                batch = {"model": MODEL, "horizon": args.horizon}
                first, answer = post(client, "/v1/forecast/batch", batch)
                check_batch(answer, count, args.horizon)
                rows.append((f"POST /v1/forecast/batch, all {count} series: first call", f"{first * 1e3:,.0f} ms"))
                if not args.rss_only:
                    times = []
                    for _ in range(args.calls):
                        seconds, answer = post(client, "/v1/forecast/batch", batch)
                        check_batch(answer, count, args.horizon)
                        times.append(seconds)
                    if times:
                        med = float(np.median(times))
                        rows.append(
                            (
                                f"  median of the next {len(times)} (min / max)",
                                f"{med * 1e3:,.0f} ms ({min(times) * 1e3:,.0f} / {max(times) * 1e3:,.0f}) = "
                                f"{count / med:,.0f} series/s",
                            )
                        )
                    single = []
                    rng = np.random.default_rng(0)
                    for name in rng.choice(names, size=min(args.singles, count), replace=False):
                        body = {"model": MODEL, "series": str(name), "horizon": args.horizon}
                        seconds, answer = post(client, "/v1/forecast", body)
                        if len(answer.get("forecast", [])) != args.horizon:
                            raise Failed(f"POST /v1/forecast {body} answered 200 without {args.horizon} forecasts")
                        single.append(seconds)
                    if single:
                        rows.append(
                            (
                                f"POST /v1/forecast one stored series: median of {len(single)}",
                                f"{np.median(single) * 1e3:.1f} ms",
                            )
                        )
            rss_after = rss_mb(proc.pid)
            rows.append(("service RSS after the batch calls", f"{rss_after:.0f} MB (+{rss_after - rss_loaded:.0f})"))
        except SystemExit:
            failed = True
            raise
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
            if failed:
                _print(rows)

    _print(rows)
    return 0


def _print(rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    print()
    print(f"| {'':<{width}} | |")
    print(f"| {'-' * width} | --- |")
    for key, value in rows:
        print(f"| {key:<{width}} | {value} |")


if __name__ == "__main__":
    sys.exit(main())
