"""A panel model served over REST through the ASGI app: one registered model forecasting many stored series.

A tiny panel (``make_panel`` of tests/pipelines/forecasting/test_panel.py: seasonal series and random walks) is trained and
registered once for the module, and its series are stored in the app's own series store, with one series the panel
never saw and one too short to forecast. Every answer is compared to the bit with ``PanelForecaster.forecast_windows``
in process, on the same rows in the same order.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from svc_helpers import CHROMIUM, MODEL, NO_BROWSER, NO_PLAYWRIGHT, call, make_settings, served_in_thread

from pipelines.forecasting.panel import BORROWED, NETWORK, OWN, PanelForecaster
from pipelines.forecasting.pipeline import load_panel_forecaster, train_panel_and_register
from pipelines.forecasting.training import TrainConfig
from pipelines.store import SeriesStore
from pipelines.tracking.registry import model_uri

PANEL = "svc_panel"
HORIZON = 6
CONFIG = TrainConfig(variant="mlp", epochs=5, units=8, horizon=HORIZON, seed=3, normalise="seasonal")
NEWCOMER = "newcomer"  # stored, never seen by the panel
STUB = "stub"  # stored, shorter than the panel's lookback


def _make_panel():
    """``make_panel`` from the pipeline's panel tests (loaded by path: tests/ is not a package)."""
    path = Path(__file__).resolve().parents[1] / "pipelines" / "forecasting" / "test_panel.py"
    spec = importlib.util.spec_from_file_location("panel_cases", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_panel()


@pytest.fixture(scope="module")
def trained(data_dir):
    panel = _make_panel()
    outcome = train_panel_and_register(panel, CONFIG, PANEL, source="test")
    assert outcome.promoted
    forecaster = load_panel_forecaster(model_uri(PANEL, version=outcome.version))
    return {"panel": {s.name: s for s in panel}, "forecaster": forecaster, "version": outcome.version}


@pytest.fixture(scope="module")
def store_url(trained, tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('panel-store') / 'series.db'}"
    store = SeriesStore(url)
    panel = trained["panel"]
    for s in panel.values():
        store.write(s.name, s.timestamps, s.values, freq=s.freq)
    first = panel["season-0"]
    store.write(NEWCOMER, first.timestamps, 7.0 * first.values + 3.0, freq=first.freq)
    store.write(STUB, first.timestamps[:5], first.values[:5], freq=first.freq)
    store.close()
    return url


@pytest.fixture(scope="module")
def app(store_url, data_dir):
    from service.app import create_app

    return create_app(make_settings(data_dir, database_url=store_url, max_body_bytes=200_000))


@pytest.fixture(scope="module")
def forecaster(trained) -> PanelForecaster:
    return trained["forecaster"]


def window(trained, name: str) -> np.ndarray:
    values = trained["panel"]["season-0"].values * 7.0 + 3.0 if name == NEWCOMER else trained["panel"][name].values
    return values[-trained["forecaster"].lookback :]


def future(n: int = HORIZON) -> list[str]:
    """The timestamps after the stored series' last (2017-12-01, monthly)."""
    return [t.isoformat() for t in pd.date_range("2018-01-01", periods=n, freq="MS")]


def winners(forecaster: PanelForecaster) -> dict[str, str]:
    return {name: facts.winner for name, facts in forecaster.series.items()}


def forecast(app, body: dict):
    return call(app, "POST", "/v1/forecast", json=body)


def batch(app, body: dict):
    return call(app, "POST", "/v1/forecast/batch", json=body)


def test_the_panel_serves_both_the_network_and_free_forecasts(forecaster):
    """The cases below need a series of each: the walks go to a free forecast, the seasonal ones to the network."""
    served = set(winners(forecaster).values())
    assert NETWORK in served and served - {NETWORK}


@pytest.mark.parametrize("served", ["network", "free"])
def test_a_seen_series_is_served_by_its_winner(app, trained, forecaster, served):
    name = next(n for n, w in winners(forecaster).items() if (w == NETWORK) == (served == "network"))
    r = forecast(app, {"model": PANEL, "series": name, "horizon": HORIZON})
    expected = forecaster.forecast_windows(window(trained, name)[None], HORIZON, [name])[0]
    assert (r.status_code, r.json()) == (
        200,
        {
            "model": PANEL,
            "version": trained["version"],
            "series": name,
            "seen_in_training": True,
            "served_by": forecaster.series[name].winner,
            "forecast": expected.tolist(),
            "timestamps": future(),
        },
    )


def test_intervals_say_how_they_were_made(app, trained, forecaster):
    name = "season-1"
    r = forecast(app, {"model": PANEL, "series": name, "horizon": 9, "levels": [0.8, 0.95]})
    assert r.status_code == 200, r.text
    rows = window(trained, name)
    point = forecaster.forecast_windows(rows[None], 9, [name])[0]
    bands, how = forecaster.intervals(point, [0.8, 0.95], name, rows)
    assert how in (OWN, BORROWED)
    assert r.json() == {
        "model": PANEL,
        "version": trained["version"],
        "series": name,
        "seen_in_training": True,
        "served_by": NETWORK,
        "forecast": point.tolist(),
        "timestamps": future(9),
        "intervals": {
            "0.8": {"lower": bands[0.8][0].tolist(), "upper": bands[0.8][1].tolist()},
            "0.95": {"lower": bands[0.95][0].tolist(), "upper": bands[0.95][1].tolist()},
        },
        "calibrated_steps": HORIZON,
        "intervals_from": how,
    }


def test_a_stored_series_the_panel_never_saw_gets_the_network(app, trained, forecaster):
    assert not forecaster.knows(NEWCOMER)
    r = forecast(app, {"model": PANEL, "series": NEWCOMER, "horizon": HORIZON, "levels": [0.8]})
    rows = window(trained, NEWCOMER)
    expected = forecaster.forecast_windows(rows[None], HORIZON, [NEWCOMER])[0]
    assert np.array_equal(expected, forecaster.network_forecast(rows[None], HORIZON, [None])[0])
    bands, how = forecaster.intervals(expected, [0.8], NEWCOMER, rows)
    assert how == BORROWED
    assert (r.status_code, r.json()) == (
        200,
        {
            "model": PANEL,
            "version": trained["version"],
            "series": NEWCOMER,
            "seen_in_training": False,
            "served_by": NETWORK,
            "forecast": expected.tolist(),
            "timestamps": future(),
            "intervals": {"0.8": {"lower": bands[0.8][0].tolist(), "upper": bands[0.8][1].tolist()}},
            "calibrated_steps": HORIZON,
            "intervals_from": BORROWED,
        },
    )


def test_a_history_is_an_unseen_series(app, trained, forecaster):
    history = (3.0 * trained["panel"]["season-2"].values[-40:]).round(6)
    stamps = [t.isoformat() for t in pd.date_range("2020-01-01", periods=len(history), freq="D")]
    r = forecast(app, {"model": PANEL, "history": history.tolist(), "timestamps": stamps, "horizon": 4})
    expected = forecaster.forecast_windows(history[-forecaster.lookback :][None], 4, [None])[0]
    assert (r.status_code, r.json()) == (
        200,
        {
            "model": PANEL,
            "version": trained["version"],
            "series": None,
            "seen_in_training": False,
            "served_by": NETWORK,
            "forecast": expected.tolist(),
            "timestamps": ["2020-02-10T00:00:00", "2020-02-11T00:00:00", "2020-02-12T00:00:00", "2020-02-13T00:00:00"],
        },
    )


def _expected_batch(trained, forecaster, names: list[str], horizon: int = HORIZON) -> np.ndarray:
    """The in-process call on the same rows in the same order."""
    return forecaster.forecast_windows(np.stack([window(trained, n) for n in names]), horizon, names)


def _result(trained, forecaster, name: str, row: np.ndarray) -> dict:
    return {
        "model": PANEL,
        "version": trained["version"],
        "series": name,
        "seen_in_training": forecaster.knows(name),
        "served_by": forecaster.winner(name),
        "forecast": row.tolist(),
        "timestamps": future(),
    }


def test_a_batch_without_series_forecasts_every_series_of_the_model(app, trained, forecaster):
    names = list(forecaster.series)
    r = batch(app, {"model": PANEL, "horizon": HORIZON})
    expected = _expected_batch(trained, forecaster, names)
    assert (r.status_code, r.json()) == (
        200,
        {"results": [_result(trained, forecaster, n, row) for n, row in zip(names, expected, strict=True)]},
    )


def test_a_batch_of_named_series_answers_in_the_order_asked(app, trained, forecaster):
    names = ["walk-1", NEWCOMER, "season-3", "walk-1", "season-0"]
    r = batch(app, {"model": PANEL, "series": names, "horizon": HORIZON})
    expected = _expected_batch(trained, forecaster, names)
    assert (r.status_code, r.json()) == (
        200,
        {"results": [_result(trained, forecaster, n, row) for n, row in zip(names, expected, strict=True)]},
    )


def test_a_batch_of_series_with_levels(app, trained, forecaster):
    names = ["season-4", NEWCOMER]
    r = batch(app, {"model": PANEL, "series": names, "horizon": HORIZON, "levels": [0.9]})
    assert r.status_code == 200, r.text
    expected = _expected_batch(trained, forecaster, names)
    for name, row, got in zip(names, expected, r.json()["results"], strict=True):
        bands, how = forecaster.intervals(row, [0.9], name, window(trained, name))
        assert got == {
            **_result(trained, forecaster, name, row),
            "intervals": {"0.9": {"lower": bands[0.9][0].tolist(), "upper": bands[0.9][1].tolist()}},
            "calibrated_steps": HORIZON,
            "intervals_from": how,
        }


def test_panel_requests_in_a_batch_of_requests(app, trained, forecaster):
    """The ``requests`` shape takes panel models too: a group per (model version, horizon), one call with names."""
    history = trained["panel"]["season-2"].values[-30:]
    items = [
        {"model": PANEL, "series": "season-2", "horizon": HORIZON},
        {"model": PANEL, "history": history.tolist(), "horizon": HORIZON},
        {"model": PANEL, "series": "walk-0", "horizon": HORIZON},
    ]
    r = batch(app, {"requests": items})
    rows = np.stack([window(trained, "season-2"), history[-forecaster.lookback :], window(trained, "walk-0")])
    expected = forecaster.forecast_windows(rows, HORIZON, ["season-2", None, "walk-0"])
    unseen = {**_result(trained, forecaster, "season-2", expected[1]), "series": None, "seen_in_training": False}
    unseen.pop("timestamps")
    assert (r.status_code, r.json()) == (
        200,
        {
            "results": [
                _result(trained, forecaster, "season-2", expected[0]),
                {**unseen, "served_by": NETWORK},
                _result(trained, forecaster, "walk-0", expected[2]),
            ]
        },
    )


NOT_STORED = "no series named 'nope'; GET /v1/series or seqcast series lists them"


@pytest.mark.parametrize(
    "body, status, detail",
    [
        ({"model": PANEL, "series": "nope", "horizon": 3}, 404, NOT_STORED),
        (
            {"model": PANEL, "horizon": 3},
            422,
            f"model {PANEL!r} version 1 is a panel model of 8 series: give series (a stored series: one of its own, "
            f"listed by GET /v1/models/{PANEL}, or any other) or history (at least 24 numbers, oldest first)",
        ),
        (
            {"model": PANEL, "series": STUB, "horizon": 3},
            422,
            f"series 'stub' has 5 stored values; model {PANEL!r} version 1 needs at least 24 (its lookback)",
        ),
        (
            {"model": PANEL, "series": "walk-0", "history": [1.0] * 30, "horizon": 3},
            422,
            # a rule between the body's fields: the schema's, in the list form of schema errors
            [{"type": "history_or_series", "loc": ["body"], "msg": "give either history or series, not both"}],
        ),
        (
            {"model": PANEL, "history": [1.0, 2.0], "horizon": 3},
            422,
            "history has 2 values; this model needs at least 24",
        ),
        ({"model": PANEL, "series": "walk-0", "horizon": 101}, 422, "horizon is 101; allowed: 1 to 100"),
    ],
    ids=["unknown-series", "no-series-nor-history", "too-short", "both", "short-history", "horizon"],
)
def test_bad_single_requests_are_clear_4xx(app, forecaster, body, status, detail):
    assert forecaster.lookback == 24 and len(forecaster.series) == 8  # what the messages say
    r = forecast(app, body)
    assert (r.status_code, r.json()) == (status, {"detail": detail})


@pytest.mark.parametrize(
    "body, status, detail",
    [
        (
            {"model": PANEL, "series": ["walk-0", "nope", "gone"], "horizon": 3},
            404,
            "series[1]: no series named 'nope' is stored (nor 1 more of the 3 asked for); GET /v1/series or "
            "seqcast series lists them",
        ),
        (
            {"model": PANEL, "series": ["walk-0", STUB], "horizon": 3},
            422,
            f"series[1]: series 'stub' has 5 stored values; model {PANEL!r} version 1 needs at least 24 (its lookback)",
        ),
        ({"model": PANEL, "horizon": 101}, 422, "horizon is 101; allowed: 1 to 100"),
        (
            {"requests": [{"model": PANEL, "horizon": 3}]},
            422,
            f"requests[0]: model {PANEL!r} version 1 is a panel model of 8 series: give series (a stored series: one "
            f"of its own, listed by GET /v1/models/{PANEL}, or any other) or history (at least 24 numbers, oldest "
            "first)",
        ),
        (
            {"requests": [{"model": PANEL, "series": "nope", "horizon": 3}]},
            404,
            NOT_STORED,
        ),
    ],
    ids=["unknown-series", "too-short", "horizon", "requests-no-series", "requests-unknown-series"],
)
def test_bad_batches_are_clear_4xx(app, body, status, detail):
    r = batch(app, body)
    assert (r.status_code, r.json()) == (status, {"detail": detail})


def test_a_panel_batch_of_a_model_that_is_not_a_panel_is_refused(app, registered):
    r = batch(app, {"model": MODEL, "horizon": 3})
    assert (r.status_code, r.json()) == (
        422,
        {"detail": f"model {MODEL!r} version 1 is a forecaster, not a panel model"},
    )


@pytest.mark.parametrize(
    "body, msg",
    [
        ({"model": PANEL}, "horizon is required with model: the steps to forecast"),
        (
            {},
            'give requests (a list of forecast requests) or a panel model\'s batch: {"model": NAME, "horizon": H, '
            '"series"?: [NAME, ...]}',
        ),
        (
            {"model": PANEL, "horizon": 3, "requests": [{"model": PANEL, "series": "walk-0", "horizon": 3}]},
            "give either requests or a panel model's batch (model, horizon, series), not both; this body has "
            "requests and model, horizon",
        ),
    ],
    ids=["no-horizon", "empty", "both-shapes"],
)
def test_a_batch_body_of_neither_shape_is_a_422(app, body, msg):
    r = batch(app, body)
    assert (r.status_code, r.json()) == (422, {"detail": [{"type": "batch_shape", "loc": ["body"], "msg": msg}]})


def test_the_model_lists_its_series_and_their_winners(app, trained, forecaster):
    r = call(app, "GET", f"/v1/models/{PANEL}")
    assert r.status_code == 200, r.text
    assert r.json()["series"] == [
        {"name": name, "winner": facts.winner, "mase": facts.mase[facts.winner]}
        for name, facts in forecaster.series.items()
    ]
    assert {e["kind"] for e in r.json()["loaded"]} == {"panel_forecaster"}


def test_a_single_forecaster_lists_no_series(app, registered):
    r = call(app, "GET", f"/v1/models/{MODEL}")
    assert r.status_code == 200 and r.json()["series"] is None


# --- the page --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(store_url, data_dir):
    """An app of its own on the panel's store, under uvicorn on a free port."""
    if not CHROMIUM.exists():
        pytest.skip(NO_BROWSER)
    pytest.importorskip("playwright.sync_api", reason=NO_PLAYWRIGHT)
    from service.app import create_app

    app = create_app(make_settings(data_dir, database_url=store_url, preload_models="", max_body_bytes=200_000))
    with served_in_thread(app, "panel-page-uvicorn") as url:
        yield url


def test_the_page_lists_the_panels_series_and_draws_any_of_them(served, forecaster):
    from playwright.sync_api import sync_playwright

    def drawn_forecast(page) -> list[float]:
        return json.loads(page.get_attribute("path.forecast.served", "data-values"))

    def api(series: str, horizon: int) -> dict:
        body = {"model": PANEL, "series": series, "horizon": horizon, "levels": [0.8, 0.95]}
        r = httpx.post(f"{served}/v1/forecast", json=body, timeout=60)
        assert r.status_code == 200, r.text
        return r.json()

    names = list(forecaster.series)
    walk = next(n for n, w in winners(forecaster).items() if w != NETWORK)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))  # never a downloaded browser
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{served}/?model={PANEL}")
        page.wait_for_selector("body[data-ready]")
        # the history picker: the panel's own series first, each with what serves it, then the other stored ones
        options = page.eval_on_selector_all("#source option", "els => els.map(e => [e.value, e.textContent])")
        assert options == [
            *[[f"series:{n}", f"{n} (panel series, served by {winners(forecaster)[n]})"] for n in names],
            *[[f"series:{n}", f"stored series {n}"] for n in (NEWCOMER, STUB)],
            ["csv", "pasted CSV"],
        ]
        assert page.input_value("#source") == f"series:{names[0]}"  # a panel model starts on its first series
        horizon = int(page.input_value("#horizon"))
        assert drawn_forecast(page) == api(names[0], horizon)["forecast"]
        # any other series: one the panel serves with a free forecast, then one it never saw
        for series, said in (
            (walk, "one of the series it was trained on"),
            (NEWCOMER, "a series it was not trained on"),
        ):
            page.select_option("#source", f"series:{series}")
            page.click("#forecast-form button[type=submit]")
            page.wait_for_selector('#forecast-panel[data-state="done"]')
            expected = api(series, horizon)
            assert drawn_forecast(page) == expected["forecast"]
            summary = page.text_content("#forecast-summary") or ""
            assert f"Series {series} is {said}, forecast by {expected['served_by'].replace('_', ' ')}" in summary
        assert page.is_hidden("#forecast-error")
        browser.close()
    assert errors == []
