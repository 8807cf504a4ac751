"""Memory and compile time of the recursive forecaster's compiled programs, batch size by batch size.

    .venv/bin/python benchmarks/compiled_memory.py                  # the working tree's models/recursive.py
    .venv/bin/python benchmarks/compiled_memory.py --rev 18aa627    # models/recursive.py at a git revision

Builds an untrained LSTM(8) forecasting model (lookback 12, as ``make train-defaults`` trains ``sine``) and
forecasts batches of many sizes (1 to 10000: 22 distinct batch buckets before the bound), twice over, then a
few horizons. After each call it prints the call's time, the programs compiled so far and the process's RSS
(after ``gc.collect`` and glibc's ``malloc_trim``, so freed memory shows as freed). The second pass asks the
same sizes again: nothing new should compile and RSS should stay flat. Last, ``compile`` (where the module
has it) is timed against the forecast that follows it. Not part of the test run; one implementation per
process, so the numbers do not mix.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import importlib.util
import inspect
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# after the two lines above: TensorFlow reads the log level when it loads, and this tree's models/ must win
from models import builders  # noqa: E402
from models.preprocessing import build_forecast_model  # noqa: E402

SIZES = [1, 2, 3, 5, 9, 17, 33, 65, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 10000]
HORIZONS = [1, 12, 20, 48, 100, 500, 1000]

try:
    _libc = ctypes.CDLL("libc.so.6")
except OSError:  # not glibc: RSS as it is
    _libc = None


def rss_mb() -> float:
    gc.collect()
    if _libc is not None:
        _libc.malloc_trim(0)
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def load_recursive(rev: str | None):
    """``models.recursive`` from the working tree, or the file as it was at git revision ``rev``."""
    if rev is None:
        from models import recursive

        return recursive
    source = subprocess.run(
        ["git", "show", f"{rev}:models/recursive.py"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "recursive_at_rev.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("recursive_at_rev", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def programs(forecaster) -> int:
    return len(forecaster._programs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", help="git revision whose models/recursive.py to measure (default: working tree)")
    parser.add_argument("--max-programs", type=int, help="the bound, where the module takes one (default: its own)")
    parser.add_argument("--horizon", type=int, default=12, help="horizon of the batch-size passes (default 12)")
    args = parser.parse_args()

    recursive = load_recursive(args.rev)
    _, model = build_forecast_model(lambda length: builders.build("lstm", lookback=length, units=8), 12)
    kwargs = {}
    if args.max_programs is not None:
        if "max_programs" not in inspect.signature(recursive.RecursiveForecaster).parameters:
            parser.error("this revision's RecursiveForecaster takes no max_programs")
        kwargs["max_programs"] = args.max_programs
    forecaster = recursive.RecursiveForecaster(model, **kwargs)
    rng = np.random.default_rng(0)
    print(f"models/recursive.py at {args.rev or 'the working tree'}; {kwargs or 'default bound'}")
    start = rss_mb()
    print(f"RSS with the model built, nothing compiled: {start:.1f} MB\n")
    print(f"{'pass':>4} {'batch':>6} {'horizon':>7} {'call ms':>9} {'programs':>8} {'RSS MB':>8} {'growth':>7}")

    def forecast(label: str, batch: int, horizon: int) -> float:
        windows = rng.normal(size=(batch, 12)).astype(np.float32)
        t0 = time.perf_counter()
        forecaster(windows, horizon)
        ms = (time.perf_counter() - t0) * 1e3
        rss = rss_mb()
        print(
            f"{label:>4} {batch:6d} {horizon:7d} {ms:9.1f} {programs(forecaster):8d} {rss:8.1f} {rss - start:+7.1f}",
            flush=True,
        )
        return rss

    after = {}
    for label in ("1", "2"):
        for batch in SIZES:
            after[label] = forecast(label, batch, args.horizon)
    for horizon in HORIZONS:
        after["h"] = forecast("h", 1, horizon)
        after["h"] = forecast("h", 1000, horizon)

    print(
        f"\nRSS growth: {after['1'] - start:+.1f} MB after pass 1 ({len(SIZES)} batch sizes), "
        f"{after['2'] - after['1']:+.1f} MB more in pass 2 (the same sizes again), "
        f"{after['h'] - after['2']:+.1f} MB more for horizons {HORIZONS[0]}..{HORIZONS[-1]}; "
        f"{programs(forecaster)} programs"
    )

    if hasattr(forecaster, "compile"):
        batch, horizon = 3, 3000  # a horizon bucket nothing above asked for
        t0 = time.perf_counter()
        was = forecaster.is_compiled(batch, horizon)
        checked = (time.perf_counter() - t0) * 1e6
        t0 = time.perf_counter()
        forecaster.compile(batch, horizon)
        compiled = (time.perf_counter() - t0) * 1e3
        t0 = time.perf_counter()
        forecaster(rng.normal(size=(batch, 12)), horizon)
        called = (time.perf_counter() - t0) * 1e3
        print(
            f"is_compiled({batch}, {horizon}): {was} ({checked:.0f} us); compile: {compiled:.0f} ms; "
            f"is_compiled now: {forecaster.is_compiled(batch, horizon)}; the forecast after it: {called:.1f} ms"
        )
        t0 = time.perf_counter()
        for _ in range(10_000):
            forecaster.is_compiled(1, 12)
        print(f"is_compiled(1, 12) of a compiled shape: {(time.perf_counter() - t0) * 1e2:.2f} us a call")


if __name__ == "__main__":
    main()
