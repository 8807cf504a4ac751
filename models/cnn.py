"""Convolutional image classifiers: image ``(height, width, channels)`` -> class probabilities.

* ``cnn``: the CIFAR-style stack Conv2D 32 -> MaxPool -> Conv2D 64 -> MaxPool -> Conv2D 64 -> Flatten -> Dense 64
  -> Dense classes (softmax). Fitted to the input size: on images too small for the unpadded stack (8x8 digits)
  every convolution and pooling uses ``padding="same"``.
* ``small_cnn``: the network a grid search tunes: one Conv2D (receptive field x receptive field, ``filters``
  filters), MaxPool, Dense with L2, softmax; trained with plain SGD at learning rate ``eta``.

Both take ``learning_rate`` (eta) and ``l2`` (lambda), the two axes of ``train-images --grid``, and are compiled
for integer labels (sparse categorical cross-entropy, accuracy). Only built-in Keras layers: the ``.keras`` file
loads with ``safe_mode=True``.
"""

from __future__ import annotations

import keras
from keras import layers, regularizers

from models.entries import register

MIN_SIDE = 4  # the smallest image either network accepts (two 2x2 poolings with "same" padding)


def _check_input(input_shape, classes: int) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (height, width, channels); got {tuple(input_shape)}")
    height, width, channels = (int(v) for v in input_shape)
    if min(height, width) < MIN_SIDE:
        raise ValueError(f"images are {height}x{width}; the CNNs need at least {MIN_SIDE}x{MIN_SIDE}")
    if channels not in (1, 3):
        raise ValueError(f"images have {channels} channels; 1 (grayscale) or 3 (RGB) are allowed")
    if classes < 2:
        raise ValueError(f"{classes} class(es); a classifier needs at least 2")
    return height, width, channels


def cifar_padding(height: int, width: int) -> str:
    """``valid`` (a CIFAR-10-style stack) when the unpadded stack still leaves a 2x2 map, else ``same``."""
    side = min(height, width)
    side = (side - 2) // 2  # conv 3x3 valid, pool 2
    side = (side - 2) // 2
    side = side - 2
    return "valid" if side >= 2 else "same"


def _compile(model: keras.Model, optimizer: keras.optimizers.Optimizer) -> keras.Model:
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@register("cnn", "classify", "CIFAR-style Conv2D 32-64-64 stack + Dense 64 + softmax, padded to fit small images")
def cnn(
    input_shape,
    classes: int,
    *,
    learning_rate: float = 1e-3,
    l2: float = 0.0,
    dropout: float = 0.0,
    padding: str | None = None,
) -> keras.Model:
    height, width, _ = _check_input(input_shape, classes)
    padding = padding or cifar_padding(height, width)
    reg = regularizers.L2(l2) if l2 else None
    inputs = keras.Input(tuple(int(v) for v in input_shape), name="image")
    x = layers.Conv2D(32, 3, activation="relu", padding=padding, kernel_regularizer=reg, name="conv_0")(inputs)
    x = layers.MaxPooling2D(2, padding=padding, name="pool_0")(x)
    x = layers.Conv2D(64, 3, activation="relu", padding=padding, kernel_regularizer=reg, name="conv_1")(x)
    x = layers.MaxPooling2D(2, padding=padding, name="pool_1")(x)
    x = layers.Conv2D(64, 3, activation="relu", padding=padding, kernel_regularizer=reg, name="conv_2")(x)
    x = layers.Flatten(name="flatten")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout_0")(x)
    x = layers.Dense(64, activation="relu", kernel_regularizer=reg, name="dense")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout_1")(x)
    out = layers.Dense(classes, activation="softmax", name="probabilities")(x)
    return _compile(keras.Model(inputs, out, name="cnn"), keras.optimizers.Adam(learning_rate))


@register(
    "small_cnn",
    "classify",
    "the grid-search CNN: Conv2D(filters, field) -> MaxPool -> Dense(L2) -> softmax, SGD",
)
def small_cnn(
    input_shape,
    classes: int,
    *,
    learning_rate: float = 1e-2,
    l2: float = 1e-4,
    receptive_field: int = 3,
    filters: int = 10,
    units: int = 50,
    dropout: float = 0.0,
) -> keras.Model:
    _check_input(input_shape, classes)
    reg = regularizers.L2(l2) if l2 else None
    inputs = keras.Input(tuple(int(v) for v in input_shape), name="image")
    x = layers.Conv2D(filters, receptive_field, padding="same", activation="relu", kernel_regularizer=reg, name="conv")(
        inputs
    )
    x = layers.MaxPooling2D(2, name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Dense(units, activation="relu", kernel_regularizer=reg, name="dense")(x)
    out = layers.Dense(classes, activation="softmax", kernel_regularizer=reg, name="probabilities")(x)
    return _compile(keras.Model(inputs, out, name="small_cnn"), keras.optimizers.SGD(learning_rate))
