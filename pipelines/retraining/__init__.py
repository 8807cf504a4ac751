"""Retraining: a pass challenges each series' champion (``passes.py``), one series at a time in a worker
(``challenge.py``), fanned out over a process pool or Ray (``fanout.py``), on a schedule (``scheduler.py``); a dead
pass's leftovers are closed by the next (``leftovers.py``); what passes did, for Prometheus (``facts.py``).

May import ``pipelines.forecasting``, ``pipelines.store`` and ``pipelines.tracking``; nothing imports it but the CLI,
the service's metrics (``facts.py``) and the tests. Names here load on first use, so that the CLI can start a
pool's fork server (``fanout.start_pool_server``) before MLflow and pandas load.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipelines.retraining.challenge import SeriesResult
    from pipelines.retraining.passes import PassFailed, PassSummary, UnknownModels, run_pass
    from pipelines.retraining.scheduler import run_scheduler
    from pipelines.store.lease import LeaseHeld

_WHERE = {
    "SeriesResult": "pipelines.retraining.challenge",
    "PassFailed": "pipelines.retraining.passes",
    "PassSummary": "pipelines.retraining.passes",
    "UnknownModels": "pipelines.retraining.passes",
    "run_pass": "pipelines.retraining.passes",
    "run_scheduler": "pipelines.retraining.scheduler",
    "LeaseHeld": "pipelines.store.lease",
}
__all__ = ["LeaseHeld", "PassFailed", "PassSummary", "SeriesResult", "UnknownModels", "run_pass", "run_scheduler"]


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
