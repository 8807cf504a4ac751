"""MLflow set-up: an embedded SQLite store and artifact folder under the data dir unless MLFLOW_TRACKING_URI says otherwise."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping

import mlflow
from mlflow.entities import Metric
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


def log_steps(curves: Mapping[str, Iterable[float]], first_step: int = 0) -> None:
    """Curves as metrics of the active run, step = position + ``first_step``, in as few calls as MLflow takes
    (one per 1000 values): a call per value costs a transaction each, which concurrent retraining workers on
    one SQLite store queue for, and a round trip each to a tracking server."""
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("no active MLflow run to log to")
    now = int(time.time() * 1000)
    metrics = [
        Metric(key, float(v), now, first_step + i) for key, values in curves.items() for i, v in enumerate(values)
    ]
    client = MlflowClient()
    for start in range(0, len(metrics), 1000):
        client.log_batch(run.info.run_id, metrics=metrics[start : start + 1000])


def log_history(history: dict[str, list[float]]) -> None:
    """Keras' per-epoch curves (``loss``, ``val_loss``, ``accuracy``, ...) as MLflow metrics with step = epoch."""
    log_steps(history)


def log_dataset(name: str, digest: str, source: str) -> None:
    """The run's training data as an MLflow dataset input (the UI's Datasets column): name, digest, source."""
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.meta_dataset import MetaDataset

    dataset = MetaDataset(CodeDatasetSource({"source": source}), name=name, digest=digest)  # type: ignore[abstract]
    mlflow.log_input(dataset, context="training")
