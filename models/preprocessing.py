"""Preprocessing that lives inside the Keras model, so the served model forecasts through the one recursive loop.

A forecasting model here is ``window -> WindowNormalise -> K member networks -> WindowDenormalise -> mean``:

- ``none``: the window as it is (already globally scaled by the Forecaster);
- ``last``: subtract the last value, divide by the mean absolute step: the network predicts the next change,
  so trends extrapolate (per-window normalisation / differencing);
- ``mean``: subtract the window's mean, divide by its spread (per-window z-score);
- ``seasonal``: the network sees seasonal differences ``x[t] - x[t-m]`` and predicts the next one, which is
  added to the value one season back (seasonal differencing, the level and season put back);
- ``profile``: the window's last ``k`` whole seasons give a level (the last season's mean) and a seasonal
  profile (each phase's mean deviation from its season's mean, over the ``k`` seasons); the network sees the
  window with both removed and predicts the next value's departure from level + profile (ES-RNN-style
  normalisation: averaging ``k`` seasons keeps one year's noise out of the seasonal pattern, which seasonal
  naive copies).

Each member's output layer starts at zero, so an untrained model forecasts the normalisation's own baseline
(naive for ``last``, the window mean for ``mean``, seasonal naive for ``seasonal``, level + profile for
``profile``) and training learns only the correction the data supports.

Members are independently initialised copies of the core network; they train side by side (one output
column each, so each learns on its own) and the served model averages them (an ensemble over seeds).
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers, ops

NORMALISATIONS = ("none", "last", "mean", "seasonal", "profile")
SCALE_FLOOR = 1e-2  # windows are globally standardised first, so a spread this small means "flat"


@keras.saving.register_keras_serializable(package="seqcast")
class WindowNormalise(layers.Layer):
    """``(B, L, 1)`` window -> normalised ``(B, L', 1)``, anchor ``(B, 1)``, scale ``(B, 1)``."""

    def __init__(self, mode: str = "none", season: int = 1, **kwargs):
        super().__init__(**kwargs)
        if mode not in NORMALISATIONS:
            raise ValueError(f"unknown normalisation {mode!r}; allowed: {', '.join(NORMALISATIONS)}")
        self.mode = mode
        self.season = max(int(season or 1), 1)

    def output_length(self, lookback: int) -> int:
        if self.mode == "seasonal":
            return lookback - self.season
        if self.mode == "profile":
            return lookback // self.season * self.season
        return lookback

    def min_lookback(self) -> int:
        """Two values left for the network; ``profile`` needs two seasons to tell the level from the season."""
        return {"seasonal": self.season + 2, "profile": max(2 * self.season, 2)}.get(self.mode, 2)

    def call(self, window):
        x = window[:, :, 0]
        if self.mode == "none":
            anchor = ops.zeros_like(x[:, -1:])
            return window, anchor, ops.ones_like(anchor)
        if self.mode == "last":
            anchor = x[:, -1:]
            scale = ops.mean(ops.abs(x[:, 1:] - x[:, :-1]), axis=1, keepdims=True)
            z = x - anchor
        elif self.mode == "mean":
            anchor = ops.mean(x, axis=1, keepdims=True)
            scale = ops.std(x, axis=1, keepdims=True)
            z = x - anchor
        elif self.mode == "profile":
            m, lookback = self.season, x.shape[1]
            k = lookback // m
            cycles = ops.reshape(x[:, lookback - k * m :], (-1, k, m))  # the last k seasons, the last ending now
            deviations = cycles - ops.mean(cycles, axis=2, keepdims=True)
            profile = ops.mean(deviations, axis=1, keepdims=True)  # (B, 1, m); the next value is at phase 0
            level = ops.mean(cycles[:, -1, :], axis=1, keepdims=True)
            anchor = level + profile[:, 0, :1]
            adjusted = ops.reshape(cycles - profile, (-1, k * m))
            scale = ops.mean(ops.abs(adjusted[:, 1:] - adjusted[:, :-1]), axis=1, keepdims=True)
            z = adjusted - level
        else:  # seasonal
            m = self.season
            z = x[:, m:] - x[:, :-m]
            lookback = x.shape[1]
            anchor = x[:, lookback - m : lookback - m + 1]  # the value one season before the next one
            scale = ops.mean(ops.abs(z), axis=1, keepdims=True)
        scale = ops.maximum(scale, SCALE_FLOOR)
        return (z / scale)[:, :, None], anchor, scale

    def compute_output_shape(self, input_shape):
        batch, lookback = input_shape[0], input_shape[1]
        return (batch, self.output_length(lookback), 1), (batch, 1), (batch, 1)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "season": self.season}


@keras.saving.register_keras_serializable(package="seqcast")
class WindowDenormalise(layers.Layer):
    """``[pred (B, K), anchor (B, 1), scale (B, 1)] -> anchor + pred * scale``; with ``seasonal`` the
    prediction is the next seasonal difference, with ``last`` the next change, so the same formula serves all."""

    def call(self, inputs):
        pred, anchor, scale = inputs
        return anchor + pred * scale

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]


@keras.saving.register_keras_serializable(package="seqcast")
class MemberMean(layers.Layer):
    """``(B, K)`` member forecasts -> ``(B, 1)`` ensemble forecast."""

    def call(self, members):
        return ops.mean(members, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)


def build_forecast_model(
    core: Callable[[int], keras.Model],
    lookback: int,
    *,
    normalise: str = "none",
    season: int = 1,
    members: int = 1,
    name: str = "forecaster",
) -> tuple[keras.Model, keras.Model]:
    """``core(length)`` builds one member network ``(B, length, 1) -> (B, 1)``.

    Returns ``(train_model, serve_model)`` sharing weights: the first outputs every member ``(B, K)`` (fit it
    on the target repeated K times), the second their mean ``(B, 1)`` (save and serve this one).
    """
    norm = WindowNormalise(normalise, season, name="normalise")
    if lookback < norm.min_lookback():
        raise ValueError(
            f"lookback {lookback} is too short for {normalise!r} normalisation with season {norm.season}; "
            f"it needs at least {norm.min_lookback()}"
        )
    length = norm.output_length(lookback)
    window = keras.Input((lookback, 1), name="window")
    z, anchor, scale = norm(window)
    outs = []
    for k in range(members):
        net = core(length)
        member = keras.Model(net.inputs[0], net.outputs[0], name=f"member_{k}")  # unique names inside the ensemble
        head = member.layers[-1]
        for weight in head.weights:  # start from the baseline (see the module docstring)
            weight.assign(keras.ops.zeros_like(weight))
        outs.append(member(z))
    stacked = outs[0] if members == 1 else layers.Concatenate(name="members")(outs)
    each = WindowDenormalise(name="denormalise")([stacked, anchor, scale])
    train_model = keras.Model(window, each, name=f"{name}_members")
    serve_model = keras.Model(window, MemberMean(name="ensemble")(each), name=name)
    return train_model, serve_model


@keras.saving.register_keras_serializable(package="seqcast")
class Affine(layers.Layer):
    """``x * scale + shift``: moves values between two global scalings, so models trained with different
    scalers can be combined in one model."""

    def __init__(self, scale: float = 1.0, shift: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale, self.shift = float(scale), float(shift)

    def call(self, x):
        return x * self.scale + self.shift

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "shift": self.shift}


@keras.saving.register_keras_serializable(package="seqcast")
class LastSteps(layers.Layer):
    """The last ``steps`` time steps of a ``(B, L, P)`` window (members of a combination may look back less),
    all its paths or only the path ``channel``. (``channel=None`` is how combinations registered before paths
    were saved: they still load and serve.)"""

    def __init__(self, steps: int, channel: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.steps = int(steps)
        self.channel = None if channel is None else int(channel)

    def call(self, window):
        if self.channel is None:
            return window[:, -self.steps :, :]
        return window[:, -self.steps :, self.channel : self.channel + 1]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.steps, input_shape[2] if self.channel is None else 1)

    def get_config(self):
        return {**super().get_config(), "steps": self.steps, "channel": self.channel}


def combine_models(
    models: list[keras.Model], into_member: list[tuple[float, float]], name: str = "combination"
) -> keras.Model:
    """One model for a forecast combination of differently preprocessed forecasting models.

    Its window has one path per member ``(B, L, K)`` and it outputs each member's next value ``(B, K)``: the
    recursive loop feeds every member its own forecasts and averages the paths (``models/recursive.py``), so
    the combination's forecast is the mean of its members' own forecasts. Averaging inside the recursion
    instead would feed each member the others' forecasts, and one member's overshoot would steer the rest.

    ``into_member[k] = (scale, shift)`` maps the combination's input space to model k's; its output is mapped
    back with the inverse. The combination looks back as far as its longest member."""
    lookback = max(int(m.input_shape[1]) for m in models)
    window = keras.Input((lookback, len(models)), name="window")
    outs = []
    for k, (model, (scale, shift)) in enumerate(zip(models, into_member, strict=True)):
        member = keras.Model(model.inputs[0], model.outputs[0], name=f"model_{k}")
        x = LastSteps(int(model.input_shape[1]), channel=k, name=f"last_steps_{k}")(window)
        y = member(Affine(scale, shift, name=f"into_{k}")(x))
        outs.append(Affine(1.0 / scale, -shift / scale, name=f"back_{k}")(y))
    return keras.Model(window, layers.Concatenate(name="paths")(outs), name=name)
