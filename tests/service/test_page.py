"""``GET /v1/models/{name}/scores`` (exact bodies, read back from MLflow here) and the page's static files, through
the ASGI app. The page itself runs in a real browser in test_page_browser.py."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from svc_helpers import DIGITS, MODEL, call, copy_versions, make_settings

from service.app import create_app


@pytest.fixture(scope="module")
def app(registered, digits, data_dir):
    return create_app(make_settings(data_dir, preload_models=""))


def expected_version(client, name: str, version: str, aliases: list[str], metric: str) -> dict:
    """What the endpoint should say of one version, straight from the registry and the version's run."""
    found = client.get_model_version(name, version)
    run = client.get_run(found.run_id).data
    metrics = run.metrics
    return {
        "version": version,
        "aliases": aliases,
        "created_at": datetime.fromtimestamp(found.creation_timestamp / 1000, UTC).isoformat(),
        "run_id": found.run_id,
        "variant": found.tags.get("variant"),
        "horizon": int(run.params["horizon"]) if metric == "mase" else None,
        "score": metrics[f"test_{metric}"],
        "baselines": {
            b: metrics[f"baseline_{b}_{metric}"] for b in ("drift", "naive", "seasonal_naive") if metric == "mase"
        },
        "decision": found.tags.get("decision"),
    }


@pytest.mark.parametrize(
    "name, kind, metric, higher_is_better",
    [(MODEL, "forecaster", "mase", False), (DIGITS, "classifier", "accuracy", True)],
)
def test_scores_are_each_versions_test_score_beside_the_baselines(
    app, registered, name, kind, metric, higher_is_better
):
    client = registered["client"]
    r = call(app, "GET", f"/v1/models/{name}/scores")
    assert (r.status_code, r.json()) == (
        200,
        {
            "name": name,
            "kind": kind,
            "metric": metric,
            "higher_is_better": higher_is_better,
            "aliases": {"champion": "1"},
            "versions": [
                expected_version(client, name, "2", [], metric),
                expected_version(client, name, "1", ["champion"], metric),
            ],
        },
    )


def test_limit_keeps_the_newest_versions_and_every_aliased_one(app, registered):
    client = registered["client"]
    name = copy_versions(client, MODEL, "svc_page_limit")  # versions 1 (@champion) and 2, the same runs as MODEL's
    client.create_model_version(name, client.get_model_version(MODEL, "2").source)  # version 3, version 2's run
    r = call(app, "GET", f"/v1/models/{name}/scores?limit=1")
    assert r.status_code == 200
    body = r.json()
    assert [(v["version"], v["aliases"]) for v in body["versions"]] == [("3", []), ("1", ["champion"])]
    assert [v["score"] for v in body["versions"]] == [
        client.get_run(client.get_model_version(MODEL, v).run_id).data.metrics["test_mase"] for v in ("2", "1")
    ]
    r = call(app, "GET", f"/v1/models/{name}/scores?limit=2")
    assert [v["version"] for v in r.json()["versions"]] == ["3", "2", "1"]


def test_a_model_whose_runs_logged_no_score_has_no_kind(app, registered):
    client = registered["client"]
    client.create_registered_model("svc_page_unscored")
    run = client.create_run(client.get_run(client.get_model_version(MODEL, "1").run_id).info.experiment_id)
    client.create_model_version(
        "svc_page_unscored", client.get_model_version(MODEL, "1").source, run_id=run.info.run_id
    )
    r = call(app, "GET", "/v1/models/svc_page_unscored/scores")
    body = r.json()
    assert (r.status_code, body["kind"], body["metric"], body["higher_is_better"], body["aliases"]) == (
        200,
        None,
        None,
        None,
        {},
    )
    assert [(v["version"], v["run_id"], v["horizon"], v["score"], v["baselines"]) for v in body["versions"]] == [
        ("1", run.info.run_id, None, None, {})
    ]


def test_unknown_model_is_404_and_a_bad_limit_422(app, registered):
    r = call(app, "GET", "/v1/models/no_such_model/scores")
    assert (r.status_code, r.json()) == (
        404,
        {"detail": "no registered model named 'no_such_model'; GET /v1/models lists them"},
    )
    r = call(app, "GET", f"/v1/models/{MODEL}/scores?limit=0")
    assert (r.status_code, r.json()) == (
        422,
        {
            "detail": [
                {
                    "type": "greater_than_equal",
                    "loc": ["query", "limit"],
                    "msg": "Input should be greater than or equal to 1",
                    "ctx": {"ge": 1},
                }
            ]
        },
    )


def test_the_page_and_its_files_are_served(app):
    r = call(app, "GET", "/")
    assert (r.status_code, r.headers["content-type"]) == (200, "text/html; charset=utf-8")
    assert '<script type="module" src="/static/app.js"></script>' in r.text
    for path, kind in (("/static/app.js", "text/javascript"), ("/static/style.css", "text/css")):
        r = call(app, "GET", path)
        assert (r.status_code, r.headers["content-type"].split(";")[0]) == (200, kind)
    r = call(app, "GET", "/static/nothing.js")
    assert (r.status_code, r.json()) == (404, {"detail": "Not Found"})
    assert "/" not in call(app, "GET", "/openapi.json").json()["paths"]  # the page is not part of the API


PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY = {"x-content-type-options": "nosniff", "x-frame-options": "DENY", "referrer-policy": "no-referrer"}


@pytest.mark.parametrize("path", ["/", "/static/app.js", "/static/style.css", "/static/nothing.js"])
def test_the_page_runs_only_its_own_files(app, path):
    r = call(app, "GET", path)
    assert r.status_code == (404 if "nothing" in path else 200)
    assert {k: r.headers[k] for k in SECURITY} == SECURITY
    assert r.headers["content-security-policy"] == PAGE_POLICY


def test_the_page_has_no_inline_script_or_style(app):
    html = call(app, "GET", "/").text
    assert "<style" not in html and " style=" not in html and "on" + "click=" not in html
    assert [tag for tag in html.split("<script")[1:] if 'src="/static/' not in tag.split(">")[0]] == []


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/health", 200), ("GET", "/v1/models/no_such_model", 404), ("POST", "/v1/forecast", 422)],
)
def test_api_answers_are_nosniff_too(app, method, path, status):
    r = call(app, method, path, json={} if method == "POST" else None)
    assert r.status_code == status
    assert {k: r.headers[k] for k in SECURITY} == SECURITY
