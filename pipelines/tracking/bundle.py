"""A saved model as a folder: the network as a ``.keras`` file (loaded with ``safe_mode=True``) and its
preprocessing as JSON. Forecasters and classifiers are both saved this way; nothing is pickled."""

from __future__ import annotations

import json
from pathlib import Path

import keras

MODEL_FILE = "model.keras"


def save_bundle(directory: str | Path, model: keras.Model, config_file: str, config: dict) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save(directory / MODEL_FILE)
    (directory / config_file).write_text(json.dumps(config, indent=2))
    return directory


def load_bundle(directory: str | Path, config_file: str) -> tuple[keras.Model, dict]:
    directory = Path(directory)
    config = json.loads((directory / config_file).read_text())
    model = keras.saving.load_model(directory / MODEL_FILE, safe_mode=True, compile=False)
    return model, config
