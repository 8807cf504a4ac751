"""The spine end to end on the embedded MLflow store: train -> track -> register -> promote only if better."""

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from pipelines.forecasting.pipeline import best_free_score, train_and_register, train_candidate
from pipelines.forecasting.training import TrainConfig
from pipelines.tracking import tags
from pipelines.tracking.registry import CHAMPION, version_by_alias

FAST = dict(epochs=3, units=8, lookback=8, horizon=6, seed=1)


@pytest.fixture(scope="module")
def two_versions(data_dir, tiny_series):
    first = train_and_register(tiny_series, TrainConfig(variant="gru", learning_rate=1e-2, **FAST), "spine")
    # a deliberately worse setting: one unit, a learning rate too small to move it
    second = train_and_register(
        tiny_series,
        TrainConfig(variant="simple_rnn", **{**FAST, "units": 1, "epochs": 1}, learning_rate=1e-5),
        "spine",
    )
    return first, second


def test_first_version_promoted_worse_second_kept(two_versions, settings):
    first, second = two_versions
    assert (first.version, first.promoted, first.champion_score) == ("1", True, None)
    assert second.version == "2" and second.promoted is False
    assert second.champion_score == pytest.approx(first.metrics["test_mase"], rel=1e-6)
    assert second.metrics["test_mase"] > first.metrics["test_mase"]

    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    assert str(client.get_model_version_by_alias("spine", CHAMPION).version) == "1"
    tags = client.get_model_version("spine", "2").tags
    # worse than the champion and than seasonal naive: the free forecast's gate answers first
    assert tags["decision"] == "below baseline"
    assert float(tags["baseline_mase"]) == pytest.approx(best_free_score(second.metrics), rel=1e-5)
    assert float(tags["challenger_mase"]) == pytest.approx(second.metrics["test_mase"], rel=1e-5)
    assert float(tags["champion_mase"]) == pytest.approx(first.metrics["test_mase"], rel=1e-5)
    assert client.get_model_version("spine", "1").tags["decision"] == "promoted"


def test_every_version_and_its_run_carry_the_models_facts(two_versions, settings):
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    for outcome, variant in zip(two_versions, ("gru", "simple_rnn"), strict=True):
        version, run = client.get_model_version("spine", outcome.version), client.get_run(outcome.run_id)
        facts = {
            tags.TASK: "forecast",
            tags.VARIANT: variant,
            tags.SERIES: "tiny",
            tags.STORED: "false",  # a series given in process, not read from the store
            tags.DECISION: outcome.decision,
        }
        assert {k: run.data.tags.get(k) for k in facts} == facts
        assert {k: version.tags.get(k) for k in facts if k != tags.DECISION} == {
            k: v for k, v in facts.items() if k != tags.DECISION
        }
        assert version.tags[tags.RECIPE] == run.data.tags[tags.RECIPE]
        assert json.loads(version.tags[tags.RECIPE])["variant"] == variant
        assert (version.tags["task"], version.tags["variant"], version.tags["decision"]) == (
            "forecast",
            variant,
            outcome.decision,
        )
        assert tags.model_kind(version.tags) == tags.FORECASTER
        assert tags.trained_series(run.data.tags, run.data.params) is None  # retraining reads the model's name


def test_run_holds_params_metrics_and_artifacts(two_versions, settings):
    first, _ = two_versions
    client = MlflowClient(settings.tracking_uri)
    run = client.get_run(first.run_id)
    params = run.data.params
    assert params["variant"] == "gru" and params["lookback"] == "8" and params["horizon"] == "6"
    assert params["seed"] == "1" and params["data_length"] == "120" and len(params["data_fingerprint"]) == 16
    for key in (
        "test_mae",
        "test_rmse",
        "test_smape",
        "test_mase",
        "baseline_seasonal_naive_mase",
        "baseline_naive_mase",
    ):
        assert np.isfinite(run.data.metrics[key])
    assert len(client.get_metric_history(first.run_id, "loss")) == 3
    assert len(client.get_metric_history(first.run_id, "val_loss")) == 3
    assert len(client.get_metric_history(first.run_id, "test_mase_by_step")) == 6
    names = {a.path for a in client.list_artifacts(first.run_id)}
    assert {"loss_curve.png", "forecast_vs_actual.png", "window_config.json"} <= names
    config = json.loads(
        Path(mlflow.artifacts.download_artifacts(run_id=first.run_id, artifact_path="window_config.json")).read_text()
    )
    assert config["lookback"] == 8 and config["scaler"]["kind"] == "standard"


def test_runs_carry_what_a_user_compares_them_by(two_versions, settings, tiny_series):
    first, second = two_versions
    runs = mlflow.search_runs(experiment_names=["spine"], output_format="list")
    assert {r.info.run_id for r in runs} == {first.run_id, second.run_id}
    for run in runs:
        [dataset] = run.inputs.dataset_inputs
        assert (dataset.dataset.name, dataset.dataset.digest) == ("tiny", tiny_series.fingerprint)
        assert json.loads(dataset.dataset.source) == {"tags": {"source": "builtin:tiny"}}
        assert (run.data.tags["seqcast.series"], run.data.tags["seqcast.task"]) == ("tiny", "forecast")
        assert all(np.isfinite(v) for v in run.data.metrics.values()), run.data.metrics
    assert "champion_mase" not in {r.info.run_id: r for r in runs}[first.run_id].data.metrics  # no champion yet
    info = mlflow.models.get_model_info("models:/spine/1")
    assert info.signature.inputs.to_dict() == [{"type": "double", "required": True}]
    assert info.signature.outputs.to_dict() == [{"type": "double", "required": True}]
    assert info.signature.params.to_dict() == [{"name": "horizon", "type": "long", "default": 6, "shape": None}]
    assert info.saved_input_example_info is not None


def test_a_version_worse_than_a_free_forecast_is_registered_not_served(data_dir, settings, tiny_series):
    """The forced case: one epoch at a tiny learning rate loses to seasonal naive on the same folds."""
    hopeless = TrainConfig(variant="lstm", **{**FAST, "epochs": 1, "units": 2}, learning_rate=1e-6)
    first = train_and_register(tiny_series, hopeless, "hopeless")
    assert first.metrics["test_mase"] > first.metrics["baseline_seasonal_naive_mase"]
    assert (first.version, first.promoted, first.decision) == ("1", False, "below baseline")
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    assert version_by_alias(client, "hopeless", CHAMPION) is None
    tags = client.get_model_version("hopeless", "1").tags
    assert (tags["decision"], tags["champion_mase"]) == ("below baseline", "none")
    assert float(tags["baseline_mase"]) == pytest.approx(first.metrics["baseline_seasonal_naive_mase"], rel=1e-5)
    assert "champion_mase" not in client.get_run(first.run_id).data.metrics  # no champion: no metric, not NaN

    insisted = train_and_register(tiny_series, hopeless, "hopeless", promote_anyway=True)
    assert (insisted.version, insisted.promoted, insisted.decision) == ("2", True, "promoted")
    assert str(version_by_alias(client, "hopeless", CHAMPION).version) == "2"


def test_same_seed_same_metrics(tiny_series):
    config = TrainConfig(variant="lstm", **FAST).resolved(120, 12, None)
    a = train_candidate(tiny_series, config).result.summary()
    b = train_candidate(tiny_series, config).result.summary()
    assert a == b


def test_pyfunc_champion_predicts_in_a_separate_process(two_versions, settings, tiny_series):
    script = (
        "import sys, json, mlflow, numpy as np\n"
        f"mlflow.set_tracking_uri({settings.tracking_uri!r})\n"
        "model = mlflow.pyfunc.load_model('models:/spine@champion')\n"
        "history = json.loads(sys.stdin.read())\n"
        "print(json.dumps(model.predict(history, params={'horizon': 5}).tolist()))\n"
    )
    history = tiny_series.values[:100].tolist()
    out = subprocess.run(
        [sys.executable, "-c", script], input=json.dumps(history), capture_output=True, text=True, timeout=180
    )
    assert out.returncode == 0, out.stderr[-2000:]
    forecast = json.loads(out.stdout.strip().splitlines()[-1])
    from pipelines.forecasting.forecaster import load_forecaster

    expected = load_forecaster("models:/spine@champion").forecast(history, 5)
    np.testing.assert_allclose(forecast, expected, rtol=1e-6)
