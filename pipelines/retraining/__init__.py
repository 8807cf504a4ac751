"""Retraining: a pass challenges each series' champion (``passes.py``), one series at a time in a worker
(``challenge.py``), fanned out over a process pool or Ray (``fanout.py``), on a schedule (``scheduler.py``).

May import ``pipelines.forecasting``, ``pipelines.store`` and ``pipelines.tracking``; nothing imports it but the CLI
and the tests.
"""

from pipelines.retraining.challenge import SeriesResult
from pipelines.retraining.passes import PassSummary, run_pass
from pipelines.retraining.scheduler import run_scheduler
from pipelines.store.lease import LeaseHeld

__all__ = ["LeaseHeld", "PassSummary", "SeriesResult", "run_pass", "run_scheduler"]
