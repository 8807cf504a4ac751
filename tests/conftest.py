import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no download bars in the test output

import numpy as np
import pytest
from mlflow_uris import mlflow_uris_kept

from pipelines.settings import get_settings

# Files that share a costly session fixture (session scope is per xdist worker) run on one worker under `make
# test`'s `--dist loadfile`, so that it is built once: e2e's `trained` (three `seqcast train` processes) and the
# service tests' `digits` (two CNN fits). (xdist's own `xdist_group` marks do not reach its scheduler with this
# pytest: it renames nodes through an attribute pytest 9 no longer reads.)
SAME_WORKER = {
    "tests/e2e/test_console_script.py": "e2e trained",
    "tests/e2e/test_service.py": "e2e trained",
    "tests/service/test_classify.py": "service digits",
    "tests/service/test_page.py": "service digits",
    "tests/service/test_page_browser.py": "service digits",
}


@pytest.hookimpl(optionalhook=True)  # an xdist hook: pytest without xdist never calls it
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadfile``, with the files of one ``SAME_WORKER`` group as one unit of work."""
    if config.getvalue("dist") != "loadfile":
        return None
    missing = [file for file in SAME_WORKER if not (config.rootpath / file).exists()]
    if missing:  # a renamed file would quietly build its group's fixture twice again
        raise pytest.UsageError(f"tests/conftest.py SAME_WORKER names files that do not exist: {missing}")
    from xdist.scheduler import LoadFileScheduling

    class SharedFixtureFileScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = super()._split_scope(nodeid)
            return SAME_WORKER.get(file, file)

    return SharedFixtureFileScheduling(config, log)


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
    """Every test leaves MLflow pointed where it found it (a module fixture on a store of its own: the same,
    with :func:`mlflow_uris.mlflow_uris_kept`)."""
    with mlflow_uris_kept():
        yield


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
