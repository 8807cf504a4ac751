"""MLflow's scoring protocol on the service (``POST /invocations``, ``POST /v1/models/NAME/invocations``) through
the ASGI app: bodies built by MLflow's own client-side helper (``mlflow.models.convert_input_example_to_serving_input``)
or as MLflow documents them, each read back by MLflow's server-side parser to prove it is one; answers are the
numbers ``POST /v1/forecast`` gives for the same model and history, in MLflow's ``{"predictions": ...}`` shape."""

from __future__ import annotations

import asyncio
import io
import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.models import convert_input_example_to_serving_input
from mlflow.pyfunc.scoring_server import infer_and_parse_data, predictions_to_json
from svc_helpers import HORIZON, MODEL, call, client_for, make_settings, until_ready

from pipelines.tracking.registry import model_uri
from service.app import create_app


@pytest.fixture(scope="module")
def history(registered):
    return registered["series"].values[:40].round(6).tolist()


def forecast(app, history, horizon, **extra) -> dict:
    r = call(app, "POST", "/v1/forecast", json={"model": MODEL, "history": history, "horizon": horizon, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def mlflow_body(kind: str, history: list[float]) -> dict:
    """An MLflow client's body for one history: a one-column frame (split: MLflow's helper; records: as its docs
    show) or a 1-D tensor (``inputs``: MLflow's helper; ``instances``: TF serving's name for it)."""
    frame = pd.DataFrame({"value": history})
    if kind == "dataframe_split":
        body = json.loads(convert_input_example_to_serving_input(frame))
    elif kind == "dataframe_records":
        body = {"dataframe_records": frame.to_dict(orient="records")}
    elif kind == "inputs":
        body = json.loads(convert_input_example_to_serving_input(np.asarray(history)))
    else:
        body = {"instances": history}
    assert list(body) == [kind]
    parsed = infer_and_parse_data(body)  # what `mlflow models serve` would hand the model
    values = parsed.to_numpy()[:, 0] if isinstance(parsed, pd.DataFrame) else np.asarray(parsed)
    assert values.tolist() == history
    return body


@pytest.mark.parametrize("kind", ["dataframe_split", "dataframe_records", "inputs", "instances"])
def test_invocations_answer_the_forecast_routes_numbers(app, history, kind):
    body = {**mlflow_body(kind, history), "params": {"model": MODEL, "horizon": 12}}
    r = call(app, "POST", "/invocations", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": forecast(app, history, 12)["forecast"]}
    assert r.headers["x-seqcast-model-version"] == "1"


@pytest.mark.parametrize("kind", ["dataframe_split", "dataframe_records", "inputs"])
def test_per_model_path_with_version_and_alias(app, history, kind):
    body = {**mlflow_body(kind, history), "params": {"horizon": 5}}
    for query, version in (("?version=2", "2"), ("?alias=champion", "1"), ("", "1")):
        r = call(app, "POST", f"/v1/models/{MODEL}/invocations{query}", json=body)
        assert r.status_code == 200, r.text
        expected = forecast(app, history, 5, **({"version": 2} if version == "2" else {}))["forecast"]
        assert r.json() == {"predictions": expected}
        assert r.headers["x-seqcast-model-version"] == version


def test_what_mlflow_serve_answers_from_the_same_model(app, registered, history):
    """The logged pyfunc's predict, serialised by MLflow's scoring server: the same JSON, to the bit."""
    pyfunc = mlflow.pyfunc.load_model(model_uri(MODEL, version="1"))
    out = io.StringIO()
    predictions_to_json(pyfunc.predict(pd.DataFrame({"value": history}), params={"horizon": 7}), out)
    body = {**mlflow_body("dataframe_split", history), "params": {"model": MODEL, "horizon": 7}}
    r = call(app, "POST", "/invocations", json=body)
    assert r.status_code == 200
    assert r.json() == json.loads(out.getvalue())


def test_horizon_defaults_to_the_trained_one(app, history):
    r = call(app, "POST", "/invocations", json={"inputs": history, "params": {"model": MODEL}})
    assert r.json() == {"predictions": forecast(app, history, HORIZON)["forecast"]}


def test_a_batch_of_rows_is_a_forecast_per_row(app, registered, history):
    rows = [history[i : i + 20] for i in (0, 5, 10)]
    expected = [forecast(app, row, 4)["forecast"] for row in rows]
    frame = pd.DataFrame(rows, columns=[f"t{i}" for i in range(20)])
    for body in (
        {"inputs": rows},
        json.loads(convert_input_example_to_serving_input(frame)),
        {"dataframe_records": frame.to_dict(orient="records")},
    ):
        r = call(app, "POST", "/invocations", json={**body, "params": {"model": MODEL, "horizon": 4}})
        assert r.status_code == 200, r.text
        assert r.json() == {"predictions": expected}


def test_levels_answer_a_record_per_step(app, history):
    expected = forecast(app, history, 3, levels=[0.8, 0.95])
    r = call(
        app,
        "POST",
        "/invocations",
        json={"inputs": history, "params": {"model": MODEL, "horizon": 3, "levels": [0.8, 0.95]}},
    )
    assert r.status_code == 200, r.text
    records = r.json()["predictions"]
    assert [rec["step"] for rec in records] == [1, 2, 3]
    assert [rec["forecast"] for rec in records] == expected["forecast"]
    for level in ("0.8", "0.95"):
        assert [rec[f"lower_{level}"] for rec in records] == expected["intervals"][level]["lower"]
        assert [rec[f"upper_{level}"] for rec in records] == expected["intervals"][level]["upper"]


def test_without_params_model_the_one_preloaded_forecaster(registered, data_dir, history):
    app = create_app(make_settings(data_dir, preload_models=MODEL))

    async def main():
        async with app.router.lifespan_context(app), client_for(app) as client:
            await until_ready(client)
            return await client.post("/invocations", json={"inputs": history, "params": {"horizon": 3}})

    r = asyncio.run(main())
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": forecast(app, history, 3)["forecast"]}


@pytest.mark.parametrize(
    "url, body, status, words",
    [
        ("/invocations", {"inputs": [1.0] * 20}, 422, "name the model: params.model"),
        ("/invocations", {"params": {"model": MODEL}}, 422, "give exactly one of dataframe_split"),
        ("/invocations", {"inputs": [1.0] * 20, "instances": [1.0] * 20}, 422, "this body has inputs, instances"),
        (
            "/invocations",
            {"inputs": [1.0] * 20, "params": {"model": MODEL, "horizon": 0}},
            422,
            "greater than or equal to 1",
        ),
        ("/invocations", {"inputs": [1.0] * 20, "params": {"model": MODEL, "window": 3}}, 422, "Extra inputs"),
        ("/invocations", {"inputs": [1.0, 2.0], "params": {"model": MODEL}}, 422, "inputs: history has 2 values"),
        (
            "/invocations",
            {"inputs": [1.0] * 9 + ["x"], "params": {"model": MODEL}},
            422,
            "inputs[9]: Input should be a valid number",
        ),
        (
            "/invocations",
            {"inputs": [[1.0] * 10, [1.0] * 9], "params": {"model": MODEL}},
            422,
            "inputs[1] has 9 values and inputs[0] 10",
        ),
        ("/invocations", {"inputs": [1.0, [1.0]], "params": {"model": MODEL}}, 422, "not both"),
        (
            "/invocations",
            {"dataframe_split": {"columns": ["value"], "data": [[1.0]] * 9 + [[None]]}, "params": {"model": MODEL}},
            422,
            "dataframe_split.data[9][0]: Input should be a valid number",
        ),
        (
            "/invocations",
            {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0]]}, "params": {"model": MODEL}},
            422,
            "dataframe_split.data[0] has 1 values and there are 2 columns",
        ),
        (
            "/invocations",
            {"dataframe_records": [{"value": 1.0}, {"v": 2.0}], "params": {"model": MODEL}},
            422,
            "dataframe_records[1] has the columns ['v']",
        ),
        (
            "/invocations",
            {"inputs": [1.0] * 20, "params": {"model": MODEL, "horizon": 101}},
            422,
            "horizon is 101; allowed: 1 to 100",
        ),
        ("/invocations", {"inputs": [1.0] * 20, "params": {"model": "no_such_model"}}, 404, "no_such_model"),
        (f"/v1/models/{MODEL}/invocations?version=99", {"inputs": [1.0] * 20}, 404, "99"),
        (
            f"/v1/models/{MODEL}/invocations",
            {"inputs": [1.0] * 20, "params": {"model": "other"}},
            422,
            "params.model is 'other'",
        ),
        (
            f"/v1/models/{MODEL}/invocations?version=1",
            {"inputs": [1.0] * 20, "params": {"alias": "champion"}},
            422,
            "not both",
        ),
        (  # the rule between params' fields is the schema's: a list of issues, at params
            "/invocations",
            {"inputs": [1.0] * 20, "params": {"model": MODEL, "alias": "champion", "version": 1}},
            422,
            '[{"type": "alias_or_version", "loc": ["body", "params"], "msg": "give either alias or version, not both"}]',
        ),
    ],
)
def test_bad_inputs_are_4xx_naming_what_is_wrong(app, url, body, status, words):
    r = call(app, "POST", url, json=body)
    assert r.status_code == status, r.text
    assert words in json.dumps(r.json()["detail"])


def test_another_content_type_is_a_415(app):
    r = call(app, "POST", "/invocations", content=b"value\n1.0\n", headers={"content-type": "text/csv"})
    assert r.status_code == 415
    assert "application/json" in r.json()["detail"]
