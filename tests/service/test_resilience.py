"""Serving that holds: a slow or absent registry, models the warm-up or safe_mode refuse, values a model cannot
represent, shapes not compiled yet, unexpected errors, and bounded caches. Each test went red on the code
before these fixes (the registry lookups shared the request threads, the warm-up forecast zeros, ...)."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import threading
import time
from contextlib import contextmanager

import keras
import mlflow
import pytest
import uvicorn
from svc_helpers import API_KEY, HORIZON, LOOKBACK, MODEL, call, client_for, copy_versions, make_settings

from pipelines import tracking
from pipelines.forecasting.forecaster import MAX_DEVIATIONS, Forecaster, load_forecaster
from pipelines.forecasting.pipeline import PYFUNC_ENTRY, train_and_register
from pipelines.forecasting.pyfunc import FORECASTER_ARTIFACT
from pipelines.forecasting.scaling import Scaler
from pipelines.forecasting.training import TrainConfig
from pipelines.tracking.registry import CHAMPION, log_pyfunc_model, model_uri
from service.app import create_app

HISTORY = [10.0, 10.5, 11.0, 10.2, 9.8, 9.5, 9.9, 10.4]
LOCKED_FOR = 3.0  # seconds the registry is held locked; lookups then wait on SQLite's busy timeout


@contextmanager
def registry_locked(app):
    """An exclusive lock on the MLflow SQLite store ``app`` reads, as a long write by another process holds it."""
    uri = app.state.settings.tracking_uri  # the app's own: MLFLOW_TRACKING_URI, else the data dir's store
    assert uri.startswith("sqlite:///"), uri
    db = sqlite3.connect(uri.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False)
    db.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        db.execute("ROLLBACK")
        db.close()


async def until(check, seconds: float = 20) -> None:
    """Wait until ``check()`` holds (a slow machine takes a while to get requests through the app)."""
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


async def until_ready(client, seconds: float = 50) -> None:
    """Poll ``/ready`` until the preloaded models are served (their load and compiles are no request's)."""
    deadline = time.monotonic() + seconds
    while (ready := await client.get("/ready")).status_code != 200:
        assert time.monotonic() < deadline, ready.json()
        await asyncio.sleep(0.05)


def run(coro, limit: float = 60):
    return asyncio.run(asyncio.wait_for(coro, limit))


# --- 1. a slow registry never stalls cached traffic --------------------------------------------------------


def test_cached_models_and_ops_answer_while_the_registry_is_locked(registered, data_dir):
    # preloaded: the load (and its compile) is not a request, so a slow machine is not held to the 1 s timeout
    app = create_app(make_settings(data_dir, preload_models=MODEL, registry_timeout_seconds=1.0))
    body = {"model": MODEL, "history": HISTORY, "horizon": HORIZON}
    expected = registered["forecasters"]["1"].forecast(HISTORY, HORIZON).tolist()

    async def main():
        async with app.router.lifespan_context(app), client_for(app) as client:
            await until_ready(client)
            assert (await client.post("/v1/forecast", json=body)).status_code == 200  # cached
            with registry_locked(app):
                misses = [asyncio.create_task(client.post("/v1/forecast", json={**body, "alias": f"nope{i}"}))
                          for i in range(45)]  # fmt: skip
                await until(lambda: len(app.state.cache._inflight) >= 45)  # every miss waits on the registry
                # all of these finish while the lock is still held: none waits on the registry
                cached = [await client.post("/v1/forecast", json=body) for _ in range(20)]
                ops = [await client.get(path) for path in ("/health", "/metrics")]
                inflight = len(app.state.cache._inflight)
                missed = await asyncio.gather(*misses)
            return cached, ops, missed, inflight

    cached, ops, missed, inflight = run(main())
    assert [(r.status_code, r.json()["forecast"]) for r in cached] == [(200, expected)] * 20
    assert [r.status_code for r in ops] == [200, 200]
    assert inflight == 45  # one lookup per key, not one per request
    assert {(r.status_code, r.json()["detail"]) for r in missed} == {
        (503, "the model registry did not answer within 1 s (SEQCAST_REGISTRY_TIMEOUT_SECONDS); retry shortly")
    }
    assert missed[0].headers["retry-after"] == "5"


def test_concurrent_misses_for_one_key_share_one_lookup_and_404s_are_remembered(registered, data_dir):
    app = create_app(make_settings(data_dir, preload_models="", not_found_ttl_seconds=60, max_cached_misses=10))
    cache = app.state.cache
    body = {"model": MODEL, "history": HISTORY, "horizon": 2, "alias": "missing"}
    detail = f"model '{MODEL}' has no alias @missing; its aliases are: @champion"

    async def main():
        async with client_for(app) as client:
            with registry_locked(app):
                waiting = [asyncio.create_task(client.post("/v1/forecast", json=body)) for _ in range(10)]
                await until(lambda: cache._inflight)
                await asyncio.sleep(0.2)  # the other nine join it meanwhile
                shared = (len(cache._inflight), cache.pool._queue.qsize())
            first = await asyncio.gather(*waiting)
            with registry_locked(app):  # a remembered 404 needs no registry
                again = await client.post("/v1/forecast", json=body)
            for i in range(30):  # unknown aliases: the memory of them stays bounded
                await client.post("/v1/forecast", json={**body, "alias": f"other{i}"})
            return shared, first, again

    shared, first, again = run(main())
    assert shared == (1, 0)
    assert {(r.status_code, r.json()["detail"]) for r in first} == {(404, detail)}
    assert (again.status_code, again.json()) == (404, {"detail": detail})
    assert len(cache._refused) == 10 and not cache._inflight


# --- 2. models with the log transform serve; out-of-domain values are 422s ---------------------------------


@pytest.fixture(scope="module")
def log_model(registered):
    config = TrainConfig(variant="lstm", epochs=1, units=4, lookback=LOOKBACK, horizon=HORIZON, transform="log")
    # one epoch loses to the free forecasts; served all the same: this test is about the log transform
    outcome = train_and_register(registered["series"], config, "svc_log", promote_anyway=True)
    forecaster = load_forecaster(model_uri("svc_log", version=outcome.version))
    assert forecaster.scaler.kind == "log"
    return forecaster


def test_a_log_scaled_model_serves_and_refuses_values_it_cannot_take(log_model, data_dir):
    app = create_app(make_settings(data_dir, preload_models="svc_log"))

    async def main():
        async with app.router.lifespan_context(app), client_for(app) as client:
            await until_ready(client)
            ok = await client.post("/v1/forecast", json={"model": "svc_log", "history": HISTORY, "horizon": 4})
            zero = await client.post(
                "/v1/forecast", json={"model": "svc_log", "history": [*HISTORY[:-1], 0.0], "horizon": 4}
            )
            return ok, zero

    ok, zero = run(main())
    assert (ok.status_code, ok.json()["forecast"]) == (200, log_model.forecast(HISTORY, 4).tolist())
    assert (zero.status_code, zero.json()) == (
        422,
        {"detail": "history[7] is 0; this model log-transforms its input, so only values > 0 are allowed"},
    )


# --- 4. values the model cannot represent are refused, not answered as if ordinary -------------------------


@pytest.mark.parametrize("values", [[1e6] * 12, [1e20] * 12, [1e308] * 12, [1.0] * 11 + [1e308]])
def test_values_far_outside_the_training_range_are_422(app, registered, values):
    forecaster = registered["forecasters"]["1"]
    lo, hi = forecaster.value_range()
    r = call(app, "POST", "/v1/forecast", json={"model": MODEL, "history": values, "horizon": 3})
    first = next(i for i, v in enumerate(values) if v > hi and i >= len(values) - LOOKBACK)
    assert (r.status_code, r.json()) == (422, {"detail": (
        f"history[{first}] is {values[first]:g}, outside the range this model can represent: {lo:.6g} to {hi:.6g} "
        f"(its training data's mean +- {MAX_DEVIATIONS:g} standard deviations)"
    )})  # fmt: skip


# --- 3. one error path: bounds are 422s; anything unexpected a JSON 500 on a connection that stays open ----


def test_a_version_too_large_for_the_registry_is_422(app):
    r = call(
        app,
        "POST",
        "/v1/forecast",
        json={"model": MODEL, "history": HISTORY, "horizon": 2, "version": 9223372036854775808},
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "version"]
    assert r.json()["detail"][0]["msg"] == "Input should be less than or equal to 2147483647"


def _http(sock: socket.socket, request: bytes) -> tuple[int, bytes]:
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    )
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split(b" ")[1]), body


def test_an_unexpected_error_is_a_json_500_and_the_connection_stays_usable(registered, data_dir, caplog):
    app = create_app(make_settings(data_dir, preload_models=""))

    @app.get("/boom")
    async def boom():
        raise RuntimeError("a bug")

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            status, body = _http(sock, b"GET /boom HTTP/1.1\r\nhost: t\r\n\r\n")
            again, health = _http(sock, b"GET /health HTTP/1.1\r\nhost: t\r\n\r\n")  # the same connection
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    import json

    error = json.loads(body)
    assert (status, again, json.loads(health)) == (500, 200, {"status": "ok"})
    assert error == {
        "detail": f"internal error; the server logged it as request {error['request_id']}",
        "request_id": error["request_id"],
    }
    logged = [r for r in caplog.records if r.name == "service.errors"]
    assert logged and error["request_id"] in logged[-1].getMessage() and logged[-1].exc_info[0] is RuntimeError


# --- 5. the startup preload retries until the registry answers --------------------------------------------


def test_ready_turns_200_once_the_registry_comes_back(registered, data_dir):
    app = create_app(
        make_settings(data_dir, preload_models=MODEL, registry_timeout_seconds=0.5, preload_retry_max_seconds=0.5)
    )

    async def main():
        lock = registry_locked(app)
        lock.__enter__()
        locked = True
        try:
            async with app.router.lifespan_context(app), client_for(app) as client:
                await asyncio.sleep(LOCKED_FOR)
                while_down = await client.get("/ready")
                lock.__exit__(None, None, None)
                locked = False
                deadline = time.monotonic() + 30
                while (after := await client.get("/ready")).status_code != 200:
                    assert time.monotonic() < deadline, after.json()
                    await asyncio.sleep(0.05)
                return while_down, after
        finally:
            if locked:
                lock.__exit__(None, None, None)

    while_down, after = run(main())
    assert while_down.status_code == 503
    assert while_down.json()["detail"].startswith(
        f"the champion of {MODEL} is not served yet ({MODEL}: the model registry"
    )
    assert after.json()["status"] == "ready"


# --- 6. a version that cannot be served is reported, never silently skipped -------------------------------


@pytest.fixture(scope="module")
def refused_version(registered):
    """svc_refused: versions 1 and 2 as MODEL's, and version 3 holding a Lambda layer (safe_mode refuses it)."""
    client = registered["client"]
    name = copy_versions(client, MODEL, "svc_refused")
    window = keras.Input((LOOKBACK, 1))
    model = keras.Model(window, keras.layers.Lambda(lambda w: w[:, -1, :])(window))
    forecaster = Forecaster(model=model, scaler=Scaler(), lookback=LOOKBACK, variant="lambda")
    _, experiment = tracking.open_experiment(name)
    with mlflow.start_run(experiment_id=experiment):
        version = log_pyfunc_model(name, PYFUNC_ENTRY, FORECASTER_ARTIFACT, forecaster.save)
    assert version == "3"
    return name


def test_a_refused_champion_keeps_the_old_version_serving_and_says_why(refused_version, registered, data_dir):
    name = refused_version
    client = registered["client"]
    app = create_app(make_settings(data_dir, preload_models=""))
    body = {"model": name, "history": HISTORY, "horizon": 2}
    try:
        assert call(app, "POST", "/v1/forecast", json=body).json()["version"] == "1"
        client.set_registered_model_alias(name, CHAMPION, "3")
        reload = call(app, "POST", f"/v1/models/{name}/reload", headers={"X-API-Key": API_KEY})
        detail = call(app, "GET", f"/v1/models/{name}").json()
        still = call(app, "POST", "/v1/forecast", json=body)

        restarted = create_app(make_settings(data_dir, preload_models=name, preload_retry_max_seconds=0.2))

        async def after_restart():
            async with restarted.router.lifespan_context(restarted), client_for(restarted) as http:
                deadline = time.monotonic() + 30
                while name not in restarted.state.preload.failures:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.05)
                return (
                    await http.get("/ready"),
                    await http.post("/v1/forecast", json=body),
                    await http.get(f"/v1/models/{name}"),
                )

        ready, refused, described = run(after_restart())
    finally:
        client.set_registered_model_alias(name, CHAMPION, "1")
    [change] = reload.json()["changes"]
    error = change.pop("error")
    assert (reload.status_code, change) == (
        200,
        {"ref": "@champion", "version": "1", "previous": "1", "changed": False},
    )
    assert error.startswith(f"model '{name}' version 3 cannot be served: ") and "Lambda" in error
    assert detail["aliases"] == {"champion": "3"} and detail["errors"] == {
        "@champion": {"version": "3", "error": error}
    }
    assert [(e["ref"], e["version"]) for e in detail["loaded"]] == [("1", "1"), ("@champion", "1")]
    assert (still.status_code, still.json()["version"]) == (200, "1")
    assert (
        ready.status_code == 503
        and ready.json()["detail"] == f"the champion of {name} is not served yet ({name}: {error})"
    )
    assert (refused.status_code, refused.json()) == (503, {"detail": error})
    assert described.json()["errors"] == {"@champion": {"version": "3", "error": error}}  # without a reload


# --- 7. compiling a new shape never runs on the event loop -------------------------------------------------


def test_a_new_horizon_compiles_off_the_event_loop(registered, data_dir):
    app = create_app(make_settings(data_dir, preload_models="", max_horizon=1000))
    finished = []

    async def main():
        async with client_for(app) as client:
            await client.post("/v1/forecast", json={"model": MODEL, "history": HISTORY, "horizon": 2})
            forecaster = app.state.cache.peek(MODEL).model
            usual = forecaster.is_compiled(HORIZON)  # compiled at load
            assert not forecaster.is_compiled(700)

            async def forecast():
                r = await client.post("/v1/forecast", json={"model": MODEL, "history": HISTORY, "horizon": 700})
                finished.append(("forecast", r.status_code))

            async def health():
                await asyncio.sleep(0.05)  # the forecast has started compiling
                r = await client.get("/health")
                finished.append(("health", r.status_code))

            await asyncio.gather(forecast(), health())
            return usual

    assert run(main()) is True
    assert finished == [("health", 200), ("forecast", 200)]


def test_registry_timeouts_log_one_warning_and_no_traceback(registered, data_dir, caplog):
    import gc
    import logging

    app = create_app(make_settings(data_dir, preload_models="", registry_timeout_seconds=0.5, not_found_ttl_seconds=0))
    cache = app.state.cache
    body = {"model": MODEL, "history": HISTORY, "horizon": 2}

    async def main():
        async with client_for(app) as client:
            with registry_locked(app):
                missed = await asyncio.gather(
                    *(client.post("/v1/forecast", json={**body, "alias": f"gone{i}"}) for i in range(40))
                )
            await until(lambda: not cache._inflight)  # each lookup ends in a 404 no request waits for any more
            gc.collect()  # an abandoned future whose exception nobody took is reported as it is collected
            await asyncio.sleep(0.1)
            return missed

    caplog.set_level(logging.WARNING)
    missed = run(main())
    assert {(r.status_code, r.json()["detail"]) for r in missed} == {
        (503, "the model registry did not answer within 0.5 s (SEQCAST_REGISTRY_TIMEOUT_SECONDS); retry shortly")
    }
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "service.errors",
            "WARNING",
            "refused: registry unavailable (503): the model registry did not answer within 0.5 s "
            "(SEQCAST_REGISTRY_TIMEOUT_SECONDS); retry shortly",
        )
    ]
    assert all(r.exc_info is None for r in caplog.records)
