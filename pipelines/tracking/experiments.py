"""MLflow set-up: an embedded SQLite store and artifact folder under the data dir unless MLFLOW_TRACKING_URI says otherwise.

MLflow creates and migrates a SQLite store's schema the first time a process opens it, with no lock of its own: two
processes starting on an empty data dir raced there (``duplicate column name: step``). Each process opens a SQLite
store once under a file lock beside the database (``mlflow.db.lock``), so the first sets the schema up and the
rest find it done."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import mlflow
from filelock import FileLock
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipelines.settings import Settings, get_settings

for noisy in ("mlflow", "alembic"):
    logging.getLogger(noisy).setLevel(logging.WARNING)


_opened: set[str] = set()  # the SQLite stores this process has opened (their schema is set up)
_opening = threading.Lock()


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def _client(uri: str) -> MlflowClient:
    """A client of ``uri``; a SQLite store's first in this process is opened under the file lock (MLflow sets the
    schema up as the client opens its tracking side and as the registry side is first used; both stay open for the
    process). Other stores set their schema up themselves (a tracking server, PostgreSQL by ``mlflow db upgrade``)."""
    path = _sqlite_path(uri)
    if path is None or uri in _opened:
        return MlflowClient(uri, uri)
    with _opening:
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{path}.lock"):
            client = MlflowClient(uri, uri)
            client.search_registered_models(max_results=1)
        _opened.add(uri)
    return client


def configure(settings: Settings | None = None) -> MlflowClient:
    settings = settings or get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    return _client(settings.tracking_uri)


def experiment_for(name: str, settings: Settings | None = None) -> str:
    """One experiment per model name, its artifacts under the data dir when the store is the embedded one."""
    settings = settings or get_settings()
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if settings.mlflow_tracking_uri is None:
        location = (settings.artifact_root / name).as_uri()
    try:
        return mlflow.create_experiment(name, artifact_location=location)
    except MlflowException:
        experiment = mlflow.get_experiment_by_name(name)  # another process created it in the meantime
        if experiment is None:
            raise
        return experiment.experiment_id


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
