"""``seqcast scheduler``: a retraining pass at every tick of ``SEQCAST_RETRAIN_CRON``, until stopped.

Ticks come from croniter, read in ``SEQCAST_RETRAIN_TIMEZONE`` (default UTC; daylight-saving shifts as that zone
has them), measured from the clock after each pass: a pass that outlasts its interval makes
the ticks it spanned one (misfires coalesced), and this process never runs two passes at once. Across
processes and hosts the store's lease does the same, and claims each tick, so however many schedulers run
against one database, a tick gets one pass. A stop request (SIGTERM) lets the series in flight finish.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from pipelines.retraining.passes import PassFailed, PassSummary, run_pass
from pipelines.settings import Settings
from pipelines.store.lease import LeaseHeld

log = logging.getLogger(__name__)


CRON_HELP = (
    "expected a crontab line: minute hour day month weekday, e.g. '0 3 * * *' (03:00 every day) or '*/10 * * * *' "
    "(every 10 minutes); six fields put seconds first: second minute hour day month weekday, e.g. '*/20 * * * * *' "
    "(every 20 seconds)"
)


def check_cron(cron: str) -> str:
    """``cron`` if croniter reads it as documented (five fields, or six with seconds first); else ValueError."""
    fields = cron.split()
    if len(fields) not in (5, 6) or not croniter.is_valid(cron, second_at_beginning=True):
        raise ValueError(f"SEQCAST_RETRAIN_CRON is {cron!r}; {CRON_HELP}")
    return cron


def check_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"SEQCAST_RETRAIN_TIMEZONE is {name!r}; expected an IANA time zone name, e.g. UTC, Europe/Paris, "
            "America/New_York"
        ) from None


def next_tick(cron: str, after: float, zone: ZoneInfo) -> float:
    """The first tick of ``cron`` (read in ``zone``) after ``after`` (epoch seconds), in epoch seconds."""
    start = datetime.fromtimestamp(after, zone)
    return croniter(cron, start, second_at_beginning=True).get_next(datetime).timestamp()


def run_scheduler(
    settings: Settings,
    stop: threading.Event,
    *,
    workers: int | None = None,
    min_new_points: int | None = None,
    on_pass=None,
) -> int:
    """Run passes on the schedule until ``stop`` is set; returns how many passes this process ran."""
    cron, zone = check_cron(settings.retrain_cron), check_timezone(settings.retrain_timezone)
    passes = 0
    tick = next_tick(cron, time.time(), zone)
    log.info(
        "scheduler: retraining on %r (%s); next pass at %s",
        cron,
        zone.key,
        datetime.fromtimestamp(tick, zone).isoformat(),
    )
    while not stop.wait(max(0.0, tick - time.time())):
        summary: PassSummary | None = None
        try:
            summary = run_pass(
                None, settings=settings, workers=workers, min_new_points=min_new_points, stop=stop, tick=tick
            )
        except LeaseHeld as exc:
            log.info("scheduler: no pass for this tick: %s", exc)
        except PassFailed as exc:  # its run ended FAILED with the reason; the next tick tries again
            log.error("scheduler: %s", exc)
        except Exception:
            log.exception("scheduler: the pass for this tick failed")
        if summary is not None:
            passes += 1
            log.info("scheduler: pass %s done in %.1f s: %s", summary.run_id, summary.seconds, summary.counts)
            if on_pass is not None:
                on_pass(summary)
        tick = next_tick(cron, max(time.time(), tick), zone)
    return passes
