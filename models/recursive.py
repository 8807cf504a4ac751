"""Recursive multi-step extrapolation as one compiled call: each prediction is fed back as the next input.

The loop over the horizon runs inside one XLA-compiled ``tf.function``; there is no ``predict`` per step.
Compiled programs are cached per (batch bucket, horizon bucket) so odd sizes reuse a padded program.
"""

from __future__ import annotations


import keras
import numpy as np
import tensorflow as tf


def _bucket(n: int, minimum: int) -> int:
    """The next power of two >= n (at least ``minimum``): few distinct compiled shapes."""
    return max(minimum, 1 << (max(n, 1) - 1).bit_length())


class RecursiveForecaster:
    """Wraps a one-step model ``(B, lookback, 1) -> (B, 1)``, all in the model's (scaled) space."""

    def __init__(self, model: keras.Model):
        self.model = model
        self.lookback = int(model.input_shape[1])
        self._compiled = tf.function(self._loop, jit_compile=True, reduce_retracing=False)

    def _loop(self, windows: tf.Tensor, horizon_bucket: tf.Tensor) -> tf.Tensor:
        steps = horizon_bucket.shape[0]  # static: the bucket's length
        out = tf.TensorArray(windows.dtype, size=steps)

        def body(i, window, out):
            y = self.model(window[:, :, None], training=False)[:, 0]
            return i + 1, tf.concat([window[:, 1:], y[:, None]], axis=1), out.write(i, y)

        _, _, out = tf.while_loop(lambda i, *_: i < steps, body, (tf.constant(0), windows, out))
        return tf.transpose(out.stack())

    def __call__(self, windows: np.ndarray, horizon: int) -> np.ndarray:
        """``windows[B, lookback]`` (scaled) -> ``forecast[B, horizon]`` (scaled)."""
        windows = np.asarray(windows, dtype=np.float32)
        if windows.ndim != 2 or windows.shape[1] != self.lookback:
            raise ValueError(f"windows must have shape (batch, {self.lookback}); got {windows.shape}")
        batch = len(windows)
        padded_batch = _bucket(batch, 1)
        if padded_batch != batch:
            windows = np.concatenate([windows, np.repeat(windows[-1:], padded_batch - batch, axis=0)])
        steps = _bucket(horizon, 8)
        result = self._compiled(tf.constant(windows), tf.zeros((steps,), tf.int8))
        return result.numpy()[:batch, :horizon].astype(np.float64)
