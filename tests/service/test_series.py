"""The series store over REST through the ASGI app: ingest, read, delete, /v1/forecast from the store, and a
locked, silent or contended store (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pandas as pd
import pytest
from pg_helpers import pg_database
from sqlalchemy.engine import make_url
from svc_helpers import API_KEY, LOOKBACK, MODEL, call, client_for, make_settings

KEY = {"X-API-Key": API_KEY}
JSON = {"content-type": "application/json"}
START = pd.Timestamp("2024-01-01")


@pytest.fixture(scope="module")
def app(registered, data_dir, tmp_path_factory):
    """An app of its own with a store of its own (the session app's store stays empty)."""
    from service.app import create_app

    url = f"sqlite:///{tmp_path_factory.mktemp('series-store') / 'series.db'}"
    return create_app(make_settings(data_dir, database_url=url, max_body_bytes=200_000, max_batch_points=1000))


def hours(n: int, first: int = 0) -> list[str]:
    return [t.isoformat() for t in pd.date_range(START + pd.Timedelta(hours=first), periods=n, freq="h")]


def post(app, name, body, **kwargs):
    return call(app, "POST", f"/v1/series/{name}/observations", json=body, headers=KEY, **kwargs)


def test_first_batch_creates_the_series_and_a_resent_one_changes_nothing(app):
    body = {"timestamps": hours(5), "values": [1.0, 2.0, 3.0, 4.0, 5.0]}
    r = post(app, "first", body)
    assert (r.status_code, r.json()) == (
        201,
        {"series": "first", "created": True, "freq": "h", "inserted": 5, "updated": 0, "unchanged": 0},
    )
    r = post(app, "first", body)
    assert (r.status_code, r.json()) == (
        200,
        {"series": "first", "created": False, "freq": "h", "inserted": 0, "updated": 0, "unchanged": 5},
    )
    r = post(app, "first", {"timestamps": hours(3, 3), "values": [4.0, 50.0, 6.0]})
    assert r.json() == {"series": "first", "created": False, "freq": "h", "inserted": 1, "updated": 1, "unchanged": 1}


@pytest.mark.parametrize(
    "body, detail",
    [
        (
            {"timestamps": hours(3, 5), "values": [1.0, None, 3.0]},
            "values[1] is None; values must be finite numbers (none missing)",
        ),
        (
            {"timestamps": [*hours(2, 5), "2024-01-01T07:30:00"], "values": [1.0, 2.0, 3.0]},
            "timestamps[2] (2024-01-01 07:30:00) is off the series' h grid; timestamps must be evenly spaced "
            "(gaps are allowed)",
        ),
        (
            {"timestamps": [*hours(2, 5), "soon"], "values": [1.0, 2.0, 3.0]},
            "timestamps[2] holds 'soon'; timestamps must be dates or ISO-8601 times from 1677-09-22 to 2262-04-11",
        ),
        (
            {"timestamps": hours(1001), "values": [1.0] * 1001},
            "the batch has 1001 observations; at most 1000 are allowed per batch",
        ),
        (
            {"timestamps": hours(2, 5), "values": [1.0]},
            "timestamps has 2 entries and values 1; give one value per timestamp",
        ),
        (
            {"timestamps": hours(2, 5), "values": [1.0, 2.0], "freq": "D"},
            "freq is 'D', but series 'bad' is at 'h' (set by its first batch)",
        ),
        (
            {"timestamps": hours(2, 5), "values": [1.0, 2.0], "freq": "0h"},
            "freq is '0h'; allowed are pandas frequencies with a positive step shorter than 292 years, "
            "e.g. D, h, 15min, W, MS, QS",
        ),
    ],
)
def test_a_bad_batch_is_a_422_naming_it_and_stores_nothing(app, body, detail):
    post(app, "bad", {"timestamps": hours(3), "values": [1.0, 2.0, 3.0]})
    r = post(app, "bad", body)
    assert (r.status_code, r.json()) == (422, {"detail": detail})
    page = call(app, "GET", "/v1/series/bad/observations").json()
    assert page == {"series": "bad", "timestamps": hours(3), "values": [1.0, 2.0, 3.0], "next_cursor": None}


def test_reads_past_the_timestamp_range_are_a_422(app):
    post(app, "far", {"timestamps": hours(3), "values": [1.0, 2.0, 3.0]})
    r = call(app, "GET", f"/v1/series/far/observations?cursor={'9' * 20}")
    assert (r.status_code, r.json()) == (
        422,
        {"detail": f"cursor is '{'9' * 20}'; pass the next_cursor of the previous page"},
    )
    r = call(app, "GET", "/v1/series/far/observations?start=9999-01-01T00:00:00")
    assert (r.status_code, r.json()) == (
        422,
        {"detail": "start is 9999-01-01T00:00:00; allowed are times from 1677-09-22 to 2262-04-11"},
    )


def test_schema_errors_and_names(app):
    r = post(app, "s", {"timestamps": hours(1), "values": ["x"]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "values", 0]
    r = post(app, "no%20good", {"timestamps": hours(2), "values": [1.0, 2.0]})
    assert r.json() == {
        "detail": "series name 'no good' is not allowed; names are 1 to 128 letters, digits, '_', '.' or '-', "
        "starting with a letter or digit"
    }
    r = call(app, "POST", "/v1/series/s/observations", content=b"<x/>", headers={**KEY, "content-type": "text/xml"})
    assert r.status_code == 415


def _not_a(number: str, *indexes: int) -> dict:
    msg, type_ = {"valid": ("Input should be a valid number", "float_type")}.get(
        number, ("Input should be a finite number", "finite_number")
    )
    return {"detail": [{"type": type_, "loc": ["body", "values", i], "msg": msg} for i in indexes]}


@pytest.mark.parametrize(
    "values, detail",
    [
        ('["1.5", "2"]', _not_a("valid", 0, 1)),
        ('[1, "2"]', _not_a("valid", 1)),
        ("[true, false]", _not_a("valid", 0, 1)),
        ("[1, false]", _not_a("valid", 1)),
        ("[1, NaN]", _not_a("finite", 1)),
    ],
    ids=["strings", "string", "bools", "false", "nan-token"],
)
def test_json_values_must_be_numbers_as_in_a_forecast_history(app, values, detail):
    """Strings and booleans were stored as numbers ("1.5" -> 1.5, true -> 1.0); ints still are numbers."""
    assert post(app, "strict", {"timestamps": hours(2), "values": [1, 2]}).status_code in (200, 201)
    body = f'{{"timestamps": {json.dumps(hours(2, 2))}, "values": {values}}}'
    r = call(app, "POST", "/v1/series/strict/observations", content=body, headers={**KEY, **JSON})
    assert (r.status_code, r.json()) == (422, detail)
    page = call(app, "GET", "/v1/series/strict/observations").json()
    assert page == {"series": "strict", "timestamps": hours(2), "values": [1.0, 2.0], "next_cursor": None}


def test_writes_need_the_api_key(app):
    body = {"timestamps": hours(2), "values": [1.0, 2.0]}
    r = call(app, "POST", "/v1/series/k/observations", json=body)
    assert (r.status_code, r.json()) == (401, {"detail": "missing X-API-Key header; this endpoint needs the API key"})
    r = call(app, "DELETE", "/v1/series/k", headers={"X-API-Key": "wrong"})
    assert (r.status_code, r.json()) == (403, {"detail": "wrong X-API-Key; this endpoint needs the API key"})
    assert call(app, "GET", "/v1/series/k").status_code == 404  # nothing was written


def test_csv_ingest_list_describe_page_delete(app):
    csv = "timestamp,value\n2024-03-01,1.5\n2024-03-02,2.5\n2024-03-04,4.5\n"
    r = call(app, "POST", "/v1/series/daily/observations", content=csv, headers={**KEY, "content-type": "text/csv"})
    assert (r.status_code, r.json()) == (
        201,
        {"series": "daily", "created": True, "freq": "D", "inserted": 3, "updated": 0, "unchanged": 0},
    )
    described = {
        "name": "daily",
        "freq": "D",
        "length": 3,
        "first": "2024-03-01T00:00:00",
        "last": "2024-03-04T00:00:00",
        "model": None,
    }
    assert call(app, "GET", "/v1/series/daily").json() == described
    assert described in call(app, "GET", "/v1/series").json()["series"]
    page = call(app, "GET", "/v1/series/daily/observations?limit=2&start=2024-03-01T12:00:00").json()
    assert page == {
        "series": "daily",
        "timestamps": ["2024-03-02T00:00:00", "2024-03-04T00:00:00"],
        "values": [2.5, 4.5],
        "next_cursor": None,
    }
    page = call(app, "GET", "/v1/series/daily/observations?limit=2").json()
    assert page["values"] == [1.5, 2.5] and page["next_cursor"]
    rest = call(app, "GET", f"/v1/series/daily/observations?limit=2&cursor={page['next_cursor']}").json()
    assert (rest["values"], rest["next_cursor"]) == ([4.5], None)
    r = call(app, "DELETE", "/v1/series/daily", headers=KEY)
    assert (r.status_code, r.json()) == (200, {"series": "daily", "deleted": 3})
    r = call(app, "GET", "/v1/series/daily")
    assert (r.status_code, r.json()) == (
        404,
        {"detail": "no series named 'daily'; GET /v1/series or seqcast series lists them"},
    )


def test_forecast_from_the_store_matches_the_forecast_with_history(app, registered):
    values = registered["series"].values[:40].round(6).tolist()
    stamps = hours(40)
    assert post(app, MODEL, {"timestamps": stamps, "values": values}).status_code == 201
    described = call(app, "GET", f"/v1/series/{MODEL}").json()
    assert described["model"] == {"name": MODEL, "version": "1"} and described["length"] == 40

    from_store = call(app, "POST", "/v1/forecast", json={"model": MODEL, "horizon": 6, "levels": [0.8]})
    with_history = call(
        app,
        "POST",
        "/v1/forecast",
        json={"model": MODEL, "horizon": 6, "levels": [0.8], "history": values, "timestamps": stamps},
    )
    assert from_store.status_code == with_history.status_code == 200
    assert from_store.json() == with_history.json()
    assert from_store.json()["forecast"] == registered["forecasters"]["1"].forecast(values, 6).tolist()
    assert from_store.json()["timestamps"] == hours(6, 40)
    # by name, and in a batch
    by_name = call(app, "POST", "/v1/forecast", json={"model": MODEL, "series": MODEL, "horizon": 6, "levels": [0.8]})
    assert by_name.json() == from_store.json()
    batch = call(app, "POST", "/v1/forecast/batch", json={"requests": [{"model": MODEL, "horizon": 6}]})
    assert batch.json()["results"][0]["timestamps"] == hours(6, 40)


@pytest.mark.parametrize(
    "request_body, status, detail",
    [
        (
            {"model": MODEL, "series": "short", "horizon": 3},
            422,
            f"series 'short' has 3 stored values; model '{MODEL}' version 1 needs at least {LOOKBACK} (its lookback)",
        ),
        (
            {"model": MODEL, "series": "nowhere", "horizon": 3},
            404,
            "no series named 'nowhere'; GET /v1/series or seqcast series lists them",
        ),
        (
            {"model": MODEL, "series": "short", "history": [1.0] * 8, "horizon": 3},
            422,
            [{"type": "history_or_series", "loc": ["body"], "msg": "give either history or series, not both"}],
        ),
        (
            {"model": MODEL, "series": "gappy", "horizon": 3},
            422,
            "series 'gappy' has no value at 2024-01-01T07:00:00, within the last 6 steps the model reads; "
            "store it (POST /v1/series/gappy/observations) or send history",
        ),
    ],
)
def test_forecast_from_the_store_errors(app, request_body, status, detail):
    post(app, "short", {"timestamps": hours(3), "values": [1.0, 2.0, 3.0]})
    post(app, "gappy", {"timestamps": [*hours(7), *hours(3, 8)], "values": [1.0] * 10})
    r = call(app, "POST", "/v1/forecast", json=request_body)
    assert (r.status_code, r.json()) == (status, {"detail": detail})


def test_the_documented_statuses_of_ingest_are_the_ones_it_answers(app):
    """No 400: the body is read by the route, and an unreadable one is a 422."""
    responses = app.openapi()["paths"]["/v1/series/{name}/observations"]["post"]["responses"]
    assert sorted(responses) == ["200", "201", "401", "403", "413", "415", "422", "503"]


# --- the store under faults: every store request ends within SEQCAST_STORE_TIMEOUT_SECONDS with a 503 -------------
BOUND = 2.0  # the store's timeout in these tests; the database's own waits end at 0.8 of it


def store_app(data_dir, url: str, timeout: float = BOUND):
    from service.app import create_app

    settings = make_settings(
        data_dir, database_url=url, store_timeout_seconds=timeout, preload_models="", store_workers=8
    )
    return create_app(settings)


def timed(app, method: str, url: str, **kwargs) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    r = call(app, method, url, **kwargs)
    return r, time.monotonic() - started


def busy(dialect: str) -> dict:
    return {"detail": f"the series store ({dialect}) is busy: a lock or statement waited over 1.6 s; try again later"}


@pytest.fixture
def pg_url(pg_available):
    if pg_available:
        pytest.skip(pg_available)
    with pg_database() as url:
        yield url


def test_a_locked_postgresql_store_answers_503_within_the_bound(registered, data_dir, pg_url):
    """A second connection holds ACCESS EXCLUSIVE on the observations table (every store request waited
    22-24 s for such a lock, then answered 200): reads, writes and a forecast from the store answer 503 with
    Retry-After within the bound; the write wrote nothing."""
    import psycopg

    app = store_app(data_dir, pg_url)
    values = registered["series"].values[:40].round(6).tolist()
    assert post(app, MODEL, {"timestamps": hours(40), "values": values}).status_code == 201
    forecast = {"model": MODEL, "horizon": 3}
    assert call(app, "POST", "/v1/forecast", json=forecast).status_code == 200  # the model is loaded
    with psycopg.connect(make_url(pg_url).set(drivername="postgresql").render_as_string(False)) as holder:
        holder.execute("LOCK TABLE observations IN ACCESS EXCLUSIVE MODE")
        for method, url, body in [
            ("GET", f"/v1/series/{MODEL}/observations", None),
            ("POST", f"/v1/series/{MODEL}/observations", {"timestamps": hours(1, 40), "values": [1.0]}),
            ("POST", "/v1/forecast", forecast),
        ]:
            r, took = timed(app, method, url, json=body, headers=KEY)
            assert (r.status_code, r.json(), r.headers["retry-after"]) == (503, busy("postgresql"), "5"), url
            assert took < BOUND + 0.5, (url, took)
        holder.rollback()
    r = call(app, "GET", f"/v1/series/{MODEL}")
    assert (r.status_code, r.json()["length"]) == (200, 40)


def test_a_write_locked_sqlite_store_answers_503_within_the_bound_and_reads_go_on(data_dir, tmp_path):
    """Another connection holds SQLite's write lock (a write waited 30 s for it): a write is a 503 within the
    bound, reads are served meanwhile (WAL), and the write goes through once the lock is let go."""
    path = tmp_path / "series.db"
    app = store_app(data_dir, f"sqlite:///{path}")
    assert post(app, "w", {"timestamps": hours(2), "values": [1.0, 2.0]}).status_code == 201
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        r, took = timed(
            app, "POST", "/v1/series/w/observations", json={"timestamps": hours(1, 2), "values": [3.0]}, headers=KEY
        )
        assert (r.status_code, r.json(), r.headers["retry-after"]) == (503, busy("sqlite"), "5")
        assert took < BOUND + 0.5
        r = call(app, "GET", "/v1/series/w/observations")
        assert (r.status_code, r.json()["values"]) == (200, [1.0, 2.0])
    finally:
        holder.rollback()
        holder.close()
    r = post(app, "w", {"timestamps": hours(1, 2), "values": [3.0]})
    assert (r.status_code, r.json()["inserted"]) == (200, 1)


@contextmanager
def silent_server() -> Iterator[int]:
    """A TCP server on a free port that accepts every connection and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # closed
                return
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        for conn in held:
            conn.close()


def test_a_database_that_accepts_and_never_answers_is_a_503_within_the_bound(data_dir):
    """The request was still waiting at 60 s: the service's own wait on the store thread ends it."""
    with silent_server() as port:
        app = store_app(data_dir, f"postgresql+psycopg://seqcast@127.0.0.1:{port}/store", timeout=1.0)
        for method, url in [("GET", "/v1/series"), ("GET", "/v1/series/x/observations")]:
            r, took = timed(app, method, url)
            assert (r.status_code, r.json(), r.headers["retry-after"]) == (
                503,
                {"detail": "the series store (postgresql) did not answer within 1 s; try again later"},
                "5",
            )
            assert took < 1.5, (url, took)


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_concurrent_first_batches_answer_201_created_once(data_dir, tmp_path, pg_available, dialect):
    """Eight first batches of a new series at once (on PostgreSQL four answered 201 created: true)."""
    if dialect == "postgresql" and pg_available:
        pytest.skip(pg_available)

    async def go(app) -> list[httpx.Response]:
        async with client_for(app) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        "/v1/series/race/observations",
                        json={"timestamps": hours(2, i), "values": [1.0, 2.0]},
                        headers=KEY,
                    )
                    for i in range(8)
                )
            )

    with contextlib.ExitStack() as stack:
        url = f"sqlite:///{tmp_path / 'race.db'}" if dialect == "sqlite" else stack.enter_context(pg_database())
        app = store_app(data_dir, url, timeout=60)  # the writes queue on SQLite's lock: a loaded machine is slow
        answers = asyncio.run(go(app))
        assert sorted((r.status_code, r.json().get("created")) for r in answers) == [(200, False)] * 7 + [(201, True)]
        app.state.store.close()
