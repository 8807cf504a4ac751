"""A feed-forward network on the flattened window: cheap on long windows (a week of half-hours) and tiny series."""

from __future__ import annotations

import keras
from keras import layers

from models.entries import register
from models.recurrent import compile_forecaster


@register("mlp", "forecast", "flattened window -> depth Dense layers -> linear head")
def mlp(
    lookback: int,
    features: int = 1,
    *,
    units: int = 32,
    depth: int = 1,
    activation: str = "tanh",
    dropout: float = 0.0,
    learning_rate: float = 1e-3,
    outputs: int = 1,
) -> keras.Model:
    inputs = keras.Input((lookback, features), name="window")
    x = layers.Flatten(name="flatten")(inputs)
    for i in range(depth):
        x = layers.Dense(units, activation=activation, name=f"dense_{i}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"dropout_{i}")(x)
    out = layers.Dense(outputs, name="next")(x)
    return compile_forecaster(keras.Model(inputs, out, name="mlp"), learning_rate)
