"""A retraining pass: every named series (or every forecasting model with a champion) challenged once, fanned
out, under one lease in the store's database (never two passes at once, across processes and hosts), tracked as
one parent MLflow run with a child run per series. ``seqcast retrain`` and ``seqcast scheduler`` both run it."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from pipelines import tracking
from pipelines.process import engine_name
from pipelines.retraining.challenge import PASS_EXPERIMENT, SeriesResult, record, retrain_series
from pipelines.retraining.fanout import fan_out
from pipelines.settings import Settings
from pipelines.store import SeriesStore
from pipelines.store.lease import Lease
from pipelines.tracking.registry import CHAMPION, version_by_alias
from pipelines.tracking.tags import FORECASTER, PANEL_FORECASTER, model_kind

log = logging.getLogger(__name__)

LEASE = "retraining"
STATUSES = ("promoted", "kept", "skipped", "failed")


@dataclass
class PassSummary:
    run_id: str
    engine: str
    workers: int
    results: list[SeriesResult] = field(default_factory=list)
    seconds: float = 0.0
    stopped: bool = False  # a stop request (SIGTERM) ended it before every series ran

    @property
    def counts(self) -> dict[str, int]:
        counted = Counter(r.status for r in self.results)
        return {status: counted.get(status, 0) for status in STATUSES}

    @property
    def failed(self) -> list[str]:
        return [r.name for r in self.results if r.status == "failed"]


def forecasting_models(client: MlflowClient) -> list[str]:
    """Every registered forecasting model with a ``@champion`` (what ``--all`` retrains), by name: one series'
    forecasters and panel models (:func:`pipelines.tracking.tags.model_kind`), each one unit."""
    names = []
    for model in client.search_registered_models(max_results=1000):
        champion = version_by_alias(client, model.name, CHAMPION)
        if champion is not None and model_kind(champion.tags) in (FORECASTER, PANEL_FORECASTER):
            names.append(model.name)
    return sorted(names)


def run_pass(
    names: list[str] | None,
    *,
    settings: Settings,
    workers: int | None = None,
    min_new_points: int | None = None,
    stop: threading.Event | None = None,
    tick: float | None = None,
    progress: Callable[[SeriesResult], None] | None = None,
) -> PassSummary:
    """Challenge each of ``names`` (None: :func:`forecasting_models`). Raises
    :class:`pipelines.store.lease.LeaseHeld` when another pass holds the lease (or ``tick`` already ran)."""
    start = time.monotonic()
    min_new_points = settings.retrain_min_new_points if min_new_points is None else min_new_points
    workers = settings.pass_workers(workers)
    store = SeriesStore(settings.series_store_url, max_points=settings.max_batch_points)  # migrated: leases exist
    try:
        lease = Lease(store, LEASE, seconds=settings.retrain_lease_seconds)
        with lease.held(tick):
            client = tracking.configure(settings)
            experiment_id = tracking.experiment_for(PASS_EXPERIMENT, settings)
            targets = sorted(set(names)) if names else forecasting_models(client)
            engine = engine_name(workers, settings.ray_address)
            run = client.create_run(
                experiment_id, run_name=time.strftime("pass %Y-%m-%d %H:%M:%S"), tags={"seqcast.holder": lease.token}
            )
            summary = PassSummary(run.info.run_id, engine, workers)
            client.log_batch(
                run.info.run_id,
                params=[
                    Param(k, str(v))
                    for k, v in {
                        "engine": engine,
                        "workers": workers,
                        "margin": settings.retrain_margin,
                        "min_new_points": min_new_points,
                        "variant": settings.retrain_variant or "champion's recipe",
                        "series": ",".join(targets)[:6000],
                        "tick": "none" if tick is None else f"{tick:.3f}",
                    }.items()
                ],
            )
            log.info("retraining pass %s: %d series on %s (%d workers)", run.info.run_id, len(targets), engine, workers)
            where = {"settings": settings, "pass_run_id": run.info.run_id, "pass_experiment_id": experiment_id}
            task = partial(retrain_series, **where, min_new_points=min_new_points, variant=settings.retrain_variant)

            def crashed(name: str, exc: BaseException) -> SeriesResult:
                result = SeriesResult(
                    name,
                    "failed",
                    f"failed: its worker stopped (killed, out of memory, or a worker beside it was): {exc}",
                )
                record(result, **where)
                return result

            for result in fan_out(
                task, targets, workers=workers, ray_address=settings.ray_address, stop=stop, on_crash=crashed
            ):
                summary.results.append(result)
                if progress is not None:
                    progress(result)
            summary.stopped = len(summary.results) < len(targets)
            summary.seconds = round(time.monotonic() - start, 3)
            now = int(time.time() * 1000)
            metrics = {"series": len(targets), **summary.counts, "seconds": summary.seconds}
            client.log_batch(run.info.run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])
            client.set_tag(run.info.run_id, "failed_series", ",".join(summary.failed)[:5000])
            # KILLED: stopped (SIGTERM) before every series ran; what did run is recorded, the next pass takes the rest
            status = "FAILED" if summary.failed else "KILLED" if summary.stopped else "FINISHED"
            client.set_terminated(run.info.run_id, status)
            return summary
    finally:
        store.close()
