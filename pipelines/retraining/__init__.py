"""Retraining: a pass challenges each series' champion (``passes.py``), one series at a time in a worker
(``challenge.py``), fanned out over a process pool or Ray (``fanout.py``), on a schedule (``scheduler.py``); a dead
pass's leftovers are closed by the next (``leftovers.py``); what passes did, for Prometheus (``facts.py``).

May import ``pipelines.forecasting``, ``pipelines.store`` and ``pipelines.tracking``; nothing imports it but the CLI,
the service's metrics (``facts.py``) and the tests. It exports nothing: importing a module from here loads only that module, so that
the CLI can start a pool's fork server (``fanout.start_pool_server``) before MLflow and pandas load.
"""
