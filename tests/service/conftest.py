"""Real registered models (tiny LSTMs, 1 epoch; a small CNN on the digits) in the session's embedded MLflow store,
and the app."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pytest
from svc_helpers import DIGITS, HORIZON, LOOKBACK, MODEL, make_settings

from pipelines import tracking
from pipelines.forecasting.data import Series
from pipelines.forecasting.forecaster import load_forecaster
from pipelines.forecasting.pipeline import train_and_register
from pipelines.forecasting.training import TrainConfig
from pipelines.tracking.registry import CHAMPION, download, model_uri
from pipelines.vision.classifier import Classifier
from pipelines.vision.data import load_digits_set
from pipelines.vision.pipeline import ImageTrainConfig, train_images_and_register
from pipelines.vision.pyfunc import CLASSIFIER_ARTIFACT

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


def load_version(name: str, version: str) -> Classifier:
    return Classifier.load(download(model_uri(name, version=version)) / "artifacts" / CLASSIFIER_ARTIFACT)


@pytest.fixture(scope="session")
def digits(data_dir):
    """DIGITS version 1: 10 epochs on the digits' training split (the champion); version 2: 2 epochs, another seed."""
    data = load_digits_set()
    config = ImageTrainConfig(epochs=10, augment=0.0, dropout=0.0, learning_rate=3e-3)
    first = train_images_and_register(data, config, DIGITS)
    train_images_and_register(data, replace(config, epochs=2, seed=7), DIGITS)
    client = tracking.configure()
    client.set_registered_model_alias(DIGITS, CHAMPION, "1")
    _, test = data.split(config.test_fraction, config.split_seed)
    return {
        "data": data,
        "test": test,
        "accuracy": first.metrics["test_accuracy"],
        "client": client,
        "classifiers": {v: load_version(DIGITS, v) for v in ("1", "2")},
    }
