"""Real registered models (tiny LSTMs, 1 epoch) in the session's embedded MLflow store, and the app."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from svc_helpers import HORIZON, LOOKBACK, MODEL, make_settings

from pipelines import tracking
from pipelines.forecasting.data import Series
from pipelines.forecasting.forecaster import load_forecaster
from pipelines.forecasting.pipeline import train_and_register
from pipelines.forecasting.training import TrainConfig
from pipelines.tracking.registry import CHAMPION, model_uri

for noisy in ("mlflow", "alembic", "service.cache"):
    logging.getLogger(noisy).setLevel(logging.ERROR)


def _series() -> Series:
    t = np.arange(96)
    values = 10 + np.sin(2 * np.pi * t / 12) + 0.1 * np.random.default_rng(0).normal(size=96)
    return Series("svc", values, season=12, source="test: seasonal sine")


@pytest.fixture(scope="session")
def registered(data_dir):
    """Two versions of MODEL (different seeds, so different forecasts), @champion on version 1."""
    series = _series()
    for seed in (1, 2):
        config = TrainConfig(variant="lstm", epochs=1, units=4, lookback=LOOKBACK, horizon=HORIZON, seed=seed)
        train_and_register(series, config, MODEL)
    client = tracking.configure()
    client.set_registered_model_alias(MODEL, CHAMPION, "1")
    forecasters = {v: load_forecaster(model_uri(MODEL, version=v)) for v in ("1", "2")}
    return {"name": MODEL, "client": client, "forecasters": forecasters, "series": series}


@pytest.fixture(scope="session")
def app(registered, data_dir):
    from service.app import create_app

    return create_app(make_settings(data_dir))
