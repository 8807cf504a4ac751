"""GET /health, /ready, /metrics and the OpenAPI docs."""

from __future__ import annotations

import asyncio
import time

import pytest
from svc_helpers import MODEL, call, client_for, make_settings, until_ready

from service.app import create_app


def test_health(app):
    r = call(app, "GET", "/health")
    assert (r.status_code, r.json()) == (200, {"status": "ok"})


def test_ready_after_the_startup_models_load(registered, data_dir):
    app = create_app(make_settings(data_dir, preload_models=MODEL))
    r = call(app, "GET", "/ready")  # lifespan not started: nothing preloaded yet
    assert (r.status_code, r.json()) == (503, {"detail": "still loading the startup models (SEQCAST_PRELOAD_MODELS)"})

    async def main():
        async with app.router.lifespan_context(app), client_for(app) as client:
            deadline = time.monotonic() + 60
            while (r := await client.get("/ready")).status_code != 200:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            return r

    r = asyncio.run(main())
    assert r.json()["status"] == "ready"
    assert {(m["model"], m["ref"], m["version"]) for m in r.json()["models"]} >= {(MODEL, "@champion", "1")}


def test_not_ready_without_models(registered, data_dir):
    app = create_app(make_settings(data_dir, preload_models=""))

    async def main():
        async with app.router.lifespan_context(app), client_for(app) as client:
            deadline = time.monotonic() + 10
            while (r := await client.get("/ready")).json()["detail"].startswith("still loading"):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            return r

    r = asyncio.run(main())
    assert (r.status_code, r.json()) == (
        503,
        {"detail": "no model is loaded; register one (seqcast train) or forecast with a registered model"},
    )


def test_metrics_count_requests_by_route_and_series_by_version(app, registered):
    call(app, "POST", "/v1/forecast", json={"model": MODEL, "history": [1.0] * 8, "horizon": 2})
    call(app, "POST", "/v1/forecast", json={"model": MODEL, "history": [1.0], "horizon": 2})
    r = call(app, "GET", "/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert 'seqcast_http_requests_total{method="POST",route="/v1/forecast",status="200"}' in r.text
    assert 'seqcast_http_requests_total{method="POST",route="/v1/forecast",status="422"}' in r.text
    assert f'seqcast_forecast_series_total{{model="{MODEL}",version="1"}}' in r.text
    assert 'seqcast_model_loads_total{kind="forecaster",model="svc_sine"}' in r.text
    assert "seqcast_http_request_seconds_bucket" in r.text


def test_openapi_and_docs(app):
    r = call(app, "GET", "/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    assert set(paths) >= {
        "/v1/forecast",
        "/v1/forecast/batch",
        "/v1/models",
        "/v1/models/{name}",
        "/v1/models/{name}/reload",
        "/health",
        "/ready",
        "/metrics",
    }
    assert call(app, "GET", "/docs").status_code == 200


def test_unknown_path_and_method_are_json_4xx(app):
    r = call(app, "GET", "/v1/nothing")
    assert (r.status_code, r.json()) == (404, {"detail": "Not Found"})
    r = call(app, "GET", "/v1/forecast")
    assert (r.status_code, r.json()) == (405, {"detail": "Method Not Allowed"})


def test_a_request_id_is_taken_from_the_client_or_made_and_always_returned(app):
    r = call(app, "GET", "/health", headers={"X-Request-ID": "job-42.step:3"})
    assert (r.status_code, r.headers["x-request-id"]) == (200, "job-42.step:3")
    made = call(app, "GET", "/health").headers["x-request-id"]
    assert len(made) == 16 and made != call(app, "GET", "/health").headers["x-request-id"]
    # not a short token: never echoed back into headers and logs, a new one is made
    odd = call(app, "GET", "/v1/nothing", headers={"X-Request-ID": "x" * 200})
    assert odd.status_code == 404 and len(odd.headers["x-request-id"]) == 16


def test_json_log_lines_carry_the_request_id_of_the_request_being_handled():
    import json
    import logging

    from service.logs import REQUEST_ID, JsonLines, RequestIdFilter

    record = logging.LogRecord("service.cache", logging.WARNING, __file__, 1, "loaded %s", ("sine",), None)
    token = REQUEST_ID.set("abc123")
    try:
        RequestIdFilter().filter(record)
    finally:
        REQUEST_ID.reset(token)
    line = json.loads(JsonLines().format(record))
    assert {k: line[k] for k in ("level", "logger", "message", "request_id")} == {
        "level": "WARNING",
        "logger": "service.cache",
        "message": "loaded sine",
        "request_id": "abc123",
    }
    assert line["time"].endswith("+00:00")
    RequestIdFilter().filter(record)  # outside a request: no id
    assert "request_id" not in json.loads(JsonLines().format(record))


def test_ready_is_degraded_not_down_while_the_registry_is_unreachable(registered, data_dir):
    app = create_app(make_settings(data_dir, preload_models=MODEL))
    cache = app.state.cache

    async def main():
        async with app.router.lifespan_context(app), client_for(app) as client:
            await until_ready(client)
            cache.registry.client = type(cache.registry.client)(
                "http://127.0.0.1:9", "http://127.0.0.1:9"
            )  # nothing listens there
            await asyncio.to_thread(cache.refresh)
            down = await client.get("/ready")
            forecast = await client.post("/v1/forecast", json={"model": MODEL, "history": [1.0] * 8, "horizon": 2})
            return down, forecast

    down, forecast = asyncio.run(main())
    assert down.status_code == 200
    assert (down.json()["status"], down.json()["registry"]) == ("degraded", "unreachable")
    assert down.json()["registry_error"].startswith("the model registry failed: ")
    assert forecast.status_code == 200  # the loaded model serves on


def _samples(text: str) -> dict[tuple, float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_show_the_retraining_passes_and_the_build_after_a_real_pass(app, registered, data_dir):
    import platform
    from importlib.metadata import version

    from pipelines.retraining.passes import run_pass

    r = call(app, "GET", "/metrics")
    assert r.status_code == 200
    before = _samples(r.text)
    # a real pass over the served model: it has no stored series to retrain on, so it is skipped
    summary = run_pass([MODEL], settings=make_settings(data_dir), workers=1)
    assert [(x.name, x.status) for x in summary.results] == [(MODEL, "skipped")]
    r = call(app, "GET", "/metrics")
    assert r.status_code == 200
    after = _samples(r.text)
    run = registered["client"].get_run(summary.run_id)
    start, end = run.info.start_time / 1000, run.info.end_time / 1000
    took = (run.info.end_time - run.info.start_time) / 1000

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after[key] - before.get(key, 0.0)

    assert after[("seqcast_build_info", (("python", platform.python_version()), ("version", version("seqcast"))))] == 1
    assert after[("seqcast_retrain_facts_readable", ())] == 1
    assert {d: grew("seqcast_retrain_series_total", decision=d) for d in ("promoted", "kept", "skipped", "failed")} == {
        "promoted": 0,
        "kept": 0,
        "skipped": 1,
        "failed": 0,
    }
    assert {s: grew("seqcast_retrain_passes_total", status=s) for s in ("finished", "failed", "killed")} == {
        "finished": 1,
        "failed": 0,
        "killed": 0,
    }
    assert grew("seqcast_retrain_pass_duration_seconds_count") == 1
    assert grew("seqcast_retrain_pass_duration_seconds_sum") == pytest.approx(summary.seconds)
    assert {k[0]: v for k, v in after.items() if k[0].startswith("seqcast_retrain_last") and not k[1]} == {
        "seqcast_retrain_last_pass_start_timestamp_seconds": start,
        "seqcast_retrain_last_pass_end_timestamp_seconds": end,
        "seqcast_retrain_last_pass_duration_seconds": took,
        "seqcast_retrain_last_success_timestamp_seconds": end,
    }
    assert after[("seqcast_retrain_pass_running", ())] == 0
    assert after[("seqcast_retrain_last_pass_status", (("status", "finished"),))] == 1


def test_metrics_say_so_when_the_passes_cannot_be_read(registered, data_dir):
    from mlflow.tracking import MlflowClient

    app = create_app(make_settings(data_dir, preload_models=""))
    app.state.cache.registry.client = MlflowClient("http://127.0.0.1:9", "http://127.0.0.1:9")  # nothing listens there
    r = call(app, "GET", "/metrics")
    assert r.status_code == 200
    samples = _samples(r.text)
    assert samples[("seqcast_retrain_facts_readable", ())] == 0
    assert not [k for k in samples if k[0].startswith("seqcast_retrain_") and k[0] != "seqcast_retrain_facts_readable"]
    assert any(k[0] == "seqcast_build_info" for k in samples)  # the app's own metrics are still there
