"""The fan-out on a real process pool: a worker that dies takes only the tasks in flight with it; the rest run
on a fresh pool; a stop request starts nothing new."""

from __future__ import annotations

import os
import signal
import threading
import time

from pipelines.retraining.fanout import fan_out


def work(item: str) -> str:
    """Runs in a spawned worker: 'die' kills its own process, as the OOM killer or an operator would."""
    if item == "die":
        time.sleep(0.5)  # let its neighbour start too
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(1.0 if item == "beside" else 0.0)
    return f"{item} ok in {os.getpid()}"


def crashed(item: str, exc: BaseException) -> str:
    return f"{item} lost: {type(exc).__name__}"


def test_a_killed_worker_loses_only_the_tasks_in_flight_and_the_rest_run_on_a_fresh_pool():
    results = list(fan_out(work, ["die", "beside", "after"], workers=2, on_crash=crashed))
    by_item = {r.split()[0]: r for r in results}
    assert by_item["die"] == "die lost: BrokenProcessPool"
    assert by_item["beside"] == "beside lost: BrokenProcessPool"  # in the same pool when it broke
    assert by_item["after"].startswith("after ok in ")


def test_a_stop_request_finishes_what_runs_and_starts_nothing_new():
    stop = threading.Event()
    seen = []
    for result in fan_out(work, ["a", "b", "c", "d"], workers=1, stop=stop, on_crash=crashed):
        seen.append(result)
        stop.set()  # after the first result, as SIGTERM would
    assert [r.split()[0] for r in seen] == ["a"]
