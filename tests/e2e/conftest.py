"""One data dir and one set of `seqcast train` runs for every end-to-end test: the CLI tests check the runs,
the served tests serve what they registered (`seqcast train` runs once per path: promote, keep, skip)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from e2e_helpers import API_KEY, MODEL, clean_env, seqcast

LOOKBACK = 10


@pytest.fixture(scope="session")
def env(tmp_path_factory) -> dict:
    data_dir = tmp_path_factory.mktemp("e2e-data")
    return clean_env(SEQCAST_DATA_DIR=str(data_dir), TF_CPP_MIN_LOG_LEVEL="3", SEQCAST_API_KEY=API_KEY)


@dataclass
class Trained:
    first: subprocess.CompletedProcess  # promoted, with the per-epoch progress bar
    second: subprocess.CompletedProcess  # worse, --quiet: not promoted
    skipped: subprocess.CompletedProcess  # --if-missing with a champion in place


@pytest.fixture(scope="session")
def trained(env, tmp_path_factory) -> Trained:
    """MODEL trained twice from a CSV with named columns (promoted, then kept), then skipped by --if-missing."""
    t = np.arange(200)
    frame = pd.DataFrame({"day": pd.date_range("2024-01-01", periods=200, freq="D"), "sales": 5 + np.sin(t / 5)})
    csv = tmp_path_factory.mktemp("e2e-csv") / "sales.csv"
    frame.to_csv(csv, index=False)
    common = ["--data", str(csv), "--time-col", "day", "--value-col", "sales", "--name", MODEL,
              "--horizon", "7", "--lookback", str(LOOKBACK), "--variant", "lstm"]  # fmt: skip
    first = seqcast(env, "train", *common, "--epochs", "8", "--learning-rate", "0.01")
    assert first.returncode == 0, first.stderr[-3000:]
    # a deliberately worse setting: one unit, one epoch, a learning rate too small to move it
    second = seqcast(env, "train", *common, "--units", "1", "--epochs", "1", "--learning-rate", "0.00001", "--quiet")
    assert second.returncode == 0, second.stderr[-3000:]
    skipped = seqcast(env, "train", *common, "--if-missing")
    return Trained(first, second, skipped)
