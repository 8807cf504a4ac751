"""What retraining passes did, as an operator alerts on it, read from the passes' MLflow runs (the one record a
pass keeps): when the last pass started and ended, the last success, how long it took, and running totals.

Each pass run ends with the totals of every pass before it plus its own (``total_*`` metrics, carried forward
under the pass lease, so passes never race on them): a reader asks a few runs, never all of them. Light on
purpose (MLflow only): the service's ``/metrics`` reads it at scrape time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

PASS_EXPERIMENT = "retraining passes"  # has a space, so no model (whose experiment is its name) can take it
HOLDER_TAG = "seqcast.holder"  # on a pass's parent run only (its lease token): what tells it from its child runs
PASS_TAG = "seqcast.retrain_pass"  # on a challenger's training run: the pass that trained it
FAILURE_TAG = "seqcast.failure"  # on a pass run that did not finish: why, one line
SERIES_STATUSES = ("promoted", "kept", "skipped", "failed")  # a series' outcome in a pass
PASS_STATUSES = ("finished", "failed", "killed")  # how a pass ended (its run's status, lower case)
TOTAL = "total_"  # the prefix of a pass run's running totals

_PASSES = f"tags.`{HOLDER_TAG}` LIKE '%'"


@dataclass
class Totals:
    """Every counted pass so far: series outcomes by status, passes by how they ended, their summed seconds."""

    series: dict[str, float] = field(default_factory=lambda: dict.fromkeys(SERIES_STATUSES, 0.0))
    passes: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PASS_STATUSES, 0.0))
    seconds: float = 0.0

    @classmethod
    def of(cls, run: Run | None) -> Totals:
        """The totals a pass run logged (none logged: zeros)."""
        totals = cls()
        if run is None:
            return totals
        metrics = run.data.metrics
        for status in SERIES_STATUSES:
            totals.series[status] = metrics.get(f"{TOTAL}{status}", 0.0)
        for status in PASS_STATUSES:
            totals.passes[status] = metrics.get(f"{TOTAL}passes_{status}", 0.0)
        totals.seconds = metrics.get(f"{TOTAL}seconds", 0.0)
        return totals

    def add(self, counts: dict[str, int], ended: str, seconds: float) -> Totals:
        """These totals plus one pass: its series ``counts`` by status, how it ``ended``, its ``seconds``."""
        added = Totals(dict(self.series), dict(self.passes), self.seconds + seconds)
        for status, n in counts.items():
            added.series[status] = added.series.get(status, 0.0) + n
        added.passes[ended.lower()] = added.passes.get(ended.lower(), 0.0) + 1
        return added

    def metrics(self) -> dict[str, float]:
        return {
            **{f"{TOTAL}{s}": float(n) for s, n in self.series.items()},
            **{f"{TOTAL}passes_{s}": float(n) for s, n in self.passes.items()},
            f"{TOTAL}seconds": float(self.seconds),
        }


def _latest(client: MlflowClient, experiment_id: str, where: str, order: str) -> Run | None:
    runs = client.search_runs([experiment_id], f"{_PASSES} and {where}", order_by=[order], max_results=1)
    return runs[0] if runs else None


def totals_so_far(client: MlflowClient, experiment_id: str) -> Totals:
    """The totals the latest pass that logged them carried (the caller holds the pass lease)."""
    return Totals.of(_latest(client, experiment_id, f"metrics.{TOTAL}seconds >= 0", "attributes.end_time DESC"))


@dataclass
class PassFacts:
    """The passes as ``/metrics`` shows them (epoch seconds)."""

    last_start: float  # the latest pass's start (it may still run)
    running: bool  # whether that pass still runs
    last_end: float | None  # the latest ended pass's end ...
    last_status: str | None  # ... how it ended (finished | failed | killed) ...
    last_seconds: float | None  # ... and how long it ran
    last_success: float | None  # the latest pass that finished: its end
    totals: Totals


def pass_facts(client: MlflowClient) -> PassFacts | None:
    """The passes' facts from the tracking store; None before the first pass."""
    experiment = client.get_experiment_by_name(PASS_EXPERIMENT)
    if experiment is None:
        return None
    eid = experiment.experiment_id
    latest = _latest(client, eid, "attributes.start_time >= 0", "attributes.start_time DESC")
    if latest is None:
        return None
    ended = _latest(client, eid, "attributes.status != 'RUNNING'", "attributes.end_time DESC")
    # usually the latest ended pass finished and carries the totals: two queries a scrape, not four
    success = ended
    if ended is None or ended.info.status != "FINISHED":
        success = _latest(client, eid, "attributes.status = 'FINISHED'", "attributes.end_time DESC")
    totals = Totals.of(ended) if ended is not None and f"{TOTAL}seconds" in ended.data.metrics else None
    return PassFacts(
        last_start=latest.info.start_time / 1000,
        running=latest.info.status == "RUNNING",
        last_end=None if ended is None else ended.info.end_time / 1000,
        last_status=None if ended is None else ended.info.status.lower(),
        last_seconds=None if ended is None else (ended.info.end_time - ended.info.start_time) / 1000,
        last_success=None if success is None else success.info.end_time / 1000,
        totals=totals or totals_so_far(client, eid),
    )
