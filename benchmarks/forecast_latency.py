"""Forecast latency: the service against its floor (a parse-only FastAPI endpoint) and the plain predict-per-step loop, in one run.

    .venv/bin/python benchmarks/forecast_latency.py [--model sine] [--auto-model sine_auto]
        [--lstm-model sine_lstm64] [--horizon 48] [--seconds 10] [--workers 2] [--repeat 1000] [--no-mlflow-serve]

Needs ``sine@champion`` (``make train-defaults``) and, for the auto-vs-LSTM(64) rows, two models on the same
lookback (left out when missing):

    .venv/bin/seqcast train --data sine_noise --name sine_lstm64 --variant lstm --units 64 --lookback 12 --epochs 5
    .venv/bin/seqcast train --data sine_noise --name sine_auto --variant auto --lookback 12 --trials 6

Times, in one run:
  1. in process: the plain loop (``model.predict`` once per step), ``Forecaster.forecast``, and 1000 series
     in one batch call against 1000 single calls; the auto model against the LSTM(64);
  2. HTTP on loopback, against ``seqcast serve`` and the parse-only endpoint (``benchmarks/parse_only.py``),
     both started here with the same request body: sequential p50 (httpx, concurrency 1) and throughput at
     concurrency 16 (``wrk -t2 -c16``; ``apt-get install -y wrk``), then the ratios; the auto model's and the
     LSTM(64)'s sequential p50; 1000 series in one batch request;
  3. ``seqcast serve --workers 2`` at concurrency 16 beside one worker;
  4. MLflow's scoring protocol: ``POST /invocations`` on ``seqcast serve`` (``dataframe_split``, same model and
     history) and ``mlflow models serve -m models:/MODEL@champion --env-manager local`` (MLflow's own server, a
     subprocess on a free port), sequential and at concurrency 16;
  5. the floor that includes the model: the parse-only endpoint's time per request plus the in-process batched
     cost per series (the 1000-series batch call / 1000), at concurrency 1 and 16.
Prints the table, the mean coalesced batch at concurrency 16 (``seqcast_forecast_batch_size``), and each
target as [met] or [MISSED] with the load average. Not part of the test run.
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


def plain_loop(model, window: np.ndarray, horizon: int) -> np.ndarray:
    """The plain extrapolation: one Keras ``predict`` per step, each prediction appended to the window."""
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


def wait_ready(proc: subprocess.Popen, port: int, what: str, path: str = "/ready") -> subprocess.Popen:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited before it was ready")
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit(f"{what} did not become ready in 180 s")


def start_server(names: list[str], port: int, workers: int = 1) -> subprocess.Popen:
    env = {**os.environ, "SEQCAST_PRELOAD_MODELS": ",".join(names)}
    command = [str(Path(sys.executable).with_name("seqcast")), "serve", "--port", str(port), "--workers", str(workers)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    if workers > 1:  # /ready from one worker says nothing of the other: wait for several in a row
        wait_ready(proc, port, "seqcast serve")
        for _ in range(10):
            wait_ready(proc, port, "seqcast serve")
        return proc
    return wait_ready(proc, port, "seqcast serve")


def start_parse_only(port: int) -> subprocess.Popen:
    """The parse-only endpoint under uvicorn with ``seqcast serve``'s settings; /ready is its 404 answer."""
    command = [sys.executable, "-m", "uvicorn", "benchmarks.parse_only:app", "--port", str(port), "--loop", "uvloop"]
    command += ["--http", "httptools", "--no-access-log", "--log-level", "warning"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("the parse-only endpoint did not start in 60 s")


def start_mlflow_serve(name: str, port: int) -> subprocess.Popen:
    """MLflow's own scoring server for ``name@champion`` in this environment (``--env-manager local``: the logged
    requirement ``seqcast`` is on no index), one worker; ready when ``/ping`` answers."""
    command = [str(Path(sys.executable).with_name("mlflow")), "models", "serve", "-m", f"models:/{name}@{CHAMPION}"]
    command += ["--env-manager", "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    tracking.configure()  # MLflow's URIs in os.environ, for the server to find the registry
    # it runs `uvicorn ...` through bash: this environment's bin first on PATH
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    return wait_ready(proc, port, "mlflow models serve", "/ping")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=60)


def sequential(url: str, body: dict, repeat: int = 1000, path: str = "/v1/forecast") -> list[float]:
    with httpx.Client(base_url=url, timeout=30) as http:
        for _ in range(min(50, repeat)):
            r = http.post(path, json=body)
            assert r.status_code == 200, r.text
        return timed(lambda: http.post(path, json=body).raise_for_status(), repeat)


def coalesced_batch(url: str) -> tuple[float, float]:
    """(calls, series) so far in seqcast_forecast_batch_size (the sums over workers)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    count = re.search(r"^seqcast_forecast_batch_size_count (\S+)$", text, re.M)
    total = re.search(r"^seqcast_forecast_batch_size_sum (\S+)$", text, re.M)
    return (float(count.group(1)), float(total.group(1))) if count and total else (0.0, 0.0)


def wrk_pair(
    url: str, body: dict, seconds: int, path: str = "/v1/forecast", metrics: bool = True
) -> tuple[dict, float]:
    """wrk at concurrency 16 (after 2 s of warm-up) and the mean series per compiled call meanwhile (``metrics``:
    a server with ``/metrics``)."""
    run_wrk(f"{url}{path}", body, 16, min(2, seconds))
    before = coalesced_batch(url) if metrics else (0.0, 0.0)
    result = run_wrk(f"{url}{path}", body, 16, seconds)
    after = coalesced_batch(url) if metrics else (0.0, 0.0)
    calls = after[0] - before[0]
    return result, (after[1] - before[1]) / calls if calls else float("nan")


def run_wrk(url: str, body: dict, connections: int, seconds: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = [==[{json.dumps(body)}]==]\n"  # level-2 brackets: a body may hold ]]
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


def load_pair(names: list[str]) -> dict:
    """name -> its champion's Forecaster, for those registered."""
    client = tracking.configure()
    out = {}
    for name in names:
        champion = version_by_alias(client, name, CHAMPION)
        if champion is not None:
            out[name] = load_forecaster(model_uri(name, version=champion.version))
    return out


def describe(forecaster) -> str:
    layers = [layer for layer in forecaster.model.layers[1:] if getattr(layer, "units", None)]
    kinds = ", ".join(f"{type(layer).__name__}({layer.units})" for layer in layers[:3]) or "a combination"
    return f"{kinds}, lookback {forecaster.lookback}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sine")
    parser.add_argument("--auto-model", default="sine_auto", help="a --variant auto model (same lookback)")
    parser.add_argument("--lstm-model", default="sine_lstm64", help="an LSTM(64) to compare it with")
    parser.add_argument("--horizon", type=int, default=48)
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration")
    parser.add_argument("--workers", type=int, default=2, help="the several-workers row (0: left out)")
    parser.add_argument("--plain-loop-repeat", type=int, default=3, help="plain-loop repetitions (each is slow)")
    parser.add_argument("--repeat", type=int, default=1000, help="sequential requests (and in-process calls) timed")
    parser.add_argument("--no-mlflow-serve", action="store_true", help="leave out the mlflow models serve row")
    args = parser.parse_args()
    horizon = args.horizon
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: `apt-get update && apt-get install -y wrk`")

    models = load_pair([args.model, args.auto_model, args.lstm_model])
    if args.model not in models:
        raise SystemExit(f"no {args.model}@{CHAMPION}; run `make train-defaults` first")
    forecaster = models[args.model]
    pair = [name for name in (args.auto_model, args.lstm_model) if name in models]
    if len(pair) < 2:
        print(f"auto vs LSTM(64) left out: train {args.auto_model} and {args.lstm_model} (see --help)")
        pair = []
    series = load_series("sine_noise").values
    history = series[-max(forecaster.min_history, 48) :].round(6).tolist()
    print(
        f"model: {args.model}: {describe(forecaster)}; horizon {horizon}; {os.cpu_count()} CPUs; "
        f"load average {os.getloadavg()[0]:.2f}; pytest processes: {count_pytest()}"
    )
    for name in pair:
        print(f"  {name}: {describe(models[name])}; {models[name].meta.get('chosen', '')}")

    rows = []
    # 1. in process
    window = forecaster.scaler.transform(np.asarray(history[-forecaster.lookback :]))
    plain_loop(forecaster.model, window, 2)
    plain = timed(lambda: plain_loop(forecaster.model, window, horizon), args.plain_loop_repeat)
    rows.append(("plain loop: predict per step", *percentiles(plain), 1 / np.median(plain)))
    forecaster.forecast(history, horizon)
    single = timed(lambda: forecaster.forecast(history, horizon), 2 * args.repeat)
    rows.append(("in-process forecast", *percentiles(single), 1 / np.median(single)))
    span = len(series) - len(history)
    histories = [series[i % span : i % span + len(history)].round(6).tolist() for i in range(1000)]
    forecaster.forecast_batch(histories, horizon)
    batch = timed(lambda: forecaster.forecast_batch(histories, horizon), 10)
    singles_1000 = timed(lambda: [forecaster.forecast(h, horizon) for h in histories], 2)
    rows.append(("in-process batch of 1000 (one call)", *percentiles(batch), 1000 / np.median(batch)))
    rows.append(("in-process 1000 single calls", *percentiles(singles_1000), 1000 / np.median(singles_1000)))
    in_pair = {}
    for name in pair:
        models[name].forecast(history, horizon)
        in_pair[name] = timed(lambda f=models[name]: f.forecast(history, horizon), args.repeat)
        rows.append((f"in-process forecast, {name}", *percentiles(in_pair[name]), 1 / np.median(in_pair[name])))

    # 2. HTTP: the parse-only floor, then the service, same body and settings
    body = {"model": args.model, "history": history, "horizon": horizon}
    # MLflow's scoring protocol, the same history as a one-column frame (what mlflow's own client helper writes)
    invocations_body = {
        "dataframe_split": {"columns": ["value"], "data": [[v] for v in history]},
        "params": {"model": args.model, "horizon": horizon},
    }
    mlflow_body = {"dataframe_split": invocations_body["dataframe_split"], "params": {"horizon": horizon}}
    port = free_port()
    floor_url = f"http://127.0.0.1:{port}"
    floor = start_parse_only(port)
    try:
        floor_seq = sequential(floor_url, body, args.repeat)
        floor_wrk, _ = wrk_pair(floor_url, body, args.seconds)
    finally:
        stop(floor)
    rows.append(("parse-only: HTTP sequential (httpx)", *percentiles(floor_seq), 1 / np.median(floor_seq)))
    rows.append(("parse-only: HTTP c=16 (wrk -t2)", floor_wrk["p50"], floor_wrk["p99"], floor_wrk["rps"]))

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server([args.model, *pair], port)
    http_pair = {}
    try:
        seq = sequential(url, body, args.repeat)
        rows.append(("seqcast: HTTP sequential (httpx)", *percentiles(seq), 1 / np.median(seq)))
        service_wrk, mean_batch = wrk_pair(url, body, args.seconds)
        rows.append(("seqcast: HTTP c=16 (wrk -t2)", service_wrk["p50"], service_wrk["p99"], service_wrk["rps"]))
        for name in pair:
            http_pair[name] = sequential(url, {**body, "model": name}, args.repeat)
            rows.append(
                (f"seqcast: HTTP sequential, {name}", *percentiles(http_pair[name]), 1 / np.median(http_pair[name]))
            )
        inv_seq = sequential(url, invocations_body, args.repeat, "/invocations")
        rows.append(("seqcast: /invocations sequential (httpx)", *percentiles(inv_seq), 1 / np.median(inv_seq)))
        inv_wrk, _ = wrk_pair(url, invocations_body, args.seconds, "/invocations")
        rows.append(("seqcast: /invocations c=16 (wrk -t2)", inv_wrk["p50"], inv_wrk["p99"], inv_wrk["rps"]))
        with httpx.Client(base_url=url, timeout=60) as http:
            batch_body = {"requests": [{"model": args.model, "history": h, "horizon": horizon} for h in histories]}
            http.post("/v1/forecast/batch", json=batch_body).raise_for_status()
            http_batch = timed(lambda: http.post("/v1/forecast/batch", json=batch_body).raise_for_status(), 3)
        rows.append(
            ("seqcast: HTTP batch of 1000 (one request)", *percentiles(http_batch), 1000 / np.median(http_batch))
        )
    finally:
        stop(server)

    # 3. several workers
    several = None
    if args.workers > 1:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = start_server([args.model], port, workers=args.workers)
        try:
            several, several_batch = wrk_pair(url, body, args.seconds)
        finally:
            stop(server)
        rows.append((f"seqcast --workers {args.workers}: HTTP c=16", several["p50"], several["p99"], several["rps"]))

    # 4. MLflow's own server of the same model
    mlflow_wrk = None
    if not args.no_mlflow_serve:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = start_mlflow_serve(args.model, port)
        try:
            ml_seq = sequential(url, mlflow_body, args.repeat, "/invocations")
            mlflow_wrk, _ = wrk_pair(url, mlflow_body, args.seconds, "/invocations", metrics=False)
        finally:
            stop(server)
        rows.append(("mlflow models serve: sequential (httpx)", *percentiles(ml_seq), 1 / np.median(ml_seq)))
        rows.append(("mlflow models serve: c=16 (wrk -t2)", mlflow_wrk["p50"], mlflow_wrk["p99"], mlflow_wrk["rps"]))

    # 5. the floor that includes the model: parse-only per request + in-process batched cost per series
    per_series = float(np.median(batch)) / 1000
    floor_model_seq = float(np.median(floor_seq)) + per_series
    floor_model_rps = 1 / (1 / floor_wrk["rps"] + per_series)
    rows.append(("floor incl. model: sequential", floor_model_seq * 1e3, float("nan"), 1 / floor_model_seq))
    rows.append(("floor incl. model: c=16", float("nan"), float("nan"), floor_model_rps))

    print()
    print(f"| {'path (' + str(horizon) + '-step forecast)':<44} | {'p50 ms':>9} | {'p99 ms':>9} | {'per s':>9} |")
    print(f"|{'-' * 46}|{'-' * 11}|{'-' * 11}|{'-' * 11}|")
    for name, p50, p99, rate in rows:
        print(f"| {name:<44} | {p50:>9.3f} | {p99:>9.3f} | {rate:>9.1f} |")
    print("(batch and 1000-call rows: one sample = the whole 1000; 'per s' = requests, or series for those rows)")
    print(
        f"(floor incl. model = parse-only per request + {per_series * 1e3:.4f} ms per series, the 1000-series batch "
        "call's share; at c=16: 1 / (1 / parse-only req/s + that); nan: not measured)"
    )
    print(f"mean series per compiled call at c=16: {mean_batch:.1f} (one worker)", end="")
    print(f", {several_batch:.1f} (--workers {args.workers})" if several else "")

    throughput = service_wrk["rps"] / floor_wrk["rps"]
    latency = np.median(seq) / np.median(floor_seq)
    batch_ms = np.median(batch) * 1e3
    checks = [
        (
            f"throughput at c=16: {service_wrk['rps']:.0f} req/s = {throughput:.2f}x the parse-only endpoint's "
            f"{floor_wrk['rps']:.0f} (>= 0.8x), {service_wrk['errors']} errors",
            throughput >= 0.8 and not service_wrk["errors"],
        ),
        (
            f"sequential p50: {np.median(seq) * 1e3:.3f} ms = {latency:.2f}x the parse-only endpoint's "
            f"{np.median(floor_seq) * 1e3:.3f} ms (<= 1.3x)",
            latency <= 1.3,
        ),
        (f"1000 series x {horizon} steps in one batch call, in process: {batch_ms:.1f} ms (<= 40 ms)", batch_ms <= 40),
        (
            f"throughput at c=16: {service_wrk['rps']:.0f} req/s = {service_wrk['rps'] / floor_model_rps:.2f}x the "
            f"floor that includes the model, {floor_model_rps:.0f} (>= 0.8x)",
            service_wrk["rps"] >= 0.8 * floor_model_rps,
        ),
        (
            f"/invocations at c=16: {inv_wrk['rps']:.0f} req/s = {inv_wrk['rps'] / service_wrk['rps']:.2f}x "
            f"/v1/forecast's (>= 0.9x), {inv_wrk['errors']} errors; sequential p50 {np.median(inv_seq) * 1e3:.3f} ms "
            f"= {np.median(inv_seq) / np.median(seq):.2f}x (<= 1.1x)",
            inv_wrk["rps"] >= 0.9 * service_wrk["rps"]
            and np.median(inv_seq) <= 1.1 * np.median(seq)
            and not inv_wrk["errors"],
        ),
    ]
    if mlflow_wrk is not None:
        checks.append(
            (
                f"throughput at c=16: {service_wrk['rps']:.0f} req/s = {service_wrk['rps'] / mlflow_wrk['rps']:.2f}x "
                f"mlflow models serve's {mlflow_wrk['rps']:.0f} (>= 4x; {mlflow_wrk['errors']} errors there)",
                service_wrk["rps"] >= 4 * mlflow_wrk["rps"],
            )
        )
    if pair:
        auto, lstm = pair
        for where, samples in (("in process", in_pair), ("HTTP", http_pair)):
            ratio = np.median(samples[auto]) / np.median(samples[lstm])
            checks.append(
                (
                    f"{auto} p50 {where}: {np.median(samples[auto]) * 1e3:.3f} ms = {ratio:.2f}x {lstm}'s "
                    f"{np.median(samples[lstm]) * 1e3:.3f} ms (<= 2x)",
                    ratio <= 2,
                )
            )
    print()
    for text, ok in checks:
        print(f"[{'met' if ok else 'MISSED'}] {text}")
    if several:
        print(
            f"[info] --workers {args.workers} at c=16: {several['rps']:.0f} req/s ({several['errors']} errors) beside "
            f"one worker's {service_wrk['rps']:.0f} (no target: the 2 cores are shared with wrk)"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}; pytest processes: {count_pytest()}")
    return 0


def count_pytest() -> int:
    """Other work on the machine (the other sessions' test runs) inflates every row: say how much there was."""
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return sum("pytest" in line for line in out.splitlines())


if __name__ == "__main__":
    sys.exit(main())
