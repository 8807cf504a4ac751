"""Keeping MLflow pointed where it was: ``mlflow.set_tracking_uri`` and ``set_registry_uri`` (every
``tracking.configure``) write ``os.environ``, which ``Settings`` and every process a later test starts read. After
a test or a module's fixture on a store of its own, later tests (in whatever order and file they run) would use
that store."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import mlflow

NAMES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@contextlib.contextmanager
def mlflow_uris_kept() -> Iterator[None]:
    environ = {name: os.environ.get(name) for name in NAMES}
    uris = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    try:
        yield
    finally:
        mlflow.set_tracking_uri(uris[0])
        mlflow.set_registry_uri(uris[1])
        for name, value in environ.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
