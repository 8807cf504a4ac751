"""Recursive multi-step extrapolation as one compiled call: each prediction is fed back as the next input.

The loop over the horizon runs inside one XLA-compiled ``tf.function``; there is no ``predict`` per step.
A compiled program serves one (batch bucket, horizon bucket) shape, so odd sizes reuse a padded program. The
horizon itself is a runtime scalar: the loop runs exactly ``horizon`` steps and the bucket only sizes the
output buffer, so a 48-step forecast costs 48 steps, not 128. That makes coarse horizon buckets nearly free
(128, 1024, 8192, ...: a buffer of 128 instead of 16 steps measured +5% for 1024 series at horizon 12, and
nothing for one series).

Large batches run through a copy of the network with its recurrent layers unrolled (``unroll=True``: the
lookback's time steps as straight-line code, the same weights). XLA fuses that far better on wide batches
(a batch of 1000 LSTM(16) forecasts ran about 10x faster here), while for one series the rolled inner loop
of one recurrent layer is quicker, so each batch size takes the faster of the two. A model with several
recurrent layers (a ``--variant auto`` combination: up to 3 configurations x 3 seeds in one graph) runs one
rolled loop per layer per step, and there the unrolled copy is faster for one series too (1.4 -> 0.6 ms for a
combination with 3 GRUs), so it is used from one series on. Both give the same numbers up to float32
rounding; a copy that does not (or cannot be built) is not used.

Forecasting once (``compiled=False``). Training backtests every model it fits, one call each, where XLA's
compile took longer than the forecast: 4.4 s for a GRU's backtest against 1.5 s as a plain TensorFlow graph
(0.4 against 0.1 s for an MLP). Such a forecaster runs the same loop as a graph, without XLA and without the
unrolled copy; its numbers agree with the compiled program's up to float32 rounding. What is saved, registered
and served is compiled.

Row by row, bit for bit (:meth:`RecursiveForecaster.each`). XLA computes a one-row program with other
kernels (matrix-vector) than a batch (matrix-matrix), and which kernel a batch gets depends on its size and
the layer widths, so a series forecast alone and inside a batch differ in the last float32 bit. ``each``
forecasts several series in one compiled call that loops over them, every one through the one-series
computation: the same bits as forecasting each alone, one call's overhead for all of them. It is what the
service's dynamic batching calls (``service/batching.py``). The number of rows is a runtime scalar (the
loop runs exactly that many), so the batch bucket only sizes the buffers: every batch of up to
``EACH_ROWS`` shares one small program per horizon bucket.

Memory. TensorFlow keeps every XLA executable it compiles until the process exits: its compilation cache
(``DeviceCompilationCache``, one per device) has no eviction, and is keyed by the traced function's name,
which is new on every trace. Measured (LSTM(8), lookback 12, ``benchmarks/compiled_memory.py``): a program
for a batch costs 10 to 13 MB of RSS and one for a single series about 3 MB (the first one also 57 MB of
one-time XLA start-up); dropping every Python reference to a program (the concrete function, its
``tf.function`` and trace cache) gives back about 1.5 MB of that, dropping the whole forecaster no more,
and tracing the same shape again compiles and keeps another 9 MB. So evicting programs cannot bound memory
(evicting, then being asked again, makes it grow); what bounds it is compiling few programs, and never
tracing one shape twice:

- a batch runs in chunks of at most ``max_batch`` rows (1024: ten calls of 1024 ran as fast as one of
  10048), each padded to a power of two;
- at most ``max_programs`` programs for two or more series. Past that, a batch shape without its own program
  runs through the compiled ones (padded up, or in chunks, with an output buffer at least as long as its
  horizon, at the least work): the same numbers, some padding, no compile;
- two exceptions, each at most once per horizon bucket (two for horizons up to 1024): one series always
  gets its own program (small, and the service runs it inline, where a padded batch would stall the event
  loop), and a batch whose horizon is longer than every compiled batch program's compiles its own.

``is_compiled`` says whether a shape would run without compiling (dict lookups) and ``compile`` compiles
what it needs without forecasting, so a caller can keep compiles off a latency-critical thread and warm up
at load.
"""

from __future__ import annotations

import logging
import math
import threading

import keras
import numpy as np
import tensorflow as tf

log = logging.getLogger(__name__)

_FAST_CALL = True  # TensorFlow 2.21's ConcreteFunction._call_flat (pinned range); False uses the public call
UNROLLED_FROM_BATCH = 2  # measured: rolled wins only for one series (0.5 vs 1.0 ms); unrolled from 2 on
# ... unless the model has several recurrent layers (a combination): then unrolled from one series on
MAX_PROGRAMS = 8  # compiled batch programs per forecaster: about 12 MB each, kept for the process's life
MAX_BATCH = 1024  # rows per compiled call; larger batches run in chunks
HORIZON_BUCKETS = (128, 8)  # output buffers of 128, 1024, 8192, ... steps (first, ratio)
EACH_ROWS = 32  # ``each``: one program for every batch up to this many rows (per horizon bucket)
CALL_COST_ROWS = 25  # one compiled call costs about as much as this many padded rows (0.08 vs 3.3 ms/1024)


def _unroll(layer: keras.layers.Layer) -> keras.layers.Layer:
    config = layer.get_config()
    if "unroll" not in config:
        return layer.__class__.from_config(config)
    return layer.__class__.from_config({**config, "unroll": True})


def unrolled_copy(model: keras.Model) -> keras.Model | None:
    """``model`` with every recurrent layer unrolled, or None when it has none or the copy differs."""
    if not any("unroll" in layer.get_config() for layer in model._flatten_layers(include_self=False)):
        return None
    try:
        copy = keras.models.clone_model(model, clone_function=_unroll, recursive=True)
        copy.set_weights(model.get_weights())
        probe = np.random.default_rng(0).normal(size=(4, *model.input_shape[1:])).astype(np.float32)
        if not np.allclose(np.asarray(copy(probe)), np.asarray(model(probe)), rtol=1e-4, atol=1e-5):
            log.warning("the unrolled copy of %s disagrees with it; large batches use the rolled model", model.name)
            return None
    except Exception as exc:  # noqa: BLE001 - an unusual model still forecasts, only slower for big batches
        log.warning("cannot unroll %s (%s); large batches use the rolled model", model.name, exc)
        return None
    return copy


def _batch_bucket(n: int) -> int:
    """The next power of two >= n: 1, 2, 4, ..., ``MAX_BATCH`` (callers split larger batches first)."""
    return 1 << (max(n, 1) - 1).bit_length()


def _horizon_bucket(horizon: int) -> int:
    """The output buffer for ``horizon`` steps: 128, 1024, 8192, ... (the loop still runs ``horizon``)."""
    steps, ratio = HORIZON_BUCKETS
    while steps < horizon:
        steps *= ratio
    return steps


class RecursiveForecaster:
    """Wraps a one-step model ``(B, lookback, P) -> (B, P)``, all in the model's (scaled) space.

    ``P`` is 1 for one network. A forecast combination has a path per member (``combine_models``): each path
    is fed back its own member's forecasts and the forecast is the mean over the paths.

    ``max_programs`` bounds the compiled programs for two or more series (see the module docstring: programs
    are never freed, so they are never evicted either). One series runs the rolled network, whose programs
    are small (about 3 MB) and latency-critical (the service runs them inline), so it always gets its own:
    one per horizon bucket, outside the bound. ``max_batch`` is the most rows one compiled call takes (a
    power of two)."""

    def __init__(
        self, model: keras.Model, max_programs: int = MAX_PROGRAMS, max_batch: int = MAX_BATCH, compiled: bool = True
    ):
        if max_programs < 1:
            raise ValueError(f"max_programs is {max_programs}; it must be at least 1")
        if max_batch < 1 or max_batch & (max_batch - 1):
            raise ValueError(f"max_batch is {max_batch}; it must be a power of two")
        self.model = model
        self.lookback = int(model.input_shape[1])
        self.paths = int(model.input_shape[2])
        self.max_programs = max_programs
        self.max_batch = max_batch
        self.compiled = compiled
        self._unrolled_copy: keras.Model | None | bool = False  # False: not built yet (see _unrolled)
        recurrent = sum("unroll" in layer.get_config() for layer in model._flatten_layers(include_self=False))
        self.unrolled_from = 1 if recurrent > 1 else UNROLLED_FROM_BATCH
        self._compiled = tf.function(self._loop, jit_compile=compiled, reduce_retracing=False)
        # (batch bucket, horizon bucket) -> a traced and XLA-compiled concrete function. Replaced, never
        # mutated, under the lock: readers take the current dict without locking and never see a half write.
        self._programs: dict[tuple[int, int], object] = {}
        self._buffers: dict[int, tf.Tensor] = {}  # a shape-only argument per horizon bucket, made once (40 us each)
        self._trace_lock = threading.Lock()  # concurrent first calls trace and compile once
        self._each = tf.function(self._each_loop, jit_compile=compiled, reduce_retracing=False)
        self._each_programs: dict[tuple[int, int], object] = {}  # as _programs, for ``each``
        self.traces = 0  # how many programs were traced: each one also compiled once

    def _unrolled(self) -> keras.Model | None:
        """The unrolled copy, built before the first program that runs it is traced (0.3 s: a model that is only
        saved, or backtested once, never needs it). Not while tracing: a trace after the first cannot make weights."""
        if self._unrolled_copy is False:
            self._unrolled_copy = unrolled_copy(self.model)
        return self._unrolled_copy

    @property
    def compiled_shapes(self) -> tuple[tuple[int, int], ...]:
        """The (batch bucket, horizon bucket) of every compiled program, in the order they were compiled."""
        return tuple(self._programs)

    def _loop(self, windows: tf.Tensor, horizon: tf.Tensor, buffer: tf.Tensor) -> tf.Tensor:
        self.traces += 1  # Python runs only while tracing
        out = tf.TensorArray(windows.dtype, size=buffer.shape[0])  # static size: the horizon bucket
        model = self.model  # chosen at trace time, per batch bucket
        if self._unrolled_copy and windows.shape[0] >= self.unrolled_from:  # built by _compile, _compile_each
            model = self._unrolled_copy
        paths = tf.repeat(windows[:, :, None], self.paths, axis=2)

        def body(i, paths, out):
            y = model(paths, training=False)  # (B, P): each path's next value
            return i + 1, tf.concat([paths[:, 1:], y[:, None, :]], axis=1), out.write(i, tf.reduce_mean(y, axis=1))

        _, _, out = tf.while_loop(lambda i, *_: i < horizon, body, (tf.constant(0), paths, out))
        return tf.transpose(out.stack())

    def _each_loop(self, windows: tf.Tensor, rows: tf.Tensor, horizon: tf.Tensor, buffer: tf.Tensor) -> tf.Tensor:
        out = tf.TensorArray(windows.dtype, size=windows.shape[0])  # static size: the batch bucket

        def body(r, out):  # row r exactly as the one-series program computes it
            return r + 1, out.write(r, self._loop(windows[r][None], horizon, buffer)[0])

        _, out = tf.while_loop(lambda r, _: r < rows, body, (tf.constant(0), out))
        return out.stack()

    def each(self, windows: np.ndarray, horizon: int) -> np.ndarray:
        """``windows[B, lookback]`` (scaled) -> ``forecast[B, horizon]`` in one compiled call whose every row is
        the same to the bit as ``self(row[None], horizon)`` (see the module docstring). At most ``max_batch``
        rows (the service coalesces far fewer)."""
        windows = self._checked(windows, horizon)
        batch = len(windows)
        if batch > self.max_batch:
            raise ValueError(f"each takes at most {self.max_batch} windows; got {batch}")
        if batch <= 1:
            return self(windows, horizon)
        key = (max(_batch_bucket(batch), EACH_ROWS), _horizon_bucket(horizon))
        program = self._each_programs.get(key)
        if program is None:
            program = self._compile_each(key)
        if batch != key[0]:
            windows = np.concatenate([windows, np.zeros((key[0] - batch, self.lookback), np.float32)])
        args = [tf.constant(windows), tf.constant(batch, tf.int32)]
        return self._run(program, args, horizon, key[1]).numpy()[:batch, :horizon].astype(np.float64)

    def each_is_compiled(self, batch: int, horizon: int) -> bool:
        """Whether :meth:`each` for ``batch`` series ``horizon`` steps ahead runs without compiling."""
        if batch <= 1:
            return self.is_compiled(1, horizon)
        return (max(_batch_bucket(batch), EACH_ROWS), _horizon_bucket(horizon)) in self._each_programs

    def _compile_each(self, key: tuple[int, int]):
        with self._trace_lock:
            program = self._each_programs.get(key)
            if program is None:
                batch, steps = key
                if self.compiled:
                    self._unrolled()
                program = self._each.get_concrete_function(
                    tf.TensorSpec((batch, self.lookback), tf.float32),
                    tf.TensorSpec((), tf.int32),
                    tf.TensorSpec((), tf.int32),
                    tf.TensorSpec((steps,), tf.int8),
                )
                zeros = [tf.constant(np.zeros((batch, self.lookback), np.float32)), tf.constant(0, tf.int32)]
                self._run(program, zeros, 0, steps)  # XLA compiles on the first call: one of zero rows
                self._each_programs = {**self._each_programs, key: program}
            return program

    def _plan(self, batch: int, horizon: int) -> tuple[list[tuple[tuple[int, int], int]], list[tuple[int, int]]]:
        """How ``batch`` rows run: ``([(program key, rows), ...], keys still to compile)``.

        Dict lookups; only a shape without its own program, once the bound is reached, scans the compiled keys."""
        programs = self._programs  # one snapshot: another thread may replace the dict meanwhile
        steps = _horizon_bucket(horizon)
        full, rest = divmod(batch, self.max_batch)
        if full == 0:
            key = (_batch_bucket(batch), steps)
            chunks = [(key, batch)]
            if key in programs:
                return chunks, []
            if batch == 1:  # one series always gets its own program: outside the bound (see the class docstring)
                return chunks, [key]
        else:
            key = (self.max_batch, steps)
            chunks = [(key, self.max_batch)] * full
            if rest:  # its own bucket only where compiled already: a remainder is not worth a compile
                own = (_batch_bucket(rest), steps)
                chunks.append((own if own in programs else key, rest))
            if key in programs:
                return chunks, []
        fitting: dict[int, int] = {}  # batch bucket -> the shortest compiled output buffer at least ``steps`` long
        for b, s in programs:
            if b > 1 and s >= steps and s < fitting.get(b, s + 1):
                fitting[b] = s
        if sum(b > 1 for b, _ in programs) < self.max_programs or not fitting:
            return chunks, [key]  # room, or a horizon longer than every batch program's (the other exception)
        # full: through the compiled batch programs, in chunks or padded, at the least work (calls and rows)
        b = min(fitting, key=lambda b: (math.ceil(batch / b) * (b + CALL_COST_ROWS), -b))
        calls, rest = divmod(batch, b)
        return [((b, fitting[b]), b)] * calls + ([((b, fitting[b]), rest)] if rest else []), []

    def is_compiled(self, batch: int, horizon: int) -> bool:
        """Whether forecasting ``batch`` series ``horizon`` steps ahead runs without compiling anything."""
        return not self._plan(max(int(batch), 1), max(int(horizon), 1))[1]

    def compile(self, batch: int, horizon: int) -> None:
        """Compile what forecasting ``batch`` series ``horizon`` steps ahead needs, without forecasting.

        Nothing when :meth:`is_compiled` is already true (once ``max_programs`` are compiled, almost always)."""
        self._compile_plan(max(int(batch), 1), max(int(horizon), 1))

    def _compile_plan(self, batch: int, horizon: int) -> list[tuple[tuple[int, int], int]]:
        chunks, missing = self._plan(batch, horizon)
        if not missing:
            return chunks
        with self._trace_lock:
            chunks, missing = self._plan(batch, horizon)  # another thread may have compiled it meanwhile
            for key in missing:
                self._compile(key)
            return chunks

    def _compile(self, key: tuple[int, int]) -> None:
        """Trace and XLA-compile one program (under the lock), then publish it."""
        batch, steps = key
        if self.compiled and batch >= self.unrolled_from:
            self._unrolled()
        program = self._compiled.get_concrete_function(
            tf.TensorSpec((batch, self.lookback), tf.float32),
            tf.TensorSpec((), tf.int32),
            tf.TensorSpec((steps,), tf.int8),
        )
        # XLA compiles on the first call: make it one of zero steps, so a published program never compiles
        self._run(program, [tf.constant(np.zeros((batch, self.lookback), np.float32))], 0, steps)
        self._programs = {**self._programs, key: program}
        wide = sum(b > 1 for b, _ in self._programs)
        if batch > 1 and wide > self.max_programs:
            log.warning(
                "%s: nothing compiled is %d steps long; compiled one more batch program (%d, bound %d)",
                self.model.name,
                steps,
                wide,
                self.max_programs,
            )

    def _run(self, program, inputs: list[tf.Tensor], horizon: int, steps: int) -> tf.Tensor:
        """``program(*inputs, horizon, buffer)``: the inputs (windows, and for ``each`` the row count) as tensors."""
        buffer = self._buffers.get(steps)
        if buffer is None:
            buffer = self._buffers.setdefault(steps, tf.zeros((steps,), tf.int8))
        args = [*inputs, tf.constant(horizon, tf.int32), buffer]
        if _FAST_CALL and hasattr(program, "_call_flat"):
            # skips re-binding and re-checking the arguments of an already exact signature: ~65 of ~300 us
            return program._call_flat(args, program.captured_inputs)
        return program(*args)

    def _checked(self, windows: np.ndarray, horizon: int) -> np.ndarray:
        windows = np.asarray(windows, dtype=np.float32)
        if windows.ndim != 2 or windows.shape[1] != self.lookback:
            raise ValueError(f"windows must have shape (batch, {self.lookback}); got {windows.shape}")
        if horizon < 1:
            raise ValueError(f"horizon is {horizon}; it must be at least 1")
        return windows

    def __call__(self, windows: np.ndarray, horizon: int) -> np.ndarray:
        """``windows[B, lookback]`` (scaled) -> ``forecast[B, horizon]`` (scaled)."""
        windows = self._checked(windows, horizon)
        batch = len(windows)
        if batch == 0:
            return np.zeros((0, horizon))
        chunks, missing = self._plan(batch, horizon)
        if missing:
            chunks = self._compile_plan(batch, horizon)
        programs = self._programs
        out, start = [], 0
        for key, rows in chunks:
            part = windows[start : start + rows]
            start += rows
            if rows != key[0]:  # pad with copies of the last row
                part = np.concatenate([part, np.repeat(part[-1:], key[0] - rows, axis=0)])
            out.append(self._run(programs[key], [tf.constant(part)], horizon, key[1]).numpy()[:rows, :horizon])
        result = out[0] if len(out) == 1 else np.concatenate(out)
        return result.astype(np.float64)
