"""The name -> builder table and the decorator that fills it. The builder modules (``recurrent``, ``mlp``,
``cnn``) register here; :mod:`models.builders` imports them all and is what everyone else reads."""

from __future__ import annotations

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
