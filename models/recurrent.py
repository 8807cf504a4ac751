"""The recurrent forecasting networks: one step ahead from a window ``(lookback, features)``."""

from __future__ import annotations

import keras
from keras import layers

from models.entries import register

RNN_LAYERS = {"simple_rnn": layers.SimpleRNN, "lstm": layers.LSTM, "gru": layers.GRU}


def compile_forecaster(model: keras.Model, learning_rate: float) -> keras.Model:
    """Adam on MSE: how every one-step forecasting network here is trained."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
    return model


def _stack(
    name: str,
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
    """``depth`` recurrent layers (two stacked layers at depth 2), then a linear head."""
    cell = RNN_LAYERS[name]
    inputs = keras.Input((lookback, features), name="window")
    x = inputs
    for i in range(depth):
        x = cell(units, activation=activation, dropout=dropout, return_sequences=i < depth - 1, name=f"{name}_{i}")(x)
    out = layers.Dense(outputs, name="next")(x)
    return compile_forecaster(keras.Model(inputs, out, name=name), learning_rate)


@register("simple_rnn", "forecast", "SimpleRNN stack + linear head")
def simple_rnn(lookback: int, features: int = 1, **hp) -> keras.Model:
    return _stack("simple_rnn", lookback, features, **hp)


@register("lstm", "forecast", "LSTM stack + linear head")
def lstm(lookback: int, features: int = 1, **hp) -> keras.Model:
    return _stack("lstm", lookback, features, **hp)


@register("gru", "forecast", "GRU stack + linear head")
def gru(lookback: int, features: int = 1, **hp) -> keras.Model:
    return _stack("gru", lookback, features, **hp)


@register("dense_gru", "forecast", "two Dense layers per time step, then two GRU layers")
def dense_gru(
    lookback: int,
    features: int = 1,
    *,
    units: int = 32,
    depth: int = 2,
    activation: str = "tanh",
    dropout: float = 0.0,
    learning_rate: float = 1e-3,
    outputs: int = 1,
) -> keras.Model:
    inputs = keras.Input((lookback, features), name="window")
    x = layers.Dense(units, activation="relu", name="dense_0")(inputs)
    x = layers.Dense(units, activation="relu", name="dense_1")(x)
    for i in range(depth):
        x = layers.GRU(units, activation=activation, dropout=dropout, return_sequences=i < depth - 1, name=f"gru_{i}")(
            x
        )
    out = layers.Dense(outputs, name="next")(x)
    return compile_forecaster(keras.Model(inputs, out, name="dense_gru"), learning_rate)


@register("one_step", "forecast", "a one-step network: SimpleRNN(32, relu) -> Dense(8, relu) -> Dense(1)")
def one_step(lookback: int, features: int = 1, *, learning_rate: float = 1e-3, outputs: int = 1, **_) -> keras.Model:
    inputs = keras.Input((lookback, features), name="window")
    x = layers.SimpleRNN(32, activation="relu", name="simple_rnn")(inputs)
    x = layers.Dense(8, activation="relu", name="dense")(x)
    out = layers.Dense(outputs, name="next")(x)
    return compile_forecaster(keras.Model(inputs, out, name="one_step"), learning_rate)
