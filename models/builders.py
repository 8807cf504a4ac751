"""One name -> builder registry. Every entry is picked up by the conformance test the moment it is registered."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import keras


@dataclass(frozen=True)
class ModelEntry:
    name: str
    task: str  # "forecast": (lookback, features) -> next value(s); "classify": image -> class probabilities
    builder: Callable[..., keras.Model]
    description: str


REGISTRY: dict[str, ModelEntry] = {}


def register(name: str, task: str, description: str):
    def wrap(builder):
        if name in REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        REGISTRY[name] = ModelEntry(name, task, builder, description)
        return builder

    return wrap


def names(task: str | None = None) -> list[str]:
    return [n for n, e in REGISTRY.items() if task is None or e.task == task]


def build(name: str, **kwargs) -> keras.Model:
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; registered are {', '.join(REGISTRY)}")
    return REGISTRY[name].builder(**kwargs)


# The builder modules, loaded for their side effect: each imports ``register`` from here and registers its
# builders on import, so they load last, once this module is complete. The order is the registry's (names()
# and the unknown-model message list the forecasting networks first), so it is data, not import statements.
for _module in ("recurrent", "mlp", "cnn"):
    importlib.import_module(f"models.{_module}")
