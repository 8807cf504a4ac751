"""Versions registered before ``pipelines/`` had sub-packages still load and serve.

Each such version carries its entry script as it was then (models-from-code copies the script into the
artifact), importing ``pipelines.pyfunc_model``; this logs versions with exactly those scripts."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
from mlflow.models import ModelSignature
from mlflow.types.schema import ParamSchema, ParamSpec
from svc_helpers import call, make_settings

from pipelines import tracking
from pipelines.forecasting.pyfunc import FORECASTER_ARTIFACT
from pipelines.tracking.registry import CHAMPION, log_pyfunc_model
from pipelines.vision.classifier import Classifier
from pipelines.vision.pyfunc import CLASSIFIER_ARTIFACT
from service.app import create_app

HISTORY = [10.0, 10.5, 11.0, 10.2, 9.8, 9.5, 9.9, 10.4]
OLD_ENTRIES = {
    FORECASTER_ARTIFACT: "# The models-from-code entry MLflow runs when it loads a seqcast forecaster.\nimport mlflow\n\n"
    "from pipelines.pyfunc_model import SeqcastForecastModel\n\nmlflow.models.set_model(SeqcastForecastModel())\n",
    CLASSIFIER_ARTIFACT: "# The models-from-code entry MLflow runs when it loads a seqcast image classifier.\nimport mlflow\n\n"
    "from pipelines.pyfunc_model import SeqcastClassifierModel\n\nmlflow.models.set_model(SeqcastClassifierModel())\n",
}


def log_the_old_way(tmp_path, name: str, artifact: str, save, signature=None) -> str:
    entry = tmp_path / f"{artifact}_pyfunc_entry.py"
    entry.write_text(OLD_ENTRIES[artifact])
    _, experiment = tracking.open_experiment(name)
    with mlflow.start_run(experiment_id=experiment):
        return log_pyfunc_model(name, entry, artifact, save, signature=signature)


@pytest.fixture(scope="module")
def old_forecaster(registered, tmp_path_factory):
    version = log_the_old_way(
        tmp_path_factory.mktemp("old"),
        "svc_old_layout",
        FORECASTER_ARTIFACT,
        registered["forecasters"]["1"].save,
        ModelSignature(params=ParamSchema([ParamSpec("horizon", "long", 6)])),  # as the forecasting pipeline logs
    )
    registered["client"].set_registered_model_alias("svc_old_layout", CHAMPION, version)
    return registered["forecasters"]["1"]


def test_a_forecaster_logged_before_the_move_loads_with_pyfunc_and_serves(old_forecaster, data_dir):
    expected = old_forecaster.forecast(HISTORY, 5).tolist()
    loaded = mlflow.pyfunc.load_model(f"models:/svc_old_layout@{CHAMPION}")
    assert loaded.predict(np.array(HISTORY), params={"horizon": 5}).tolist() == expected
    app = create_app(make_settings(data_dir, preload_models=""))
    r = call(app, "POST", "/v1/forecast", json={"model": "svc_old_layout", "history": HISTORY, "horizon": 5})
    assert (r.status_code, r.json()) == (200, {"model": "svc_old_layout", "version": "1", "forecast": expected})


def test_a_classifier_logged_before_the_move_loads_with_pyfunc(registered, tmp_path):
    from models.builders import build

    model = build("small_cnn", input_shape=(8, 8, 1), classes=3)
    classifier = Classifier(
        model=model, labels=("a", "b", "c"), color_mode="grayscale", offset=0.0, scale=16.0, variant="small_cnn"
    )
    log_the_old_way(tmp_path, "svc_old_layout_cnn", CLASSIFIER_ARTIFACT, classifier.save)
    image = np.arange(64, dtype=np.float32).reshape(1, 8, 8) % 16
    frame = mlflow.pyfunc.load_model("models:/svc_old_layout_cnn/1").predict(image)
    assert list(frame.columns[:2]) == ["label", "probability"]
    assert np.allclose(frame[["a", "b", "c"]].to_numpy(), classifier.predict_proba(classifier.prepare_arrays(image)))
