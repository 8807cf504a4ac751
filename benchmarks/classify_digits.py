"""Done-when figure of the image classifier: ``seqcast train-images --data digits --name digits``, end to end.

Runs the real command (a fresh process and a fresh embedded MLflow store per run, so the wall time includes
start-up, training, evaluation, the MLflow artifacts and registration) and prints its held-out test accuracy
(20% stratified split) and wall time. ``--split-seeds`` repeats it on other test splits. Not part of the tests:

    .venv/bin/python -m benchmarks.classify_digits [--split-seeds 0,1,2] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time


def run(split_seed: int, extra: list[str], threads: int | None) -> tuple[float, float, str]:
    with tempfile.TemporaryDirectory(prefix="seqcast-bench-") as tmp:
        env = {**os.environ, "SEQCAST_DATA_DIR": tmp}
        env.pop("MLFLOW_TRACKING_URI", None)
        command = [
            sys.executable,
            "-m",
            "seqcast",
            "train-images",
            "--data",
            "digits",
            "--name",
            "digits",
            "--quiet",
            "--split-seed",
            str(split_seed),
            *extra,
        ]
        if threads:  # pin to N cores, as on the 2-core CI machine
            command = ["taskset", "-c", ",".join(str(c) for c in range(threads)), *command]
        started = time.perf_counter()
        out = subprocess.run(command, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if out.returncode != 0:
            raise SystemExit(f"train-images failed ({out.returncode}):\n{out.stderr[-3000:]}")
        accuracy = float(re.search(r"^test_accuracy: ([0-9.]+)$", out.stdout, re.M).group(1))
        return accuracy, seconds, out.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split-seeds", default="0", help="comma-separated test-split seeds (default 0, the CLI's)")
    parser.add_argument("--threads", type=int, default=2, help="cores to pin to with taskset (0: no pinning)")
    parser.add_argument("extra", nargs="*", help="more train-images options after --")
    args = parser.parse_args()
    print(f"{'split seed':>10}  {'test accuracy':>13}  {'wall s':>7}")
    rows = []
    for seed in (int(s) for s in args.split_seeds.split(",")):
        accuracy, seconds, _ = run(seed, args.extra, args.threads or None)
        rows.append((accuracy, seconds))
        print(f"{seed:>10}  {accuracy:>13.4f}  {seconds:>7.1f}", flush=True)
    if len(rows) > 1:
        accs, secs = zip(*rows, strict=True)
        print(f"{'mean':>10}  {sum(accs) / len(accs):>13.4f}  {sum(secs) / len(secs):>7.1f}")
        print(f"{'min':>10}  {min(accs):>13.4f}  {max(secs):>7.1f} (max)")


if __name__ == "__main__":
    main()
