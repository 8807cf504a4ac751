"""POST /v1/forecast and /v1/forecast/batch through the ASGI app: exact bodies, every bad input a clear 4xx."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
from svc_helpers import API_KEY, MODEL, call

JSON = {"content-type": "application/json"}


def raw(rest: str) -> str:
    """A JSON body as text, so it can hold NaN or Infinity or stop short: MODEL's name, then ``rest``."""
    return f'{{"model": "{MODEL}", {rest}'


@pytest.fixture(scope="module")
def history(registered):
    return registered["series"].values[:40].round(6).tolist()


def expected(registered, version, history, horizon):
    return registered["forecasters"][version].forecast(history, horizon).tolist()


def test_forecast_from_champion_names_the_version(app, registered, history):
    r = call(app, "POST", "/v1/forecast", json={"model": MODEL, "history": history, "horizon": 6})
    assert r.status_code == 200
    assert r.json() == {"model": MODEL, "version": "1", "forecast": expected(registered, "1", history, 6)}


@pytest.mark.parametrize(
    "selector, version", [({"version": 2}, "2"), ({"version": 1}, "1"), ({"alias": "champion"}, "1")]
)
def test_forecast_by_version_or_alias(app, registered, history, selector, version):
    r = call(app, "POST", "/v1/forecast", json={"model": MODEL, "history": history, "horizon": 12, **selector})
    assert r.status_code == 200
    assert r.json() == {"model": MODEL, "version": version, "forecast": expected(registered, version, history, 12)}


def test_horizon_up_to_the_maximum(app, registered, history):
    r = call(app, "POST", "/v1/forecast", json={"model": MODEL, "history": history, "horizon": 100})
    assert r.status_code == 200
    assert r.json()["forecast"] == expected(registered, "1", history, 100)


@pytest.mark.parametrize(
    "start, freq, first, last",
    [
        ("2024-01-01", "D", "2024-02-10T00:00:00", "2024-02-12T00:00:00"),
        ("2020-01-01", "MS", "2023-05-01T00:00:00", "2023-07-01T00:00:00"),
        ("2024-03-01T00:00:00+00:00", "h", "2024-03-02T16:00:00+00:00", "2024-03-02T18:00:00+00:00"),
    ],
)
def test_timestamps_continue_the_history_frequency(app, registered, history, start, freq, first, last):
    stamps = [t.isoformat() for t in pd.date_range(start, periods=len(history), freq=freq)]
    r = call(app, "POST", "/v1/forecast", json={"model": MODEL, "history": history, "timestamps": stamps, "horizon": 3})
    assert r.status_code == 200
    body = r.json()
    assert body["forecast"] == expected(registered, "1", history, 3)
    assert body["timestamps"][0] == first and body["timestamps"][-1] == last and len(body["timestamps"]) == 3


def test_intervals_from_the_backtest_residuals(app, registered, history):
    forecaster = registered["forecasters"]["1"]
    point = forecaster.forecast(history, 4)
    bands = forecaster.intervals(point, [0.8, 0.95])
    r = call(
        app, "POST", "/v1/forecast", json={"model": MODEL, "history": history, "horizon": 4, "levels": [0.8, 0.95]}
    )
    assert r.status_code == 200
    assert r.json() == {
        "model": MODEL,
        "version": "1",
        "forecast": point.tolist(),
        "intervals": {
            "0.8": {"lower": bands[0.8][0].tolist(), "upper": bands[0.8][1].tolist()},
            "0.95": {"lower": bands[0.95][0].tolist(), "upper": bands[0.95][1].tolist()},
        },
        "calibrated_steps": 6,
    }


def test_intervals_past_the_calibrated_horizon_grow_like_sqrt_h(app, registered, history):
    """MODEL was backtested 6 steps ahead: a 12-step forecast with levels is answered, the first 6 widths as a
    6-step forecast's, then the 6th width times sqrt(h / 6), and the body says where calibration stopped."""
    forecaster = registered["forecasters"]["1"]
    point = forecaster.forecast(history, 12)
    short = forecaster.intervals(point[:6], [0.8])[0.8]
    r = call(app, "POST", "/v1/forecast", json={"model": MODEL, "history": history, "horizon": 12, "levels": [0.8]})
    assert r.status_code == 200
    body = r.json()
    assert body["calibrated_steps"] == 6 and body["forecast"] == point.tolist()
    lower, upper = np.asarray(body["intervals"]["0.8"]["lower"]), np.asarray(body["intervals"]["0.8"]["upper"])
    width = (upper - lower) / 2
    np.testing.assert_allclose(width[:6], (short[1] - short[0]) / 2, rtol=1e-12)
    np.testing.assert_allclose(width[6:], width[5] * np.sqrt(np.arange(7, 13) / 6), rtol=1e-12)
    np.testing.assert_allclose((upper + lower) / 2, point, rtol=1e-12)


NEAR_1 = [10, 10.5, 10.9, 11, 10.8, 10.4, 10, 9.6]  # the fuzzer's history


@pytest.mark.parametrize("route", ["/v1/forecast", "/v1/forecast/batch"])
def test_a_level_too_close_to_1_is_refused_before_forecasting(app, registered, route):
    """0.9999999999999999 (the float just under 1) made an infinite interval, answered 200 with null bounds;
    levels stop at 0.999999, the last whose key names it (0.9999996 would be "1")."""
    one = {"model": MODEL, "history": NEAR_1, "horizon": 3, "levels": [0.9999999999999999]}
    body, loc = (one, ["body"]) if route == "/v1/forecast" else ({"requests": [one]}, ["body", "requests", 0])
    r = call(app, "POST", route, json=body)
    assert (r.status_code, r.json()) == (
        422,
        _error([*loc, "levels", 0], "Input should be less than or equal to 0.999999", "less_than_equal", le=0.999999),
    )


def test_the_highest_level_has_finite_bounds(app, registered):
    r = call(app, "POST", "/v1/forecast", json={"model": MODEL, "history": NEAR_1, "horizon": 3, "levels": [0.999999]})
    assert r.status_code == 200
    band = r.json()["intervals"]["0.999999"]
    assert np.isfinite(band["lower"]).all() and np.isfinite(band["upper"]).all()  # no nulls
    assert (np.asarray(band["lower"]) < np.asarray(band["upper"])).all()


@pytest.mark.parametrize(
    "levels, i, j, key",
    [
        ([0.8, 0.80000000001], 0, 1, "0.8"),
        ([0.5, 0.95, 0.95], 1, 2, "0.95"),
        ([0.1234567, 0.1234568], 0, 1, "0.123457"),
    ],
    ids=["near", "repeated", "7-digits"],
)
def test_levels_answered_under_one_key_are_refused(app, registered, levels, i, j, key):
    """Interval keys are levels to 6 significant digits: two levels with one key were merged into one interval."""
    one = {"model": MODEL, "history": NEAR_1, "horizon": 3, "levels": levels}
    msg = (
        f"levels[{i}] ({levels[i]!r}) and levels[{j}] ({levels[j]!r}) would both be answered as interval "
        f"{key!r}; give levels that differ in their first 6 significant digits"
    )
    r = call(app, "POST", "/v1/forecast", json=one)
    assert (r.status_code, r.json()) == (422, _error(["body", "levels"], msg, "levels_collide"))
    r = call(app, "POST", "/v1/forecast/batch", json={"requests": [{**one, "levels": [0.8]}, one]})
    assert (r.status_code, r.json()) == (422, _error(["body", "requests", 1, "levels"], msg, "levels_collide"))


def test_batch_is_grouped_and_matches_single_forecasts(app, registered, history):
    items = [
        {"model": MODEL, "history": history, "horizon": 5},
        {"model": MODEL, "history": history[:-3], "horizon": 5},
        {"model": MODEL, "history": history[:-1], "horizon": 7, "version": 2},
    ]
    r = call(app, "POST", "/v1/forecast/batch", json={"requests": items})
    # one batched call per (version, horizon); batch size changes float32 rounding, so compare with the same batch
    group = registered["forecasters"]["1"].forecast_batch([history, history[:-3]], 5)
    assert r.status_code == 200
    assert r.json() == {
        "results": [
            {"model": MODEL, "version": "1", "forecast": group[0].tolist()},
            {"model": MODEL, "version": "1", "forecast": group[1].tolist()},
            {"model": MODEL, "version": "2", "forecast": expected(registered, "2", history[:-1], 7)},
        ]
    }
    np.testing.assert_allclose(group[0], expected(registered, "1", history, 5), rtol=1e-5)


def _error(loc, msg, type_, **ctx):
    item = {"type": type_, "loc": loc, "msg": msg}
    if ctx:
        item["ctx"] = ctx
    return {"detail": [item]}


SHORT = "history has {n} values; this model needs at least 6"


@pytest.mark.parametrize(
    "body, status, detail",
    [
        ({"model": MODEL, "history": [], "horizon": 3}, 422, SHORT.format(n=0)),
        ({"model": MODEL, "history": [1.0, 2.0], "horizon": 3}, 422, SHORT.format(n=2)),
        ({"model": MODEL, "horizon": 3}, 422, "history is required: a list of at least 6 numbers, oldest first"),
        ({"model": MODEL, "history": [1.0] * 8, "horizon": 101}, 422, "horizon is 101; allowed: 1 to 100"),
        (
            {"model": MODEL, "history": [1.0] * 8, "horizon": 3, "alias": "champion", "version": 1},
            422,
            # a rule between the body's fields: the schema's, in the list form of schema errors
            [{"type": "alias_or_version", "loc": ["body"], "msg": "give either alias or version, not both"}],
        ),
        (
            {"model": MODEL, "history": [1.0] * 8, "timestamps": ["2024-01-01"], "horizon": 3},
            422,
            [
                {
                    "type": "timestamps_length",
                    "loc": ["body"],
                    "msg": "timestamps has 1 entries and history 8; give one timestamp per history value",
                }
            ],
        ),
        (
            {
                "model": MODEL,
                "history": [1.0] * 3 + [2.0] * 5,
                "horizon": 3,
                "timestamps": ["2024-01-01", "2024-01-02", "2024-01-02", *[f"2024-01-0{d}" for d in range(3, 8)]],
            },
            422,
            "timestamps must be strictly increasing; timestamps[2] is not after timestamps[1]",
        ),
        (
            {
                "model": MODEL,
                "history": [1.0] * 8,
                "horizon": 3,
                "timestamps": [*[f"1677-09-2{d}" for d in range(2, 9)], "2262-04-10"],  # in order, 585 years apart
            },
            422,
            "3 steps of D after 2262-04-10T00:00:00 pass the last time timestamps can hold (2262-04-11); "
            "ask for a shorter horizon",
        ),
        (
            {"model": "no_such_model", "history": [1.0] * 8, "horizon": 3},
            404,
            "no registered model named 'no_such_model'; GET /v1/models lists them",
        ),
        (
            {"model": MODEL, "history": [1.0] * 8, "horizon": 3, "version": 99},
            404,
            f"model '{MODEL}' has no version 99; GET /v1/models/{MODEL} lists them",
        ),
        (
            {"model": MODEL, "history": [1.0] * 8, "horizon": 3, "alias": "staging"},
            404,
            f"model '{MODEL}' has no alias @staging; its aliases are: @champion",
        ),
    ],
    ids=[
        "empty",
        "too-short",
        "missing",
        "horizon-over-max",
        "alias-and-version",
        "timestamps-length",
        "timestamps-order",
        "timestamps-centuries-apart",
        "unknown-model",
        "unknown-version",
        "unknown-alias",
    ],
)
def test_bad_input_is_a_clear_4xx(app, registered, body, status, detail):
    r = call(app, "POST", "/v1/forecast", json=body)
    assert (r.status_code, r.json()) == (status, {"detail": detail})


@pytest.mark.parametrize(
    "raw, expected_body",
    [
        (
            raw('"history": [1, NaN, 3, 4, 5, 6], "horizon": 3}'),
            _error(["body", "history", 1], "Input should be a finite number", "finite_number"),
        ),
        (
            raw('"history": [1, 2, 3, 4, 5, Infinity], "horizon": 3}'),
            _error(["body", "history", 5], "Input should be a finite number", "finite_number"),
        ),
        (
            raw('"history": [-Infinity, 2, 3, 4, 5, 6], "horizon": 3}'),
            _error(["body", "history", 0], "Input should be a finite number", "finite_number"),
        ),
        (
            raw('"history": [1, "NaN", 3, 4, 5, 6], "horizon": 3}'),
            _error(["body", "history", 1], "Input should be a valid number", "float_type"),
        ),
        (
            raw('"history": [1, true, 3, 4, 5, 6], "horizon": 3}'),
            _error(["body", "history", 1], "Input should be a valid number", "float_type"),
        ),
        (
            raw('"history": "1,2,3", "horizon": 3}'),
            _error(["body", "history"], "Input should be a valid list", "list_type"),
        ),
        (
            raw('"history": [1, 2, 3, 4, 5, 6], "horizon": 0}'),
            _error(["body", "horizon"], "Input should be greater than or equal to 1", "greater_than_equal", ge=1),
        ),
        (
            raw('"history": [1, 2, 3, 4, 5, 6], "horizon": -4}'),
            _error(["body", "horizon"], "Input should be greater than or equal to 1", "greater_than_equal", ge=1),
        ),
        (
            raw('"history": [1, 2, 3, 4, 5, 6], "horizon": "3"}'),
            _error(["body", "horizon"], "Input should be a valid integer", "int_type"),
        ),
        (
            raw('"history": [1, 2, 3, 4, 5, 6], "horizon": 2.5}'),
            _error(["body", "horizon"], "Input should be a valid integer", "int_type"),
        ),
        (
            raw('"history": [1, 2, 3, 4, 5, 6], "horizon": 3, "levels": [1.5]}'),
            _error(
                ["body", "levels", 0],
                "Input should be less than or equal to 0.999999",
                "less_than_equal",
                le=0.999999,
            ),
        ),
        (
            raw('"history": [1, 2, 3, 4, 5, 6], "horizon": 3, "horizn": 3}'),
            _error(["body", "horizn"], "Extra inputs are not permitted", "extra_forbidden"),
        ),
        ('{"history": [1, 2, 3, 4, 5, 6], "horizon": 3}', _error(["body", "model"], "Field required", "missing")),
        (raw('"history": [1, 2, 3, 4, 5, 6], "horizon": 3, "timestamps": ["yesterday"]}'), None),
        (raw('"history": [1, 2'), None),
    ],
    ids=[
        "nan-token",
        "infinity-token",
        "minus-infinity-token",
        "nan-string",
        "bool",
        "history-string",
        "horizon-0",
        "horizon-negative",
        "horizon-string",
        "horizon-float",
        "level-over-1",
        "unknown-field",
        "no-model",
        "bad-timestamp",
        "broken-json",
    ],
)
def test_invalid_json_bodies_are_422(app, registered, raw, expected_body):
    r = call(app, "POST", "/v1/forecast", content=raw, headers=JSON)
    assert r.status_code == 422
    if expected_body is not None:
        assert r.json() == expected_body
    else:
        assert r.json()["detail"][0]["loc"][0] == "body"
        assert r.json()["detail"][0]["type"] in {"datetime_from_date_parsing", "json_invalid"}


def test_mixed_time_zones_are_rejected(app, registered):
    stamps = ["2024-01-01T00:00:00+00:00"] + [f"2024-01-0{d}T00:00:00" for d in range(2, 9)]
    r = call(
        app, "POST", "/v1/forecast", json={"model": MODEL, "history": [1.0] * 8, "timestamps": stamps, "horizon": 2}
    )
    assert (r.status_code, r.json()) == (
        422,
        {
            "detail": "timestamps[1] holds '2024-01-02T00:00:00'; timestamps must be dates or ISO-8601 times from "
            "1677-09-22 to 2262-04-11, all with or all without a time zone"
        },
    )


def test_several_utc_offsets_are_one_axis_in_utc(app, registered):
    """As the series store reads them: each instant in UTC, and the forecast's timestamps continue in UTC."""
    stamps = [f"2024-01-0{d}T0{d}:00:00+0{d}:00" for d in range(1, 9)]  # midnight UTC, each at its own offset
    body = {"model": MODEL, "history": [1.0] * 8, "timestamps": stamps, "horizon": 2}
    r = call(app, "POST", "/v1/forecast", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["timestamps"] == ["2024-01-09T00:00:00+00:00", "2024-01-10T00:00:00+00:00"]


def test_batch_errors_name_the_item(app, registered):
    items = [
        {"model": MODEL, "history": [1.0] * 8, "horizon": 3},
        {"model": MODEL, "history": [1.0, 2.0], "horizon": 3},
    ]
    r = call(app, "POST", "/v1/forecast/batch", json={"requests": items})
    assert (r.status_code, r.json()) == (422, {"detail": "requests[1]: " + SHORT.format(n=2)})
    body = '{"requests": [' + raw('"history": [1, 2, 3, 4, 5, NaN], "horizon": 3}') + "]}"
    r = call(app, "POST", "/v1/forecast/batch", content=body, headers=JSON)
    assert (r.status_code, r.json()) == (
        422,
        _error(["body", "requests", 0, "history", 5], "Input should be a finite number", "finite_number"),
    )
    r = call(app, "POST", "/v1/forecast/batch", json={"requests": []})
    assert (r.status_code, r.json()) == (
        422,
        _error(
            ["body", "requests"],
            "List should have at least 1 item after validation, not 0",
            "too_short",
            field_type="List",
            min_length=1,
            actual_length=0,
        ),
    )


SEND_JSON = "; send the body as JSON with Content-Type: application/json"


@pytest.mark.parametrize("route", ["/v1/forecast", "/v1/forecast/batch"])
@pytest.mark.parametrize(
    "content_type, detail",
    [
        ("text/plain", "content type 'text/plain' is not accepted" + SEND_JSON),
        ("application/xml", "content type 'application/xml' is not accepted" + SEND_JSON),
        (
            "application/x-www-form-urlencoded",
            "content type 'application/x-www-form-urlencoded' is not accepted" + SEND_JSON,
        ),
        ("multipart/form-data; boundary=x", "content type 'multipart/form-data' is not accepted" + SEND_JSON),
        ("Text/Plain; charset=utf-8", "content type 'text/plain' is not accepted" + SEND_JSON),
        (None, "the request has no Content-Type header" + SEND_JSON),
    ],
    ids=["text", "xml", "form", "multipart", "text-with-charset", "none"],
)
def test_a_json_body_sent_as_another_content_type_is_415(app, registered, route, content_type, detail):
    """A valid JSON body under another Content-Type got FastAPI's 422 "Input should be a valid dictionary or
    object to extract fields from", which did not say to send JSON."""
    one = {"model": MODEL, "history": NEAR_1, "horizon": 3}
    payload = json.dumps(one if route == "/v1/forecast" else {"requests": [one]}).encode()
    headers = {} if content_type is None else {"content-type": content_type}
    r = call(app, "POST", route, content=payload, headers=headers)
    if content_type is None:
        assert "content-type" not in r.request.headers  # httpx adds none for raw bytes
    assert (r.status_code, r.json()) == (415, {"detail": detail})


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "APPLICATION/JSON", "application/x+json"])
def test_json_content_types_with_parameters_or_a_suffix_are_served(app, registered, content_type):
    body = json.dumps({"model": MODEL, "history": NEAR_1, "horizon": 3}).encode()
    r = call(app, "POST", "/v1/forecast", content=body, headers={"content-type": content_type})
    assert (r.status_code, r.json()) == (
        200,
        {"model": MODEL, "version": "1", "forecast": expected(registered, "1", NEAR_1, 3)},
    )


@pytest.mark.parametrize("route", ["/v1/forecast", "/v1/forecast/batch"])
@pytest.mark.parametrize(
    "body, detail",
    [
        (
            b"[" * 5000 + b"]" * 5000,
            "the body cannot be parsed: its JSON is nested too deeply (arrays or objects inside each other); a "
            "request is a JSON object a few levels deep (see /docs)",
        ),
        (
            b'{"a":' * 3000 + b"1" + b"}" * 3000,
            "the body cannot be parsed: its JSON is nested too deeply (arrays or objects inside each other); a "
            "request is a JSON object a few levels deep (see /docs)",
        ),
        (
            raw(f'"history": [{"1" * 5000}], "horizon": 3}}').encode(),
            "the body cannot be parsed: a JSON number has over 4300 digits; numbers must be of a size a float can hold",
        ),
        (
            raw('"history": [1, 2, 3, 4, 5, 6], "horizon": 3}').encode("latin-1").replace(b"1,", b"\xff1,"),
            "the body cannot be read: it is not UTF-8 (invalid start byte at byte 34); send UTF-8 JSON "
            "(Content-Type: application/json)",
        ),
    ],
    ids=["nested-arrays", "nested-objects", "long-integer", "not-utf-8"],
)
def test_a_body_json_cannot_parse_is_a_400_saying_why(app, registered, route, body, detail):
    """All four were 400 "send UTF-8 JSON", although the first three are UTF-8 JSON."""
    r = call(app, "POST", route, content=body, headers=JSON)
    assert (r.status_code, r.json()) == (400, {"detail": detail})


LIMIT = {"detail": "request body is over the limit of 20000 bytes (SEQCAST_MAX_BODY_BYTES)"}


def test_body_over_the_limit_is_413(app, registered):
    big = {"model": MODEL, "history": [1.0] * 5000, "horizon": 3}
    r = call(app, "POST", "/v1/forecast", json=big)
    assert (r.status_code, r.json()) == (413, LIMIT)


def test_chunked_body_over_the_limit_is_413_without_content_length(app, registered):
    payload = json.dumps({"model": MODEL, "history": [1.0] * 5000, "horizon": 3}).encode()

    async def chunks():
        for i in range(0, len(payload), 4096):
            yield payload[i : i + 4096]

    r = call(app, "POST", "/v1/forecast/batch", content=chunks(), headers=JSON)
    assert "content-length" not in r.request.headers
    assert r.request.headers["transfer-encoding"] == "chunked"
    assert (r.status_code, r.json()) == (413, LIMIT)


def test_chunked_body_under_the_limit_is_served(app, registered, history):
    payload = json.dumps({"model": MODEL, "history": history, "horizon": 2}).encode()

    async def chunks():
        for i in range(0, len(payload), 100):
            yield payload[i : i + 100]

    r = call(app, "POST", "/v1/forecast", content=chunks(), headers=JSON)
    assert (r.status_code, r.json()) == (
        200,
        {"model": MODEL, "version": "1", "forecast": expected(registered, "1", history, 2)},
    )


def _traced(app, body: dict, history: list[float], lookback: int) -> list[tuple[str, str, str, str]]:
    """POST ``body`` to /v1/forecast with a profiler on: every call of a project function with the history (the
    list, or an array of its values or of its last ``lookback`` values) as an argument, in order, as (module,
    function, argument name, the calling module)."""
    window = np.asarray(history[-lookback:])

    def holds_history(value) -> bool:
        if isinstance(value, list) and len(value) == len(history):
            return value == history
        if isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.size in (len(history), lookback):
            flat = value.reshape(-1)
            return np.array_equal(flat, history) or np.array_equal(flat, window)
        return False

    seen: list[tuple[str, str, str, str]] = []

    def profile(frame, event, arg):
        if event != "call":
            return
        module = frame.f_globals.get("__name__", "")
        if not module.startswith(("service.", "pipelines.", "models.")):
            return
        code = frame.f_code
        for name in code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]:
            if holds_history(frame.f_locals.get(name)):
                caller = frame.f_back.f_globals.get("__name__", "") if frame.f_back else ""
                seen.append((module, code.co_name, name, caller))

    sys.setprofile(profile)
    try:
        r = call(app, "POST", "/v1/forecast", json=body)
    finally:
        sys.setprofile(None)
    assert r.status_code == 200, r.text
    return seen


def test_a_history_reaches_the_model_without_returning_to_the_route(app, registered, history):
    """The route looks the model up, builds the input (service/inputs.py), hands it to the batcher and answers:
    traced, no function of the route's module is given the history or its window; the model's own check is the
    first to hold the history, called by the input building, and the batcher gets the checked window."""
    lookback = registered["forecasters"]["1"].lookback
    body = {"model": MODEL, "history": history, "horizon": 6, "timestamps": [t.isoformat() for t in days(40)]}
    seen = _traced(app, body, history, lookback)
    assert [s for s in seen if s[0] == "service.routes.forecast"] == []
    assert seen[0] == ("pipelines.forecasting.forecaster", "check_history", "history", "service.inputs")
    assert ("service.batching", "forecast", "window", "service.routes.forecast") in seen


def days(n: int) -> pd.DatetimeIndex:
    return pd.date_range("2024-01-01", periods=n, freq="D")


@pytest.mark.parametrize(
    "url, body, loc, type_, msg",
    [
        (
            "/v1/forecast",
            {"model": MODEL, "horizon": 3, "timestamps": ["2024-01-01", "2024-01-02"]},
            ["body"],
            "timestamps_without_history",
            "timestamps go with history; a stored series brings its own",
        ),
        (
            "/v1/forecast/batch",
            {
                "requests": [
                    {"model": MODEL, "history": [1.0] * 8, "horizon": 3},
                    {"model": MODEL, "horizon": 3, "history": [1.0] * 8, "series": MODEL},
                ]
            },
            ["body", "requests", 1],
            "history_or_series",
            "give either history or series, not both",
        ),
        (
            "/v1/forecast/batch",
            {"requests": [{"model": MODEL, "history": [1.0] * 8, "horizon": 3, "alias": "champion", "version": 1}]},
            ["body", "requests", 0],
            "alias_or_version",
            "give either alias or version, not both",
        ),
        (
            "/v1/forecast/batch",
            {"model": "panel", "horizon": 3, "alias": "champion", "version": 1},
            ["body"],
            "alias_or_version",
            "give either alias or version, not both",
        ),
    ],
    ids=["timestamps-without-history", "batch-history-and-series", "batch-alias-and-version", "panel-batch-ref"],
)
def test_the_rules_between_a_body_s_fields_are_the_schema_s(app, url, body, loc, type_, msg):
    """Refused before any model is looked up (no registry call: "panel" need not exist), naming the place."""
    r = call(app, "POST", url, json=body)
    assert (r.status_code, r.json()) == (422, {"detail": [{"type": type_, "loc": loc, "msg": msg}]})


def test_an_input_error_in_a_batch_names_the_request(app, registered):
    body = {"requests": [{"model": MODEL, "history": [1.0] * 8, "horizon": 3}, {"model": MODEL, "horizon": 101}]}
    r = call(app, "POST", "/v1/forecast/batch", json=body)
    assert (r.status_code, r.json()) == (422, {"detail": "requests[1]: horizon is 101; allowed: 1 to 100"})


def test_stored_values_the_model_cannot_take_name_the_series(app, registered):
    """A stored window is checked by the model like a sent history; the message names the series it came from."""
    lo, hi = registered["forecasters"]["1"].value_range()
    stamps = [t.isoformat() for t in pd.date_range("2024-01-01", periods=6, freq="h")]
    stored = call(
        app,
        "POST",
        "/v1/series/too_large/observations",
        json={"timestamps": stamps, "values": [1.0] * 5 + [1e9]},
        headers={"X-API-Key": API_KEY},
    )
    assert stored.status_code == 201, stored.text
    r = call(app, "POST", "/v1/forecast", json={"model": MODEL, "series": "too_large", "horizon": 3})
    assert (r.status_code, r.json()) == (
        422,
        {
            "detail": f"series 'too_large': history[5] is 1e+09, outside the range this model can represent: "
            f"{lo:.6g} to {hi:.6g} (its training data's mean +- 20 standard deviations)"
        },
    )
