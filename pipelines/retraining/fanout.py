"""Run one task per item on an existing engine: in this process (1 worker), a local process pool, or a Ray
cluster. At most ``workers`` tasks are in flight, so a stop request (SIGTERM) lets the running ones finish and
starts no more. A task that dies with its worker (killed, out of memory) is reported through ``on_crash``; the
others go on."""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from pipelines.process import prepare_worker

log = logging.getLogger(__name__)

POOL_PRELOAD = "pipelines.retraining.worker"  # what every pool worker needs loaded (see that module)


def engine_name(workers: int, ray_address: str | None) -> str:
    """What runs a pass's series: Ray tasks, a local process pool, or the pass's own process."""
    return "ray" if ray_address else "pool" if workers > 1 else "sequential"


def prepare_pool_worker(threads: int, pass_pid: int) -> None:
    """A process pool's initializer: :func:`prepare_worker`, and Ctrl-C left to the pass, which stops the pool."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    prepare_worker(threads, pass_pid)


def pool_context() -> multiprocessing.context.BaseContext:
    """How a pass's process pool starts its workers: forked from a fork server that imported
    :data:`POOL_PRELOAD` once, so each starts with TensorFlow, MLflow and the task's code loaded (a spawned worker
    imports them itself, seconds of CPU each on the cores its tasks need). The fork is safe: the server only
    imported TensorFlow, which starts its threads at a process's first operation. ``spawn`` where there is no
    fork server (Windows)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([POOL_PRELOAD])
    return context


def start_pool_server(workers: int, ray_address: str | None) -> None:
    """When a pass runs on a process pool, start its workers' fork server now, so that its imports run beside
    the caller's own instead of after them (the CLI calls this before it loads anything heavy). The server lives
    as long as this process: a scheduler's later passes fork their workers from it at once."""
    if engine_name(workers, ray_address) == "pool" and pool_context().get_start_method() == "forkserver":
        multiprocessing.forkserver.ensure_running()


def fan_out(
    task: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    workers: int,
    ray_address: str | None = None,
    stop: threading.Event | None = None,
    on_crash: Callable[[Any, BaseException], Any],
) -> Iterator[Any]:
    """Yield ``task(item)`` for each item, in completion order, until ``stop`` is set."""
    stop = stop or threading.Event()
    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    pending = list(items)
    if ray_address:
        yield from _on_ray(task, pending, workers, ray_address, stop, on_crash)
    elif workers <= 1:
        for item in pending:
            if stop.is_set():
                return
            yield task(item)
    else:
        yield from _on_pool(task, pending, workers, stop, on_crash, threads)


def _on_pool(task, pending, workers, stop, on_crash, threads) -> Iterator[Any]:
    pool: ProcessPoolExecutor | None = None
    running: dict[Future, Any] = {}
    try:
        while pending or running:
            while pending and len(running) < workers and not stop.is_set():
                if pool is None:  # a fresh pool after a worker died (the old one is broken for good)
                    pool = ProcessPoolExecutor(
                        workers,
                        mp_context=pool_context(),
                        initializer=prepare_pool_worker,
                        initargs=(threads, os.getpid()),
                    )
                item = pending.pop(0)
                running[pool.submit(task, item)] = item
            if not running:
                return
            done, _ = wait(running, timeout=1.0, return_when=FIRST_COMPLETED)
            for future in done:
                item = running.pop(future)
                try:
                    yield future.result()
                except BrokenProcessPool as exc:
                    # the pool is broken for good and every task in it lost; a fresh pool takes the rest
                    log.error("the worker pool broke while running %s (a worker was killed or ran out of memory)", item)
                    if pool is not None:
                        pool.shutdown(wait=False, cancel_futures=True)
                        pool = None
                    yield on_crash(item, exc)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def check_ray_reachable(address: str, timeout: float = 5.0) -> None:
    """Raise ConnectionError, in one line, when nothing answers at a Ray cluster's ``host:port`` (or
    ``ray://host:port``): ``ray.init`` itself retries an unreachable cluster for minutes, printing as it goes.
    ``local`` and ``auto`` are Ray's to resolve."""
    if address in ("local", "auto"):
        return
    where = address.removeprefix("ray://")
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit():
        raise ConnectionError(f"SEQCAST_RAY_ADDRESS is {address!r}; expected host:port, ray://host:port, auto or local")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConnectionError(
            f"no Ray cluster answers at {address} (SEQCAST_RAY_ADDRESS): {exc.strerror or exc}"
        ) from None


def _on_ray(task, pending, workers, address, stop, on_crash) -> Iterator[Any]:
    import ray

    if not ray.is_initialized():
        check_ray_reachable(address)
        # "local" starts a private instance with `workers` CPUs; any other address joins that cluster
        local = {"num_cpus": workers, "include_dashboard": False} if address == "local" else {}
        ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR, **local)

    def remote_task(item):
        prepare_worker(1)  # each task holds one of the cluster's CPUs
        return task(item)

    remote = ray.remote(num_cpus=1, max_retries=0)(remote_task)
    running: dict[Any, Any] = {}
    limit = max(workers, 1)
    while pending or running:
        while pending and len(running) < limit and not stop.is_set():
            item = pending.pop(0)
            running[remote.remote(item)] = item
        if not running:
            return
        done, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
        for ref in done:
            item = running.pop(ref)
            try:
                yield ray.get(ref)
            except (ray.exceptions.WorkerCrashedError, ray.exceptions.RayTaskError) as exc:
                log.error("the Ray task for %s failed: %s", item, exc)
                yield on_crash(item, exc)


def map_on(workers: int, ray_address: str | None = None) -> Callable[[Callable[[Any], Any], list[Any]], list[Any]]:
    """A panel search's trial mapper (``train_panel(..., map_trials=...)``): every task run by :func:`fan_out` on
    ``workers`` processes, or on the Ray cluster at ``ray_address``, results in the tasks' order. A trial that
    fails, or dies with its worker, fails the search (one lost trial would change the chosen model).

    On Ray with ``workers`` <= 1, every trial is in flight at once (Ray queues what its CPUs cannot take yet);
    a ``local`` instance gets at most this machine's cores."""

    def crashed(item: Any, exc: BaseException) -> Any:
        index = getattr(item, "index", item)
        raise RuntimeError(f"search trial {index} failed: its worker stopped or the task raised: {exc}") from exc

    def run_all(task: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        items = list(items)
        in_flight = workers
        if ray_address and workers <= 1:
            in_flight = min(len(items), os.cpu_count() or 1) if ray_address == "local" else len(items)
        results = fan_out(task, items, workers=max(1, in_flight), ray_address=ray_address, on_crash=crashed)
        done = list(results)
        if len(done) != len(items):  # fan_out stops early only on a stop request, and none is given here
            raise RuntimeError(f"{len(items) - len(done)} of {len(items)} search trials did not run")
        # completion order back to the tasks' order, by each result's ``index`` (a TrialScore's) where it has one
        return sorted(done, key=lambda r: r.index) if all(hasattr(r, "index") for r in done) else done

    return run_all
