"""The retraining lease in the store's database, on SQLite and PostgreSQL: one holder at a time, across
processes; a tick claimed once; a dead holder's lease taken over."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from pipelines.store.lease import Lease, LeaseHeld


def test_one_holder_at_a_time_and_released_after_the_block(store):
    first, second = Lease(store, "pass", seconds=30), Lease(store, "pass", seconds=30)
    with first.held():
        with pytest.raises(LeaseHeld, match=r"'pass' is held by .+ for another \d+ s \(another retraining pass"):
            second.acquire()
        assert first.current().holder == first.token
    assert first.current().holder is None
    with second.held():
        assert second.current().holder == second.token


def test_a_tick_runs_once_however_many_ask(store):
    tick = time.time()
    with Lease(store, "pass").held(tick):
        pass
    with pytest.raises(LeaseHeld, match="already ran"):
        Lease(store, "pass").acquire(tick)
    with pytest.raises(LeaseHeld, match="already ran"):
        Lease(store, "pass").acquire(tick - 60)  # an older tick, too
    with Lease(store, "pass").held(tick + 60):
        pass
    assert Lease(store, "pass").current().last_tick == tick + 60


def test_an_expired_lease_is_taken_and_its_old_holder_can_no_longer_renew(store):
    old = Lease(store, "pass", seconds=0.2)
    old.acquire()
    time.sleep(0.3)
    new = Lease(store, "pass", seconds=30)
    new.acquire()
    assert old.renew() is False
    old.release()  # not its lease any more: nothing changes
    assert new.current().holder == new.token
    assert new.renew() is True


def test_a_dead_holder_on_this_host_is_taken_over_at_once_a_live_one_is_not(store_url):
    hold = (
        "import sys, time\n"
        "from pipelines.store import SeriesStore\n"
        "from pipelines.store.lease import Lease\n"
        "lease = Lease(SeriesStore(sys.argv[1]), 'pass', seconds=600)\n"
        "lease.acquire()\n"
        "print('held', flush=True)\n"
        "time.sleep(600)\n"
    )
    other = subprocess.Popen([sys.executable, "-c", hold, store_url], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "held"
        from pipelines.store import SeriesStore

        store = SeriesStore(store_url)
        with pytest.raises(LeaseHeld, match=f":{other.pid}:"):
            Lease(store, "pass").acquire()
        other.kill()
        other.wait()
        mine = Lease(store, "pass")
        mine.acquire()  # its holder is gone: no need to wait 600 s
        assert mine.current().holder == mine.token
        store.close()
    finally:
        other.kill()
        other.wait()
