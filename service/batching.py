"""Dynamic batching for ``POST /v1/forecast``: concurrent single-series requests for one model version and
horizon are coalesced into one compiled batch call (as TF Serving, Triton and Ray Serve's ``@serve.batch`` do).

- **A lone request runs at once.** Its call starts on the next turn of the event loop, after the requests
  already received in this turn have joined it: no timer, no added latency.
- **Requests that arrive while a call runs join the next one.** A compiled call runs inline on the event
  loop; what arrives meanwhile is read when it returns and runs as the next call, at most ``max_size``
  series each (``SEQCAST_FORECAST_BATCH_MAX_SIZE``). Inline, because a thread measured slower here: with the
  loop and a forecast thread taking turns at the GIL, 2,100 requests/s instead of 2,700 at concurrency 16
  on 2 cores, and latency spikes. A call that must compile first (a new horizon bucket, or more than 32
  series: hundreds of milliseconds) runs on the batcher's own thread instead, and the queue waits for it.
- **Waiting is opt-in.** With ``max_wait`` > 0 (``SEQCAST_FORECAST_BATCH_WAIT_MS``) the first request of an
  idle queue waits up to that long for company (fewer, larger calls for more latency, like Triton's queue
  delay); a full batch starts at once.
- **The same numbers, alone or coalesced.** A coalesced call is :meth:`Forecaster.forecast_each`: one
  compiled call that computes every series exactly as the one-series program does (XLA's batch kernels round
  differently: ``models/recursive.py``), so a request's forecast is identical to the bit whether it ran alone
  or with others, and to ``Forecaster.forecast`` in process. What the coalescing saves is the per-call work
  (Python, argument conversion, dispatch, scaling), not the per-series computation.
- **A failing series fails only its own request.** A call that raises is retried series by series.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from pipelines.forecasting.forecaster import Forecaster
from service.workers import DaemonPool

log = logging.getLogger(__name__)


def warm(forecaster: Forecaster, max_size: int) -> None:
    """The forecast :class:`service.cache.Loader`'s warm-up: compile the one-series program for the usual
    horizon (what a lone request runs) before the model takes traffic, and the coalesced calls' program in
    the background: a load (and the registry timeout it counts against) waits for one compile, not two. A
    coalesced call that comes before that compile is done waits for it on the batcher's thread."""
    forecaster.warm()
    if max_size > 1:
        windows = np.tile(forecaster.example_history()[-forecaster.lookback :], (2, 1))
        # not a daemon: a process that exits mid-compile would abort inside LLVM ("LLVM ERROR: Cannot
        # implicitly convert a scalable size"), so exit waits for the compile (seconds) instead
        threading.Thread(target=_compile_each, args=(forecaster, windows), name="seqcast-compile-each").start()


def _compile_each(forecaster: Forecaster, windows: np.ndarray) -> None:
    try:
        forecaster.forecast_each(windows, forecaster.usual_horizon())
    except Exception:  # the batcher compiles it on first use instead
        log.exception("compiling the coalesced forecasts' program failed")


@dataclass(eq=False)
class _Queue:
    forecaster: Forecaster
    horizon: int
    pending: list[tuple[np.ndarray, asyncio.Future]] = field(default_factory=list)
    busy: bool = False  # a call is scheduled or running
    timer: asyncio.TimerHandle | None = None  # the wait for company (max_wait > 0)


Outcome = np.ndarray | Exception


class Batcher:
    def __init__(self, max_size: int, max_wait: float = 0.0, on_call: Callable[[int], None] | None = None):
        self.max_size = max(1, max_size)
        self.max_wait = max_wait
        self.on_call = on_call  # told each call's number of series
        # for calls that compile first; the backlog is at most one call per (model version, horizon) served
        self.pool = DaemonPool(
            "seqcast-forecast", 1, 100_000, busy=lambda n: RuntimeError(f"{n} forecast calls are queued")
        )
        self._queues: dict[tuple[int, int], _Queue] = {}

    async def forecast(self, forecaster: Forecaster, window: np.ndarray, horizon: int) -> np.ndarray:
        """The forecast of one checked window (the last ``lookback`` values of a history), coalesced with the
        concurrent ones for the same forecaster and horizon."""
        loop = asyncio.get_running_loop()
        key = (id(forecaster), horizon)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue(forecaster, horizon)
        future = loop.create_future()
        queue.pending.append((window, future))
        if not queue.busy:
            queue.busy = True
            if self.max_wait > 0 and self.max_size > 1:
                queue.timer = loop.call_later(self.max_wait, self._next, queue)
            else:
                loop.call_soon(self._next, queue)
        elif queue.timer is not None and len(queue.pending) >= self.max_size:  # full: no more waiting
            queue.timer.cancel()
            queue.timer = None
            loop.call_soon(self._next, queue)
        return await future

    def _next(self, queue: _Queue) -> None:
        """Start the next call of ``queue`` (on the loop), or mark it idle."""
        queue.timer = None
        batch = [(w, f) for w, f in queue.pending[: self.max_size] if not f.done()]  # done: request cancelled
        del queue.pending[: self.max_size]
        if not batch:
            if queue.pending:
                self._next(queue)
            else:
                queue.busy = False
                key = (id(queue.forecaster), queue.horizon)
                if self._queues.get(key) is queue:
                    del self._queues[key]
            return
        windows = np.stack([w for w, _ in batch])
        if queue.forecaster.each_is_compiled(queue.horizon, len(batch)):
            self._finish(queue, batch, _call(queue.forecaster, queue.horizon, windows))
            return
        running = asyncio.wrap_future(self.pool.submit(_call, queue.forecaster, queue.horizon, windows))

        def done(task: asyncio.Future) -> None:
            error = task.exception()
            self._finish(queue, batch, [error] * len(batch) if error is not None else task.result())

        running.add_done_callback(done)

    def _finish(self, queue: _Queue, batch: list, outcomes: list) -> None:
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        if self.on_call is not None:
            self.on_call(len(batch))
        self._next(queue)

    def close(self) -> None:
        self.pool.shutdown()


def _call(forecaster: Forecaster, horizon: int, windows: np.ndarray) -> list[Outcome]:
    """One compiled call for every window; if it raises, each window alone, so only a failing one fails."""
    try:
        return list(forecaster.forecast_each(windows, horizon))
    except Exception as exc:  # noqa: BLE001 - handed to the request(s) it belongs to
        if len(windows) == 1:
            return [exc]
        log.warning("a coalesced forecast of %d series failed (%s); forecasting each alone", len(windows), exc)
        return [_call(forecaster, horizon, window[None])[0] for window in windows]
