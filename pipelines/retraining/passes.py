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

from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipelines import tracking
from pipelines.retraining.challenge import Challenger, SeriesResult
from pipelines.retraining.facts import FAILURE_TAG, HOLDER_TAG, PASS_EXPERIMENT, SERIES_STATUSES, totals_so_far
from pipelines.retraining.fanout import engine_name, fan_out
from pipelines.retraining.leftovers import close_dead_passes
from pipelines.settings import Settings
from pipelines.store import SeriesStore
from pipelines.store.lease import Lease
from pipelines.tracking.registry import CHAMPION, all_pages, version_by_alias
from pipelines.tracking.tags import FORECASTER, PANEL_FORECASTER, model_kind

log = logging.getLogger(__name__)

LEASE = "retraining"


@dataclass
class PassSummary:
    run_id: str
    engine: str
    workers: int
    results: list[SeriesResult] = field(default_factory=list)
    seconds: float = 0.0
    stopped: bool = False  # a stop request (SIGTERM) ended it before every series ran
    closed: list[str] = field(default_factory=list)  # the dead passes' runs it closed (leftovers.py)

    @property
    def counts(self) -> dict[str, int]:
        counted = Counter(r.status for r in self.results)
        return {status: counted.get(status, 0) for status in SERIES_STATUSES}

    @property
    def failed(self) -> list[str]:
        return [r.name for r in self.results if r.status == "failed"]


def forecasting_models(client: MlflowClient) -> list[str]:
    """Every registered forecasting model with a ``@champion`` (what ``--all`` retrains), by name: one series'
    forecasters and panel models (:func:`pipelines.tracking.tags.model_kind`), each one unit."""
    names = []
    for model in all_pages(client.search_registered_models):
        champion = version_by_alias(client, model.name, CHAMPION)
        if champion is not None and model_kind(champion.tags) in (FORECASTER, PANEL_FORECASTER):
            names.append(model.name)
    return sorted(names)


class UnknownModels(LookupError):
    """``retrain --name`` named a model the registry does not hold; nothing ran, nothing was written."""


class PassFailed(RuntimeError):
    """The pass itself failed (its engine, the tracking store, ...), not one of its series: its run ended FAILED
    with the reason; the message is one line."""


def one_line(exc: BaseException) -> str:
    """An exception as one line: its type and its message's first line (Ray's and gRPC's run on for pages)."""
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return f"{type(exc).__name__}: {text}"[:500] if text else type(exc).__name__


def _registered(client: MlflowClient, name: str) -> bool:
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise
    return True


def _check_names(client: MlflowClient, names: list[str]) -> None:
    unknown = [name for name in names if not _registered(client, name)]
    if unknown:
        known = forecasting_models(client)
        raise UnknownModels(
            f"no registered model named {', '.join(map(repr, unknown))}; the models a pass can retrain: "
            f"{', '.join(known) if known else 'none yet (seqcast train registers one)'} (--all takes every one)"
        )


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
    """Challenge each of ``names`` (None: :func:`forecasting_models`). First closes what a dead pass left half-done
    (:func:`close_dead_passes`). Raises :class:`UnknownModels` for a name the registry does not hold (before
    anything is written), :class:`pipelines.store.lease.LeaseHeld` when another pass holds the lease (or ``tick``
    already ran), and :class:`PassFailed` when the pass itself fails (its run then ends FAILED with the reason)."""
    start = time.monotonic()
    min_new_points = settings.retrain_min_new_points if min_new_points is None else min_new_points
    workers = settings.pass_workers(workers)
    if names:
        _check_names(tracking.configure(settings), names)
    store = SeriesStore.from_settings(settings)  # migrated: leases exist
    try:
        lease = Lease(store, LEASE, seconds=settings.retrain_lease_seconds)
        with lease.held(tick):
            client = tracking.configure(settings)
            experiment_id = tracking.experiment_for(PASS_EXPERIMENT, settings)
            engine = engine_name(workers, settings.ray_address)
            run = client.create_run(
                experiment_id, run_name=time.strftime("pass %Y-%m-%d %H:%M:%S"), tags={HOLDER_TAG: lease.token}
            )
            summary = PassSummary(run.info.run_id, engine, workers)
            try:
                _run(client, experiment_id, summary, names, settings, min_new_points, stop, tick, progress, start)
            except BaseException as exc:
                # whatever stopped the pass ends its run with the reason; a second Ctrl-C is KILLED, the rest FAILED
                ended = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
                reason = one_line(exc)
                log.info("retraining pass %s %s: %s", summary.run_id, ended.lower(), reason)  # the caller says it
                try:
                    client.set_tag(summary.run_id, FAILURE_TAG, reason)
                    _end(client, experiment_id, summary, ended, start)
                except Exception as also:  # noqa: BLE001 - the tracking store itself is what failed; the pass's error is raised
                    log.error("could not end the pass's run %s: %s", summary.run_id, one_line(also))
                if isinstance(exc, Exception):
                    raise PassFailed(f"the pass {summary.run_id} failed: {reason}") from exc
                raise
            return summary
    finally:
        store.close()


def _run(
    client: MlflowClient,
    experiment_id: str,
    summary: PassSummary,
    names: list[str] | None,
    settings: Settings,
    min_new_points: int,
    stop: threading.Event | None,
    tick: float | None,
    progress: Callable[[SeriesResult], None] | None,
    start: float,
) -> None:
    run_id = summary.run_id
    summary.closed = close_dead_passes(client, experiment_id, run_id)
    targets = sorted(set(names)) if names else forecasting_models(client)
    client.log_batch(
        run_id,
        params=[
            Param(k, str(v))
            for k, v in {
                "engine": summary.engine,
                "workers": summary.workers,
                "margin": settings.retrain_margin,
                "min_new_points": min_new_points,
                "variant": settings.retrain_variant or "champion's recipe",
                "series": ",".join(targets)[:6000],
                "tick": "none" if tick is None else f"{tick:.3f}",
            }.items()
        ],
    )
    log.info("retraining pass %s: %d series on %s (%d workers)", run_id, len(targets), summary.engine, summary.workers)
    challenger = Challenger(settings, run_id, experiment_id, min_new_points, settings.retrain_variant)
    for result in fan_out(
        challenger.challenge,
        targets,
        workers=summary.workers,
        ray_address=settings.ray_address,
        stop=stop,
        on_crash=challenger.crashed,
    ):
        summary.results.append(result)
        if progress is not None:
            progress(result)
    summary.stopped = len(summary.results) < len(targets)
    client.set_tag(run_id, "failed_series", ",".join(summary.failed)[:5000])
    # KILLED: stopped (SIGTERM) before every series ran; what did run is recorded, the next pass takes the rest
    ended = "FAILED" if summary.failed else "KILLED" if summary.stopped else "FINISHED"
    _end(client, experiment_id, summary, ended, start, series=len(targets))


def _end(
    client: MlflowClient, experiment_id: str, summary: PassSummary, ended: str, start: float, **more: float
) -> None:
    """The pass's counts, seconds and running totals (:mod:`pipelines.retraining.facts`: what ``/metrics`` reads;
    the dead passes it closed count as killed), then its run's end."""
    summary.seconds = round(time.monotonic() - start, 3)
    totals = totals_so_far(client, experiment_id)
    for _ in summary.closed:
        totals = totals.add({}, "KILLED", 0.0)
    totals = totals.add(summary.counts, ended, summary.seconds)
    now = int(time.time() * 1000)
    metrics = {**more, **summary.counts, "seconds": summary.seconds, **totals.metrics()}
    client.log_batch(summary.run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])
    client.set_terminated(summary.run_id, ended)
