"""MLflow set-up: an embedded SQLite store and artifact folder under the data dir unless MLFLOW_TRACKING_URI says otherwise."""

from __future__ import annotations

import logging

import mlflow
from mlflow.tracking import MlflowClient

from pipelines.settings import Settings, get_settings

for noisy in ("mlflow", "alembic"):
    logging.getLogger(noisy).setLevel(logging.WARNING)


def configure(settings: Settings | None = None) -> MlflowClient:
    settings = settings or get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    return MlflowClient(settings.tracking_uri, settings.tracking_uri)


def experiment_for(name: str, settings: Settings | None = None) -> str:
    """One experiment per model name, its artifacts under the data dir when the store is the embedded one."""
    settings = settings or get_settings()
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if settings.mlflow_tracking_uri is None:
        location = (settings.artifact_root / name).as_uri()
    return mlflow.create_experiment(name, artifact_location=location)


def open_experiment(name: str, settings: Settings | None = None) -> tuple[MlflowClient, str]:
    """The tracking client and NAME's experiment: what every training pipeline (forecast, classify) starts with."""
    settings = settings or get_settings()
    client = configure(settings)
    return client, experiment_for(name, settings)


def log_history(history: dict[str, list[float]]) -> None:
    """Keras' per-epoch curves (``loss``, ``val_loss``, ``accuracy``, ...) as MLflow metrics with step = epoch."""
    for epoch, values in enumerate(zip(*history.values(), strict=True)):  # one value per epoch in every curve
        mlflow.log_metrics(dict(zip(history.keys(), values, strict=True)), step=epoch)
