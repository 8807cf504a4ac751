"""``seqcast scheduler``: a retraining pass at every tick of ``SEQCAST_RETRAIN_CRON``, until stopped.

Ticks come from croniter, measured from the clock after each pass: a pass that outlasts its interval makes
the ticks it spanned one (misfires coalesced), and this process never runs two passes at once. Across
processes and hosts the store's lease does the same, and claims each tick, so however many schedulers run
against one database, a tick gets one pass. A stop request (SIGTERM) lets the series in flight finish.
"""

from __future__ import annotations

import logging
import threading
import time

from croniter import croniter

from pipelines.retraining.passes import PassSummary, run_pass
from pipelines.settings import Settings
from pipelines.store.lease import LeaseHeld

log = logging.getLogger(__name__)


def next_tick(cron: str, after: float) -> float:
    return float(croniter(cron, after).get_next(float))


def check_cron(cron: str) -> str:
    if not croniter.is_valid(cron):
        raise ValueError(
            f"SEQCAST_RETRAIN_CRON is {cron!r}; expected a crontab line: minute hour day month weekday "
            "[second], e.g. '0 3 * * *' (03:00 every day) or '*/10 * * * *' (every 10 minutes)"
        )
    return cron


def run_scheduler(
    settings: Settings,
    stop: threading.Event,
    *,
    workers: int | None = None,
    min_new_points: int | None = None,
    on_pass=None,
) -> int:
    """Run passes on the schedule until ``stop`` is set; returns how many passes this process ran."""
    cron = check_cron(settings.retrain_cron)
    passes = 0
    tick = next_tick(cron, time.time())
    log.info(
        "scheduler: retraining on %r; next pass at %s", cron, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(tick))
    )
    while not stop.wait(max(0.0, tick - time.time())):
        summary: PassSummary | None = None
        try:
            summary = run_pass(
                None, settings=settings, workers=workers, min_new_points=min_new_points, stop=stop, tick=tick
            )
        except LeaseHeld as exc:
            log.info("scheduler: no pass for this tick: %s", exc)
        except Exception:
            log.exception("scheduler: the pass for this tick failed")
        if summary is not None:
            passes += 1
            log.info("scheduler: pass %s done in %.1f s: %s", summary.run_id, summary.seconds, summary.counts)
            if on_pass is not None:
                on_pass(summary)
        tick = next_tick(cron, max(time.time(), tick))
    return passes
