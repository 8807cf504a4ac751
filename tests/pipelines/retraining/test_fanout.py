"""The fan-out on a real process pool: a worker that dies fails its task (and at most the tasks in flight beside
it); the rest run on a fresh pool; a stop request starts nothing new."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pipelines.retraining.fanout import fan_out


def work(item: tuple[str, str]) -> str:
    """Runs in a pool worker: 'die' kills its own process (as the OOM killer or an operator would) once
    'beside' is running in the other worker, so both are in the pool when it breaks. 'beside' outlasts the
    break (the broken pool terminates it): had it finished first, its free slot would have sent 'after' into
    the pool before the break was seen (a busy machine can take seconds to see it)."""
    name, marker = item
    if name == "beside":
        Path(marker).touch()
        time.sleep(60.0)
    if name == "die":
        deadline = time.monotonic() + 60
        while not Path(marker).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGKILL)
    return f"{name} ok in {os.getpid()}"


def crashed(item: tuple[str, str], exc: BaseException) -> str:
    return f"{item[0]} lost: {type(exc).__name__}"


def test_a_killed_worker_fails_its_task_and_the_rest_run_on_a_fresh_pool(tmp_path):
    marker = str(tmp_path / "beside-started")
    items = [(name, marker) for name in ("die", "beside", "after")]
    by_item = {r.split()[0]: r for r in fan_out(work, items, workers=2, on_crash=crashed)}
    assert by_item["die"] == "die lost: BrokenProcessPool"
    assert by_item["beside"] == "beside lost: BrokenProcessPool"  # in flight beside it: lost with it, never silent
    assert by_item["after"].startswith("after ok in ")  # not yet started: a fresh pool ran it


def loaded(_: int) -> tuple[bool, int]:
    """Runs in a pool worker: was TensorFlow loaded before its task, and on how many threads does it run."""
    before = "tensorflow" in sys.modules
    import tensorflow as tf

    return before, tf.config.threading.get_intra_op_parallelism_threads()


def test_pool_workers_start_with_tensorflow_loaded_on_their_share_of_the_cores():
    # forked from a server that imported it once (pipelines.retraining.worker); each worker sets its own threads
    share = max(1, (os.cpu_count() or 1) // 2)
    assert list(fan_out(loaded, [0, 1], workers=2, on_crash=crashed)) == [(True, share), (True, share)]


def test_a_stop_request_finishes_what_runs_and_starts_nothing_new():
    stop = threading.Event()
    seen = []
    for result in fan_out(work, [(n, "") for n in "abcd"], workers=1, stop=stop, on_crash=crashed):
        seen.append(result)
        stop.set()  # after the first result, as SIGTERM would
    assert [r.split()[0] for r in seen] == ["a"]


def hold(pid_file: str) -> None:
    """Runs in a pool worker of the pass below: says who it is, then trains for as long as anyone lets it."""
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(600)


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")  # a zombie has stopped; only its parent has not collected it yet


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a worker dies with its pass on Linux only")
def test_a_killed_pass_leaves_no_worker_running(tmp_path):
    # the workers' parent is the pool's fork server, which a killed pass does not take down with it
    files = [str(tmp_path / f"worker-{i}") for i in range(2)]
    script = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); from test_fanout import hold, crashed; "
        f"from pipelines.retraining.fanout import fan_out; list(fan_out(hold, {files!r}, workers=2, on_crash=crashed))"
    )
    the_pass = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 120
        while not all(Path(f).exists() and Path(f).read_text() for f in files):
            assert the_pass.poll() is None and time.monotonic() < deadline, "the workers never started"
            time.sleep(0.1)
        workers = [int(Path(f).read_text()) for f in files]
        assert all(running(pid) for pid in workers)
    finally:
        the_pass.kill()
        the_pass.wait()
    deadline = time.monotonic() + 10
    while any(running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [pid for pid in workers if running(pid)]
    for pid in survivors:  # a failing run leaves no sleeper behind
        os.kill(pid, signal.SIGKILL)
    assert survivors == []
