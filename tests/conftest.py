import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no download bars in the test output

import numpy as np
import pytest

from pipelines.settings import get_settings


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """One embedded MLflow store for the session; tests use distinct model names."""
    path = tmp_path_factory.mktemp("seqcast-data")
    mp = pytest.MonkeyPatch()
    mp.setenv("SEQCAST_DATA_DIR", str(path))
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    get_settings.cache_clear()
    yield path
    mp.undo()
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def mlflow_uris_put_back():
    """Every test leaves MLflow pointed where it found it. ``mlflow.set_tracking_uri`` and ``set_registry_uri``
    (every ``tracking.configure``) write ``os.environ``, which ``Settings`` and every process a later test starts
    read: after a test on a store of its own, later tests (in whatever order they run) would use that store."""
    import mlflow

    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    environ = {name: os.environ.get(name) for name in names}
    uris = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    yield
    mlflow.set_tracking_uri(uris[0])
    mlflow.set_registry_uri(uris[1])
    for name, value in environ.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def settings(data_dir):
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture(scope="session")
def tiny_series():
    """120 values of a noisy seasonal sine with a little trend (read only: shared by the session)."""
    from pipelines.forecasting.data import Series

    t = np.arange(120)
    values = 10 + np.sin(2 * np.pi * t / 12) + 0.01 * t + 0.1 * np.random.default_rng(0).normal(size=120)
    values.setflags(write=False)
    return Series("tiny", values, season=12, source="test: seasonal sine")


@pytest.fixture(scope="session")
def pg_available() -> str | None:
    """None when PostgreSQL answers (see pg_helpers.py), else why not: tests that need it skip with that reason."""
    from pg_helpers import unavailable

    return unavailable()
