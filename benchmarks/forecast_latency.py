"""Forecast latency: the seed's predict-per-step loop vs the service, on one registered model in one run.

    .venv/bin/python benchmarks/forecast_latency.py [--model sine] [--horizon 48]

Times, on the same model (default ``sine@champion``, trained by ``make train-defaults``):
  1. the seed's loop: ``model.predict(window)`` once per step;
  2. the service's in-process forecast (``Forecaster.forecast``: one compiled call for the horizon);
  3. HTTP on loopback against ``seqcast serve`` (started here): sequential (httpx, concurrency 1) and
     concurrency 16 with ``wrk`` (a C load generator; install with ``apt-get install -y wrk``);
  4. 1000 series in one batch call vs 1000 single calls, in process and over HTTP.
Prints the table and the ratios against the targets. Not part of the test run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import httpx
import numpy as np

from pipelines import tracking
from pipelines.forecasting.data import load_series
from pipelines.forecasting.forecaster import load_forecaster
from pipelines.tracking.registry import CHAMPION, model_uri, version_by_alias

ROOT = Path(__file__).resolve().parents[1]


def percentiles(samples: list[float]) -> tuple[float, float]:
    ms = np.asarray(samples) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def seed_loop(model, window: np.ndarray, horizon: int) -> np.ndarray:
    """The seed's extrapolation: one Keras ``predict`` per step, each prediction appended to the window."""
    window = window.astype(np.float32).copy()
    out = []
    for _ in range(horizon):
        y = float(model.predict(window[None, :, None], verbose=0)[0, 0])
        out.append(y)
        window = np.append(window[1:], y)
    return np.array(out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(name: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "SEQCAST_PRELOAD_MODELS": name}
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("seqcast")), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit("seqcast serve exited before it was ready")
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit("seqcast serve did not become ready in 120 s")


def run_wrk(url: str, body: dict, connections: int, seconds: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = [[{json.dumps(body)}]]\n"
            "done = function(summary, latency, requests)\n"
            '  io.write(string.format("P50 %d\\nP99 %d\\n", latency:percentile(50), latency:percentile(99)))\n'
            "end\n"
        )
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script.name, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(script.name)
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": int(re.search(r"P50 (\d+)", out).group(1)) / 1e3,
        "p99": int(re.search(r"P99 (\d+)", out).group(1)) / 1e3,
        "errors": errors + (int(non2xx.group(1)) if non2xx else 0),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sine")
    parser.add_argument("--horizon", type=int, default=48)
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration")
    parser.add_argument("--seed-steps-repeat", type=int, default=3, help="seed-loop repetitions (each is slow)")
    args = parser.parse_args()
    horizon = args.horizon

    client = tracking.configure()
    champion = version_by_alias(client, args.model, CHAMPION)
    if champion is None:
        raise SystemExit(f"no {args.model}@{CHAMPION}; run `make train-defaults` first")
    forecaster = load_forecaster(model_uri(args.model, version=champion.version))
    series = load_series("sine_noise").values
    history = series[-max(forecaster.min_history, 48) :].round(6).tolist()
    model = forecaster.model
    layers = ", ".join(f"{type(layer).__name__}({getattr(layer, 'units', '')})" for layer in model.layers[1:])
    print(
        f"model: {args.model} version {champion.version}: {layers}, lookback {forecaster.lookback}; "
        f"horizon {horizon}; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}"
    )

    rows = []
    # 1. the seed's loop (same model, scaled window, same horizon)
    window = forecaster.scaler.transform(np.asarray(history[-forecaster.lookback :]))
    seed_loop(model, window, 2)
    seed = timed(lambda: seed_loop(model, window, horizon), args.seed_steps_repeat)
    rows.append(("seed loop: predict per step", *percentiles(seed), 1 / np.median(seed)))
    # 2. in process
    forecaster.forecast(history, horizon)
    single = timed(lambda: forecaster.forecast(history, horizon), 2000)
    rows.append(("in-process forecast", *percentiles(single), 1 / np.median(single)))
    # 4a. batch of 1000 vs 1000 single calls, in process
    span = len(series) - len(history)
    histories = [series[i % span : i % span + len(history)].round(6).tolist() for i in range(1000)]
    forecaster.forecast_batch(histories, horizon)
    batch = timed(lambda: forecaster.forecast_batch(histories, horizon), 5)
    singles_1000 = timed(lambda: [forecaster.forecast(h, horizon) for h in histories], 2)
    rows.append(("in-process batch of 1000 (one call)", *percentiles(batch), 1000 / np.median(batch)))
    rows.append(("in-process 1000 single calls", *percentiles(singles_1000), 1000 / np.median(singles_1000)))

    # 3. HTTP
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    body = {"model": args.model, "history": history, "horizon": horizon}
    server = start_server(args.model, port)
    wrk = None
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            for _ in range(50):
                assert http.post("/v1/forecast", json=body).status_code == 200
            seq = timed(lambda: http.post("/v1/forecast", json=body).raise_for_status(), 1000)
            rows.append(("HTTP sequential (httpx, c=1)", *percentiles(seq), 1 / np.median(seq)))
            batch_body = {"requests": [{"model": args.model, "history": h, "horizon": horizon} for h in histories]}
            http.post("/v1/forecast/batch", json=batch_body).raise_for_status()
            http_batch = timed(lambda: http.post("/v1/forecast/batch", json=batch_body).raise_for_status(), 3)
            http_singles = timed(
                lambda: [http.post("/v1/forecast", json={**body, "history": h}).raise_for_status() for h in histories],
                1,
            )
            rows.append(("HTTP batch of 1000 (one request)", *percentiles(http_batch), 1000 / np.median(http_batch)))
            rows.append(("HTTP 1000 single requests (c=1)", *percentiles(http_singles), 1000 / np.median(http_singles)))
        if shutil.which("wrk"):
            run_wrk(f"{url}/v1/forecast", body, 16, 2)  # warm the connections
            wrk = run_wrk(f"{url}/v1/forecast", body, 16, args.seconds)
            rows.append(("HTTP c=16 (wrk, 2 threads)", wrk["p50"], wrk["p99"], wrk["rps"]))
        else:
            print("wrk is missing: install it with `apt-get update && apt-get install -y wrk` for the c=16 row")
    finally:
        server.terminate()
        server.wait(timeout=30)

    print()
    print(f"| {'path (' + str(horizon) + '-step forecast)':<40} | {'p50 ms':>10} | {'p99 ms':>10} | {'per s':>10} |")
    print(f"|{'-' * 42}|{'-' * 12}|{'-' * 12}|{'-' * 12}|")
    for name, p50, p99, rate in rows:
        print(f"| {name:<40} | {p50:>10.3f} | {p99:>10.3f} | {rate:>10.1f} |")
    print("(batch and 1000-call rows: one sample = the whole 1000; 'per s' = series per second)")

    in_p50 = percentiles(single)[0]
    speedup = np.median(seed) / np.median(single)
    batch_ratio = np.median(batch) / np.median(singles_1000)
    http_batch_ratio = np.median(http_batch) / np.median(http_singles)
    checks = [
        (f"in-process p50 {in_p50:.3f} ms <= 2 ms", in_p50 <= 2),
        (f"in-process {speedup:,.0f}x faster than the seed loop (>= 1000x)", speedup >= 1000),
        (f"HTTP sequential p50 {percentiles(seq)[0]:.3f} ms <= 10 ms", percentiles(seq)[0] <= 10),
    ]
    if wrk:
        checks.append(
            (
                f"HTTP c=16: {wrk['rps']:.0f} req/s >= 500 with {wrk['errors']} errors",
                wrk["rps"] >= 500 and not wrk["errors"],
            )
        )
    checks += [
        (f"in process: batch of 1000 = {batch_ratio:.3f} of 1000 single calls (<= 0.1)", batch_ratio <= 0.1),
        (
            f"over HTTP: batch of 1000 = {http_batch_ratio:.3f} of 1000 single requests (<= 0.1)",
            http_batch_ratio <= 0.1,
        ),
    ]
    print()
    for text, ok in checks:
        print(f"[{'met' if ok else 'MISSED'}] {text}")
    print(f"load average after: {os.getloadavg()[0]:.2f} (other work on these cores inflates every row)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
