"""One name -> builder registry. Every entry is picked up by the conformance test the moment it is registered.

The builder modules register on import (``models.entries.register``), all imported here; names() and the
unknown-model message list the forecasting networks first, each task in the order its modules registered."""

from __future__ import annotations

import keras

from models import cnn, mlp, recurrent  # noqa: F401  (their builders register on import)
from models.entries import REGISTRY, ModelEntry, register

TASK_ORDER = ("forecast", "classify")

__all__ = ["REGISTRY", "ModelEntry", "build", "names", "register"]


def names(task: str | None = None) -> list[str]:
    entries = sorted(REGISTRY.values(), key=lambda e: TASK_ORDER.index(e.task))  # stable: registration order kept
    return [e.name for e in entries if task is None or e.task == task]


def build(name: str, **kwargs) -> keras.Model:
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; registered are {', '.join(names())}")
    return REGISTRY[name].builder(**kwargs)
