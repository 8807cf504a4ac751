"""The image-classification pipeline: split -> train -> evaluate -> track -> register -> promote.

It runs on the same machinery as the forecasting pipeline: the experiment set-up, per-epoch curves,
models-from-code logging and champion comparison of :mod:`pipelines.tracking`, and the seeding of
:mod:`pipelines.seeding`. Only what is specific to images lives here: the stratified split, augmentation, accuracy, the confusion matrix and the lr x L2 grid.

``@champion`` moves only when the new model's test accuracy is strictly higher than the champion's on the
same held-out split (the split depends on ``split_seed`` only, not on the training seed).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import keras
import matplotlib.pyplot as plt
import mlflow
import numpy as np
import tensorflow as tf
from mlflow.models import ModelSignature
from mlflow.types.schema import ColSpec, Schema

from models import builders
from pipelines import tracking
from pipelines.seeding import seed_everything
from pipelines.settings import Settings
from pipelines.tracking import registry
from pipelines.tracking.registry import TrainOutcome, download, log_pyfunc_model
from pipelines.tracking.tags import CLASSIFY, ModelFacts
from pipelines.vision import plots
from pipelines.vision.classifier import Classifier
from pipelines.vision.data import ImageSet
from pipelines.vision.pyfunc import CLASSIFIER_ARTIFACT

log = logging.getLogger(__name__)

PYFUNC_ENTRY = Path(__file__).with_name("pyfunc_entry.py")
GRID_KEYS = {"eta": "learning_rate", "lambda": "l2"}
METRIC = "accuracy"


class GridError(ValueError):
    """A ``--grid`` spec that cannot be parsed; the message shows the allowed form."""


@dataclass(frozen=True)
class ImageTrainConfig:
    variant: str = "cnn"
    epochs: int = 100
    seed: int = 42
    learning_rate: float = 2e-3  # eta: the initial rate of the cosine schedule
    l2: float = 0.0  # lambda
    dropout: float = 0.2
    batch_size: int = 32
    augment: float = 0.1  # random shifts of up to this fraction of the height and width; 0 turns them off
    schedule: str = "cosine"  # "cosine" (decay to 0 over the epochs) or "constant"
    patience: int = 20  # early stopping on the validation loss (best weights restored)
    val_fraction: float = 0.1  # of the training part, stratified, for early stopping and grid selection
    test_fraction: float = 0.2  # held out, stratified
    split_seed: int = 0  # fixes the test split, so challenger and champion are scored on the same images

    def params(self) -> dict:
        return asdict(self)

    def check(self) -> None:
        if self.variant not in builders.names("classify"):
            raise ValueError(
                f"unknown variant {self.variant!r}; image classifiers are {', '.join(builders.names('classify'))}"
            )
        if self.epochs < 1:
            raise ValueError(f"epochs is {self.epochs}; it must be at least 1")
        if not 0 < self.test_fraction < 1 or not 0 <= self.val_fraction < 1:
            raise ValueError(
                f"test_fraction {self.test_fraction} must be in (0, 1) and val_fraction {self.val_fraction} in [0, 1)"
            )
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule {self.schedule!r}; allowed are cosine, constant")
        if self.learning_rate <= 0 or self.l2 < 0:
            raise ValueError(f"learning rate {self.learning_rate:g} must be > 0 and l2 {self.l2:g} >= 0")


@dataclass
class ImageCandidate:
    config: ImageTrainConfig
    classifier: Classifier
    history: dict[str, list[float]]
    metrics: dict[str, float]
    test_probabilities: np.ndarray
    test_index: np.ndarray

    @property
    def selection_score(self) -> tuple[float, float]:
        """Grid cells are ranked on the validation split (the test split only reports)."""
        m = self.metrics
        return (m.get("best_val_accuracy", m["train_accuracy"]), -m.get("best_val_loss", m["train_loss"]))


# --- the grid spec ------------------------------------------------------------------------------------------
def parse_grid(spec: str) -> dict[str, list[float]]:
    """``eta=0.001,0.01,lambda=0.0001,0.001`` -> ``{"eta": [0.001, 0.01], "lambda": [0.0001, 0.001]}``.

    Comma-separated; ``key=`` starts a key's values. Keys: eta (learning rate) and lambda (L2); a key left out
    keeps the single value of ``--learning-rate`` / ``--l2``.
    """
    form = "eta=V,V,...,lambda=V,V,... (e.g. eta=0.001,0.01,lambda=0.0001,0.001)"
    grid: dict[str, list[float]] = {}
    key = None
    for token in (t.strip() for t in spec.split(",")):
        if "=" in token:
            key, _, token = (s.strip() for s in token.partition("="))
            if key not in GRID_KEYS:
                raise GridError(f"grid key {key!r} is unknown; allowed keys are eta and lambda: {form}")
            if key in grid:
                raise GridError(f"grid key {key!r} is given twice: {form}")
            grid[key] = []
        if key is None:
            raise GridError(f"grid spec {spec!r} must start with a key: {form}")
        try:
            value = float(token)
        except ValueError:
            raise GridError(f"grid value {token!r} for {key} is not a number: {form}") from None
        if not math.isfinite(value) or value < 0 or (key == "eta" and value == 0):
            raise GridError(f"grid value {token} for {key} is out of range; eta must be > 0 and lambda >= 0")
        grid[key].append(value)
    if not grid:
        raise GridError(f"empty grid spec: {form}")
    return grid


def grid_cells(grid: dict[str, list[float]], config: ImageTrainConfig) -> tuple[list[float], list[float]]:
    return grid.get("eta", [config.learning_rate]), grid.get("lambda", [config.l2])


# --- training -----------------------------------------------------------------------------------------------
def _validation_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (fit, val) positions within ``y``; no validation when the classes are too small for one."""
    classes = len(np.unique(y))
    n_val = int(round(len(y) * fraction))
    counts = np.bincount(y)
    if fraction <= 0 or n_val < classes or len(y) - n_val < classes or counts[counts > 0].min() < 2:
        return np.arange(len(y)), np.arange(0)
    from sklearn.model_selection import train_test_split

    fit, val = train_test_split(np.arange(len(y)), test_size=n_val, stratify=y, random_state=seed)
    return np.sort(fit), np.sort(val)


def _augmenter(config: ImageTrainConfig) -> keras.Sequential | None:
    if not config.augment:
        return None
    return keras.Sequential(
        [keras.layers.RandomTranslation(config.augment, config.augment, fill_mode="constant", seed=config.seed)],
        name="augment",
    )


def fit_classifier(
    data: ImageSet, train_index: np.ndarray, config: ImageTrainConfig, *, verbose: int = 0
) -> tuple[Classifier, dict[str, list[float]], np.ndarray, np.ndarray]:
    """Train ``config.variant`` on ``data[train_index]``; returns the classifier, its curves and the fit/val indices."""
    config.check()
    seed_everything(config.seed)
    fit_pos, val_pos = _validation_split(data.y[train_index], config.val_fraction, config.split_seed)
    fit_index, val_index = train_index[fit_pos], train_index[val_pos]
    x_fit, y_fit = data.normalised(fit_index), data.y[fit_index]

    steps = int(math.ceil(len(fit_index) / config.batch_size))
    learning_rate = config.learning_rate
    if config.schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=steps * config.epochs)
    model = builders.build(
        config.variant,
        input_shape=data.input_shape,
        classes=len(data.labels),
        learning_rate=learning_rate,
        l2=config.l2,
        dropout=config.dropout,
    )
    dataset = tf.data.Dataset.from_tensor_slices((x_fit, y_fit)).shuffle(len(fit_index), seed=config.seed)
    dataset = dataset.batch(config.batch_size)
    augment = _augmenter(config)
    if augment is not None:
        dataset = dataset.map(lambda x, y: (augment(x, training=True), y))
        options = tf.data.Options()
        options.experimental_optimization.map_parallelization = False  # sequential: seeded and reproducible
        dataset = dataset.with_options(options)
    validation = (data.normalised(val_index), data.y[val_index]) if len(val_index) else None
    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss" if validation else "loss", patience=config.patience, restore_best_weights=True
    )
    history = model.fit(
        dataset.prefetch(2),
        shuffle=False,  # the dataset reshuffles itself every epoch (seeded); Keras would ignore it and warn
        validation_data=validation,
        epochs=config.epochs,
        verbose=verbose,
        callbacks=[stop],
    )
    classifier = Classifier(
        model=model,
        labels=data.labels,
        color_mode=data.color_mode,
        offset=data.offset,
        scale=data.scale,
        variant=config.variant,
        meta={"data": data.name, "data_fingerprint": data.fingerprint},
    )
    return classifier, {k: [float(v) for v in vals] for k, vals in history.history.items()}, fit_index, val_index


def _scores(classifier: Classifier, data: ImageSet, index: np.ndarray) -> tuple[float, float, np.ndarray]:
    """(accuracy, cross-entropy, probabilities) on ``data[index]``, with the classifier's own normalisation."""
    x = ((data.x[index] - classifier.offset) / classifier.scale).astype(np.float32)
    probabilities = np.concatenate([classifier.predict_proba(x[i : i + 1024]) for i in range(0, len(x), 1024)])
    y = data.y[index]
    accuracy = float(np.mean(probabilities.argmax(axis=1) == y))
    loss = float(-np.mean(np.log(np.clip(probabilities[np.arange(len(y)), y], 1e-12, 1.0))))
    return accuracy, loss, probabilities


def train_candidate(
    data: ImageSet, split: tuple[np.ndarray, np.ndarray], config: ImageTrainConfig, verbose: int = 0
) -> ImageCandidate:
    train_index, test_index = split
    classifier, history, fit_index, val_index = fit_classifier(data, train_index, config, verbose=verbose)
    train_accuracy, train_loss, _ = _scores(classifier, data, fit_index)
    metrics = {"train_accuracy": train_accuracy, "train_loss": train_loss}
    if len(val_index):
        metrics["best_val_accuracy"], metrics["best_val_loss"], _ = _scores(classifier, data, val_index)
    metrics["test_accuracy"], metrics["test_loss"], probabilities = _scores(classifier, data, test_index)
    metrics["epochs_trained"] = float(len(history.get("loss", [])))
    classifier.meta["test_accuracy"] = metrics["test_accuracy"]
    return ImageCandidate(config, classifier, history, metrics, probabilities, test_index)


def score_registered(uri: str, data: ImageSet, test_index: np.ndarray) -> float:
    """The registered classifier's accuracy on the challenger's test split (-inf when it cannot classify it)."""
    try:
        champion = Classifier.load(download(uri) / "artifacts" / CLASSIFIER_ARTIFACT)
    except (OSError, ValueError) as exc:
        log.warning("champion %s is not a loadable classifier: %s", uri, exc)
        return float("-inf")
    if champion.input_shape != data.input_shape or champion.labels != data.labels:
        log.warning(
            "champion %s takes %s images of %s; this data is %s of %s: it cannot be scored here",
            uri,
            champion.input_shape,
            champion.labels,
            data.input_shape,
            data.labels,
        )
        return float("-inf")
    return _scores(champion, data, test_index)[0]


# --- tracking -----------------------------------------------------------------------------------------------
def _log_candidate(candidate: ImageCandidate, data: ImageSet, name: str) -> dict[str, float]:
    config, classifier = candidate.config, candidate.classifier
    mlflow.log_params(
        {
            **config.params(),
            "data": data.name,
            "data_source": data.source[:500],
            "data_fingerprint": data.fingerprint,
            "data_images": len(data),
            "input_shape": "x".join(map(str, data.input_shape)),
            "color_mode": data.color_mode,
            "classes": len(data.labels),
        }
    )
    tracking.log_dataset(data.name, data.fingerprint, data.source[:500])
    tracking.log_history(candidate.history)
    mlflow.log_metrics(candidate.metrics)
    mlflow.log_dict(classifier.config(), "classifier_config.json")

    y_true = data.y[candidate.test_index]
    y_pred = candidate.test_probabilities.argmax(axis=1)
    n = len(data.labels)
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    wrong = np.flatnonzero(y_true != y_pred)
    mlflow.log_dict(
        {
            "labels": list(data.labels),
            "matrix": matrix.tolist(),
            "misclassified": [int(i) for i in candidate.test_index[wrong]],
        },
        "confusion_matrix.json",
    )
    title = f"{name}: {config.variant} on {data.name} (test accuracy {candidate.metrics['test_accuracy']:.4f})"
    labels = data.labels
    for fig, file in (
        (plots.training_curves(candidate.history, title), "training_curves.png"),
        (plots.confusion_matrix(matrix, labels, title), "confusion_matrix.png"),
        (
            plots.misclassified(
                data.normalised(candidate.test_index[wrong]),
                [labels[i] for i in y_true[wrong]],
                [labels[i] for i in y_pred[wrong]],
                candidate.test_probabilities[wrong, y_pred[wrong]].tolist(),
                f"{name}: {len(wrong)} of {len(y_true)} test images misclassified",
            ),
            "misclassified.png",
        ),
    ):
        mlflow.log_figure(fig, file)
        plt.close(fig)
    return dict(candidate.metrics)


def _log_model(candidate: ImageCandidate, name: str) -> str:
    # inputs are arrays or PNG/JPEG bytes (no one schema), so only the output columns every version has are declared
    outputs = Schema([ColSpec("string", "label"), ColSpec("double", "probability")])
    return log_pyfunc_model(
        name, PYFUNC_ENTRY, CLASSIFIER_ARTIFACT, candidate.classifier.save, signature=ModelSignature(outputs=outputs)
    )


def _run_grid(
    data: ImageSet,
    split,
    config: ImageTrainConfig,
    grid: dict[str, list[float]],
    name: str,
    experiment_id: str,
    verbose: int,
) -> tuple[ImageCandidate, list[dict]]:
    """One nested run per (eta, lambda) cell; train/test accuracy heatmaps on the parent; the best cell by
    validation accuracy."""
    etas, lambdas = grid_cells(grid, config)
    train_acc = np.zeros((len(etas), len(lambdas)))
    test_acc = np.zeros_like(train_acc)
    cells, candidates = [], []
    for (i, eta), (j, lam) in itertools.product(enumerate(etas), enumerate(lambdas)):
        cell = replace(config, learning_rate=eta, l2=lam)
        with mlflow.start_run(
            experiment_id=experiment_id, run_name=f"{name}-eta{eta:g}-lambda{lam:g}", nested=True
        ) as run:
            candidate = train_candidate(data, split, cell, verbose)
            _log_candidate(candidate, data, name)
            mlflow.set_tags({"seqcast.grid.eta": f"{eta:g}", "seqcast.grid.lambda": f"{lam:g}"})
        train_acc[i, j], test_acc[i, j] = candidate.metrics["train_accuracy"], candidate.metrics["test_accuracy"]
        cells.append({"eta": eta, "lambda": lam, "run_id": run.info.run_id, **candidate.metrics})
        candidates.append(candidate)
    best = max(candidates, key=lambda c: c.selection_score)  # the first of equals, as the cells ran
    for accuracy, which in ((train_acc, "train"), (test_acc, "test")):
        fig = plots.accuracy_heatmap(accuracy, etas, lambdas, f"{name}: {which} accuracy ({config.variant})")
        mlflow.log_figure(fig, f"{which}_accuracy_heatmap.png")
        plt.close(fig)
    mlflow.log_dict({"eta": etas, "lambda": lambdas, "cells": cells}, "grid.json")
    mlflow.set_tags(
        {"seqcast.grid.best_eta": f"{best.config.learning_rate:g}", "seqcast.grid.best_lambda": f"{best.config.l2:g}"}
    )
    return best, cells


def train_images_and_register(
    data: ImageSet,
    config: ImageTrainConfig,
    name: str,
    *,
    grid: dict[str, list[float]] | None = None,
    verbose: int = 0,
    settings: Settings | None = None,
) -> TrainOutcome:
    config.check()
    split = data.split(config.test_fraction, config.split_seed)

    client, experiment_id = tracking.open_experiment(name, settings)
    run_name = f"{name}-{config.variant}" + ("-grid" if grid else "")
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        cells: list[dict] = []
        if grid:  # one nested run per cell; the best by validation accuracy
            best, cells = _run_grid(data, split, config, grid, name, experiment_id, verbose)
        else:
            best = train_candidate(data, split, config, verbose)
        metrics = _log_candidate(best, data, name)
        champion = registry.champion_uri(client, name)
        scores = registry.Scores(
            metrics[f"test_{METRIC}"],
            champion=score_registered(champion, data, split[1]) if champion else None,
            metric=METRIC,
            higher_is_better=True,
        )
        version = _log_model(best, name)
        facts = ModelFacts(CLASSIFY, best.config.variant)
        registration = registry.record(
            client,
            name,
            version,
            facts,
            scores,
            registry.decide(scores),
            {"classifier_config": _json(best.classifier.config())},
        )
    return TrainOutcome.of(run.info.run_id, name, facts, registration, metrics, grid=cells)


def _json(value) -> str:
    """A version tag's value (MLflow caps tags at 5000 characters: many labels are left out)."""
    text = json.dumps(value)
    return text if len(text) <= 5000 else json.dumps({k: v for k, v in value.items() if k != "labels"})
