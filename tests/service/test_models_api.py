"""GET /v1/models, GET /v1/models/{name}, POST /v1/models/{name}/reload (API key) through the ASGI app."""

from __future__ import annotations

import pytest
from svc_helpers import API_KEY, MODEL, call, copy_versions, make_settings

from pipelines.tracking.registry import CHAMPION
from service.app import create_app
from service.registry import RegistryReader


def test_list_models_shows_aliases_and_what_is_loaded(app, registered):
    call(app, "POST", "/v1/forecast", json={"model": MODEL, "history": [1.0] * 8, "horizon": 2})
    r = call(app, "GET", "/v1/models")
    assert r.status_code == 200
    entry = next(m for m in r.json()["models"] if m["name"] == MODEL)
    assert entry["aliases"] == {"champion": "1"}
    assert entry["latest_version"] == "2"
    assert {(e["ref"], e["version"], e["kind"]) for e in entry["loaded"]} >= {("@champion", "1", "forecaster")}


def test_get_model_lists_versions_newest_first(app, registered):
    r = call(app, "GET", f"/v1/models/{MODEL}")
    assert r.status_code == 200
    body = r.json()
    assert [v["version"] for v in body["versions"]] == ["2", "1"]
    assert [v["aliases"] for v in body["versions"]] == [[], ["champion"]]
    assert body["versions"][1]["tags"]["variant"] == "lstm"
    assert body["versions"][1]["status"] == "READY"


def test_unknown_model_is_404(app, registered):
    r = call(app, "GET", "/v1/models/no_such_model")
    assert (r.status_code, r.json()) == (
        404,
        {"detail": "no registered model named 'no_such_model'; GET /v1/models lists them"},
    )
    r = call(app, "POST", "/v1/models/no_such_model/reload", headers={"X-API-Key": API_KEY})
    assert (r.status_code, r.json()) == (
        404,
        {"detail": "no registered model named 'no_such_model'; GET /v1/models lists them"},
    )


@pytest.mark.parametrize(
    "headers, status, detail",
    [
        ({}, 401, "missing X-API-Key header; this endpoint needs the API key"),
        ({"X-API-Key": "wrong"}, 403, "wrong X-API-Key; this endpoint needs the API key"),
        ({"X-API-Key": API_KEY + "x"}, 403, "wrong X-API-Key; this endpoint needs the API key"),
        ({"X-API-Key": ""}, 401, "missing X-API-Key header; this endpoint needs the API key"),
    ],
    ids=["missing", "wrong", "longer", "empty"],
)
def test_reload_needs_the_api_key(app, registered, headers, status, detail):
    r = call(app, "POST", f"/v1/models/{MODEL}/reload", headers=headers)
    assert (r.status_code, r.json()) == (status, {"detail": detail})


def test_reload_with_the_key_reports_the_aliases(app, registered):
    call(app, "POST", "/v1/forecast", json={"model": MODEL, "history": [1.0] * 8, "horizon": 2})
    r = call(app, "POST", f"/v1/models/{MODEL}/reload", headers={"X-API-Key": API_KEY})
    assert (r.status_code, r.json()) == (
        200,
        {"name": MODEL, "changes": [{"ref": "@champion", "version": "1", "previous": "1", "changed": False}]},
    )


def test_mutating_endpoints_are_off_without_a_configured_key(registered, data_dir):
    app = create_app(make_settings(data_dir, api_key=None, preload_models=""))
    r = call(app, "POST", f"/v1/models/{MODEL}/reload", headers={"X-API-Key": "anything"})
    assert (r.status_code, r.json()) == (
        503,
        {"detail": "mutating endpoints are off: the server has no SEQCAST_API_KEY set"},
    )


def test_the_api_key_is_never_logged(app, registered, caplog):
    with caplog.at_level("DEBUG"):
        call(app, "POST", f"/v1/models/{MODEL}/reload", headers={"X-API-Key": API_KEY})
        call(app, "POST", f"/v1/models/{MODEL}/reload", headers={"X-API-Key": "wrong-key-abc"})
    assert API_KEY not in caplog.text and "wrong-key-abc" not in caplog.text


def test_the_registry_is_read_page_by_page(registered, data_dir):
    client = registered["client"]
    copy_versions(client, MODEL, "svc_paged")  # at least two models, so one a page is several pages
    every = sorted(m.name for m in client.search_registered_models(max_results=1000))
    reader = RegistryReader(client, page_size=1)  # one model a page: every page must be read
    assert sorted(m.name for m in reader.models()) == every
    assert sorted(str(v.version) for v in reader.versions(MODEL)) == ["1", "2"]
    assert reader.champions()[MODEL] == str(client.get_model_version_by_alias(MODEL, CHAMPION).version)

    app = create_app(make_settings(data_dir, preload_models=""))
    app.state.cache.registry.page_size = 1  # the routes read through the same reader
    listed = call(app, "GET", "/v1/models")
    assert listed.status_code == 200
    assert [m["name"] for m in listed.json()["models"]] == every
    detail = call(app, "GET", f"/v1/models/{MODEL}")
    assert [v["version"] for v in detail.json()["versions"]] == ["2", "1"]
