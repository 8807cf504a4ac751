"""Seeds for every random source both tasks train with: the same seed and data give the same weights and metrics."""

from __future__ import annotations

import keras
import tensorflow as tf

_determinism = False


def seed_everything(seed: int) -> None:
    """Same seed and data -> same weights and metrics."""
    global _determinism
    if not _determinism:
        tf.config.experimental.enable_op_determinism()
        _determinism = True
    keras.utils.set_random_seed(seed)
