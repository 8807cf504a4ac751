"""The image pipeline on the real embedded MLflow store: run contents, registration, champion only on strictly
better test accuracy, the eta x lambda grid, the pyfunc in another process, and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from pipelines.tracking.registry import CHAMPION, download, model_uri
from pipelines.tracking.tags import CLASSIFIER, model_kind
from pipelines.vision.classifier import Classifier
from pipelines.vision.data import ImageSet, load_digits_set
from pipelines.vision.pipeline import ImageTrainConfig, train_candidate, train_images_and_register
from pipelines.vision.pyfunc import CLASSIFIER_ARTIFACT
from seqcast.cli import main

FAST = ImageTrainConfig(epochs=2, batch_size=32, augment=0.1)


def small_digits(classes: int = 4, per_class: int = 25) -> ImageSet:
    digits = load_digits_set()
    keep = np.concatenate([np.flatnonzero(digits.y == c)[:per_class] for c in range(classes)])
    return replace(digits, name="digits_small", x=digits.x[keep], y=digits.y[keep], labels=digits.labels[:classes])


@pytest.fixture(scope="module")
def data():
    return small_digits()


@pytest.fixture(scope="module")
def two_versions(data, data_dir):
    """Version 1 (2 epochs) becomes champion; version 2, the same training again, ties it and is not promoted."""
    first = train_images_and_register(data, FAST, "img_pipeline")
    second = train_images_and_register(data, FAST, "img_pipeline")
    return first, second


def test_first_version_promoted_a_tie_is_not(two_versions, settings):
    first, second = two_versions
    assert (first.version, first.promoted, first.champion_score) == ("1", True, None)
    assert (second.version, second.promoted) == ("2", False)
    assert second.metrics == first.metrics  # same seed, same data: the same model
    assert second.champion_score == pytest.approx(first.metrics["test_accuracy"])
    client = MlflowClient(settings.tracking_uri)
    assert str(client.get_model_version_by_alias("img_pipeline", CHAMPION).version) == "1"
    tags = client.get_model_version("img_pipeline", "2").tags
    assert tags["decision"] == "kept champion" and tags["task"] == "classify" and tags["variant"] == "cnn"
    assert (tags["seqcast.task"], tags["seqcast.variant"], model_kind(tags)) == ("classify", "cnn", CLASSIFIER)
    assert float(tags["challenger_accuracy"]) == pytest.approx(first.metrics["test_accuracy"], rel=1e-5)
    assert float(tags["champion_accuracy"]) == pytest.approx(first.metrics["test_accuracy"], rel=1e-5)


def test_a_more_accurate_challenger_is_promoted(two_versions, data):
    better = train_images_and_register(data, replace(FAST, epochs=12, learning_rate=5e-3), "img_pipeline")
    assert better.metrics["test_accuracy"] > two_versions[0].metrics["test_accuracy"]
    assert (better.version, better.promoted) == ("3", True)


def test_run_holds_params_curves_and_artifacts(two_versions, settings, data):
    first, _ = two_versions
    client = MlflowClient(settings.tracking_uri)
    run = client.get_run(first.run_id)
    params = run.data.params
    assert (params["variant"], params["epochs"], params["data"], params["input_shape"]) == (
        "cnn",
        "2",
        "digits_small",
        "8x8x1",
    )
    assert (params["classes"], params["color_mode"], params["data_images"]) == ("4", "grayscale", "100")
    [dataset] = run.inputs.dataset_inputs  # the data as an MLflow dataset input: the UI's Datasets column
    assert (dataset.dataset.name, dataset.dataset.digest) == ("digits_small", data.fingerprint)
    assert run.data.tags["seqcast.task"] == "classify"
    assert all(np.isfinite(v) for v in run.data.metrics.values())
    assert set(first.metrics) >= {"train_accuracy", "best_val_accuracy", "test_accuracy", "test_loss"}
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert [m.step for m in client.get_metric_history(first.run_id, key)] == [0, 1]
    artifacts = {a.path for a in client.list_artifacts(first.run_id)}
    assert {
        "confusion_matrix.png",
        "misclassified.png",
        "training_curves.png",
        "confusion_matrix.json",
        "classifier_config.json",
    } <= artifacts
    confusion = json.loads(Path(client.download_artifacts(first.run_id, "confusion_matrix.json")).read_text())
    matrix = np.array(confusion["matrix"])
    assert matrix.sum() == 20 and np.trace(matrix) == round(first.metrics["test_accuracy"] * 20)


def test_registered_model_keeps_shape_normalisation_and_labels(two_versions, data):
    classifier = Classifier.load(download(model_uri("img_pipeline", version="1")) / "artifacts" / CLASSIFIER_ARTIFACT)
    assert classifier.config() | {"meta": {}} == {
        "variant": "cnn",
        "input_shape": [8, 8, 1],
        "color_mode": "grayscale",
        "normalisation": {"offset": 0.0, "scale": 16.0, "file_range": 255.0},
        "labels": ["0", "1", "2", "3"],
        "meta": {},
    }


def test_grid_nested_runs_heatmaps_and_best_cell(data, settings):
    grid = {"eta": [1e-3, 5e-3], "lambda": [0.0]}
    outcome = train_images_and_register(data, replace(FAST, epochs=3), "img_grid", grid=grid)
    client = MlflowClient(settings.tracking_uri)
    children = client.search_runs(
        [client.get_run(outcome.run_id).info.experiment_id], f"tags.mlflow.parentRunId = '{outcome.run_id}'"
    )
    assert sorted(c.data.params["learning_rate"] for c in children) == ["0.001", "0.005"]
    assert [(c["eta"], c["lambda"]) for c in outcome.grid] == [(1e-3, 0.0), (5e-3, 0.0)]
    artifacts = {a.path for a in client.list_artifacts(outcome.run_id)}
    assert {"train_accuracy_heatmap.png", "test_accuracy_heatmap.png", "grid.json", "confusion_matrix.png"} <= artifacts
    best = max(outcome.grid, key=lambda c: (c["best_val_accuracy"], -c["best_val_loss"]))
    tags = client.get_run(outcome.run_id).data.tags
    assert tags["seqcast.grid.best_eta"] == f"{best['eta']:g}"
    assert outcome.metrics["test_accuracy"] == best["test_accuracy"]
    assert (outcome.version, outcome.promoted) == ("1", True)


def test_same_seed_same_model(data):
    split = data.split(0.2, 0)
    a = train_candidate(data, split, replace(FAST, epochs=1))
    b = train_candidate(data, split, replace(FAST, epochs=1))
    assert a.metrics == b.metrics
    np.testing.assert_array_equal(a.test_probabilities, b.test_probabilities)


def test_pyfunc_champion_classifies_in_a_separate_process(two_versions, settings, data):
    images = data.x[:6, :, :, 0]
    script = (
        "import sys, json, mlflow, numpy as np\n"
        f"mlflow.set_tracking_uri({settings.tracking_uri!r})\n"
        "model = mlflow.pyfunc.load_model('models:/img_pipeline@champion')\n"
        "frame = model.predict(np.array(json.loads(sys.stdin.read())))\n"
        "print(json.dumps({'label': frame['label'].tolist(), 'columns': list(frame.columns)}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], input=json.dumps(images.tolist()), capture_output=True, text=True, timeout=180
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    champion = MlflowClient(settings.tracking_uri).get_model_version_by_alias("img_pipeline", CHAMPION).version
    classifier = Classifier.load(
        download(model_uri("img_pipeline", version=champion)) / "artifacts" / CLASSIFIER_ARTIFACT
    )
    expected = classifier.predict_proba(classifier.prepare_arrays(images)).argmax(axis=1)
    assert result == {
        "label": [data.labels[i] for i in expected],
        "columns": ["label", "probability", "0", "1", "2", "3"],
    }


def test_cli_trains_an_npz_and_reports(tmp_path, data_dir, capsys, data):
    path = tmp_path / "four.npz"
    np.savez(path, x=(data.x[..., 0] * 16).astype(np.uint8), y=data.y)  # 0..255 uint8, as keras.datasets ship
    code = main(["train-images", "--data", str(path), "--name", "img_cli", "--epochs", "1", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    assert "data: four, 100 images of 8x8 grayscale, 4 classes" in out
    assert "registered img_cli: version 1, promoted" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "nope"], "error: 'nope' is neither a built-in (digits) nor an existing .npz file or folder"),
        (
            ["--data", "digits", "--grid", "eta=0.1,mu=2"],
            "error: grid key 'mu' is unknown; allowed keys are eta and lambda",
        ),
        (
            ["--data", "digits", "--variant", "lstm"],
            "error: unknown variant 'lstm'; image classifiers are cnn, small_cnn",
        ),
    ],
)
def test_cli_errors_exit_2_with_the_reason(args, message, data_dir, capsys):
    assert main(["train-images", "--name", "img_cli_bad", "--quiet", *args]) == 2
    assert capsys.readouterr().err.startswith(message)
