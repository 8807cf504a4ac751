"""A trained CNN plus what it was trained with: input shape, colour mode, normalisation and label names.

Training, the MLflow pyfunc flavour and ``POST /v1/classify`` all classify through this one class. Saved as a
``.keras`` file (loaded with ``safe_mode=True``) and a JSON config: nothing is pickled.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from pipelines.tracking.bundle import load_bundle, save_bundle
from pipelines.vision.data import DEFAULT_MAX_PIXELS, open_image, to_array

CONFIG_FILE = "classifier.json"
FILE_RANGE = 255.0  # an uploaded PNG/JPEG's 8-bit pixels; 0..255 maps to the same 0..1 as the training data


class ImageInputError(ValueError):
    """An image array the model cannot take; the message names the shape or value and what is allowed."""


@dataclass
class Classifier:
    model: keras.Model
    labels: tuple[str, ...]
    color_mode: str  # "grayscale" | "rgb"
    offset: float  # normalised = (x - offset) / scale, for arrays in the training data's units
    scale: float
    variant: str
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.labels = tuple(self.labels)
        height, width, channels = self.input_shape
        model = self.model

        @tf.function(
            input_signature=[tf.TensorSpec([None, height, width, channels], tf.float32)], reduce_retracing=True
        )
        def forward(x):
            return model(x, training=False)

        self._forward = forward

    @property
    def input_shape(self) -> tuple[int, int, int]:
        height, width, channels = self.model.input_shape[1:]
        return int(height), int(width), int(channels)

    def describe_shape(self) -> str:
        height, width, channels = self.input_shape
        return f"{height}x{width}" if channels == 1 else f"{height}x{width}x{channels}"

    # --- inputs -------------------------------------------------------------------------------------------
    def check_array(self, image, where: str = "image") -> np.ndarray:
        """One image in the training data's units -> ``[H, W, C]`` normalised; ImageInputError names the problem."""
        height, width, channels = self.input_shape
        expected = (
            f"{height} rows of {width} numbers" if channels == 1 else f"{height} rows of {width} [R, G, B] triples"
        )
        try:
            array = np.asarray(image, dtype=np.float64)
        except (ValueError, TypeError):
            raise ImageInputError(f"{where} must be {expected} (a rectangular array of numbers)") from None
        shape = "x".join(str(v) for v in array.shape) or "a single number"
        if channels == 1 and array.ndim == 2:
            array = array[..., None]
        if array.shape != (height, width, channels):
            raise ImageInputError(
                f"{where} has shape {shape}; model takes {self.describe_shape()} {self.color_mode} images: {expected}"
            )
        low, high = self.offset, self.offset + self.scale
        if not np.isfinite(array).all():
            raise ImageInputError(f"{where} holds NaN or infinite values; pixel values must be {low:g}..{high:g}")
        if array.min() < low or array.max() > high:
            raise ImageInputError(
                f"{where} has pixel values from {array.min():g} to {array.max():g}; this model takes {low:g}..{high:g}"
            )
        return ((array - self.offset) / self.scale).astype(np.float32)

    def prepare_arrays(self, images) -> np.ndarray:
        """A batch ``[N, H, W(, C)]`` (or one image) in the training data's units -> ``[N, H, W, C]`` normalised."""
        if not isinstance(images, np.ndarray):
            with contextlib.suppress(ValueError, TypeError):  # ragged: each image is checked (and named) below
                images = np.asarray(images, dtype=np.float64)
        if isinstance(images, np.ndarray):
            if images.ndim < 2:
                raise ImageInputError(
                    f"images must be one {self.describe_shape()} image or a batch of them; got shape {images.shape}"
                )
            single = images.ndim == (2 if self.input_shape[2] == 1 else 3)
            if (
                images.ndim == 3
                and self.input_shape[2] == 1
                and images.shape[-1] == 1
                and images.shape[:2] == self.input_shape[:2]
            ):
                single = True
            if single:
                images = images[None]
        return np.stack([self.check_array(image, f"image {i}") for i, image in enumerate(images)])

    def prepare_image(self, image) -> np.ndarray:
        """A decoded PIL image of any size and mode -> ``[H, W, C]`` normalised (converted, resized, 0..255 -> 0..1)."""
        height, width, _ = self.input_shape
        return to_array(image, self.color_mode, (width, height)) / FILE_RANGE

    def prepare_files(self, files, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
        return np.stack([self.prepare_image(open_image(data, max_pixels, f"file {i}")) for i, data in enumerate(files)])

    # --- outputs ------------------------------------------------------------------------------------------
    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        """``[N, H, W, C]`` normalised -> ``[N, classes]`` probabilities."""
        return self._forward(tf.constant(np.asarray(batch, np.float32))).numpy().astype(np.float64)

    def top_k(self, probabilities: np.ndarray, k: int) -> list[dict]:
        """One image's probabilities -> the ``k`` most probable ``{"label", "probability"}``, best first."""
        order = np.argsort(-probabilities, kind="stable")[: max(1, min(k, len(self.labels)))]
        return [{"label": self.labels[i], "probability": float(probabilities[i])} for i in order]

    # --- files --------------------------------------------------------------------------------------------
    def config(self) -> dict:
        return {
            "variant": self.variant,
            "input_shape": list(self.input_shape),
            "color_mode": self.color_mode,
            "normalisation": {"offset": self.offset, "scale": self.scale, "file_range": FILE_RANGE},
            "labels": list(self.labels),
            "meta": self.meta,
        }

    def save(self, directory: str | Path) -> Path:
        return save_bundle(directory, self.model, CONFIG_FILE, self.config())

    @classmethod
    def load(cls, directory: str | Path) -> Classifier:
        model, config = load_bundle(directory, CONFIG_FILE)
        if list(model.input_shape[1:]) != list(config["input_shape"]):
            raise ValueError(
                f"{directory}: the network takes {model.input_shape[1:]} but the config says {config['input_shape']}"
            )
        return cls(
            model=model,
            labels=tuple(config["labels"]),
            color_mode=config["color_mode"],
            offset=float(config["normalisation"]["offset"]),
            scale=float(config["normalisation"]["scale"]),
            variant=config["variant"],
            meta=config.get("meta", {}),
        )
