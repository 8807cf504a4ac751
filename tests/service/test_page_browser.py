"""The page at ``/`` in a real browser: Debian's headless Chromium driven by Playwright, against the app served by
uvicorn on a free port with conftest's trained models. Every number the chart draws is read back from its SVG
elements and compared with the API's own answer to the same request."""

from __future__ import annotations

import json

import httpx
import pandas as pd
import pytest
from svc_helpers import (
    API_KEY,
    CHROMIUM,
    DIGITS,
    HORIZON,
    MODEL,
    NO_BROWSER,
    NO_PLAYWRIGHT,
    digit_png,
    make_settings,
    served_in_thread,
)

from service.app import create_app

if not CHROMIUM.exists():
    pytest.skip(NO_BROWSER, allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason=NO_PLAYWRIGHT)

LEVELS = [0.8, 0.95]


@pytest.fixture(scope="module")
def served(registered, digits, data_dir, tmp_path_factory):
    """The app under uvicorn in a thread, its own series store holding MODEL's training series (hourly) under MODEL."""
    store = f"sqlite:///{tmp_path_factory.mktemp('page-store') / 'series.db'}"
    app = create_app(make_settings(data_dir, database_url=store, preload_models="", max_body_bytes=200_000))
    with served_in_thread(app, "page-uvicorn") as url:
        yield _with_model_series(url, registered)


def _with_model_series(url: str, registered) -> str:
    """``url``, its store now holding MODEL's training series (hourly) under MODEL."""
    values = registered["series"].values.tolist()
    stamps = [t.isoformat() for t in pd.date_range("2024-01-01", periods=len(values), freq="h")]
    r = httpx.post(
        f"{url}/v1/series/{MODEL}/observations",
        json={"timestamps": stamps, "values": values},
        headers={"X-API-Key": API_KEY},
    )
    assert r.status_code == 201, r.text
    return url


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))  # never a downloaded browser
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 1200, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    page.close()
    assert errors == []  # no uncaught script error on the way


def open_page(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("body[data-ready]")


def until_drawn(page, action) -> None:
    """Do ``action`` (which starts a forecast), then wait until its chart (or its error) is on the page."""
    action()
    page.wait_for_selector('#forecast-panel[data-state="done"]')


def numbers(page, selector: str, attribute: str) -> list[float]:
    return json.loads(page.get_attribute(selector, attribute))


def api_forecast(url: str, **body) -> httpx.Response:
    return httpx.post(f"{url}/v1/forecast", json=body, timeout=60)


def test_the_chart_draws_the_stored_history_and_the_champions_forecast_with_the_apis_bands(served, page, tmp_path):
    open_page(page, f"{served}/")
    until_drawn(page, lambda: page.click(f'#series button[data-series="{MODEL}"]'))
    assert page.get_attribute("svg.forecast-chart", "data-model") == MODEL
    assert page.input_value("#horizon") == str(HORIZON)  # the champion's trained horizon
    expected = api_forecast(served, model=MODEL, series=MODEL, horizon=HORIZON, levels=LEVELS).json()
    assert expected["version"] == "1"
    assert numbers(page, "path.forecast.served", "data-values") == expected["forecast"]
    points = page.eval_on_selector_all("circle.forecast-point", "els => els.map(e => Number(e.dataset.value))")
    assert points == expected["forecast"]
    for level in ("0.8", "0.95"):
        band = f'path.band[data-level="{level}"]'
        assert numbers(page, band, "data-lower") == expected["intervals"][level]["lower"]
        assert numbers(page, band, "data-upper") == expected["intervals"][level]["upper"]
    stored = httpx.get(f"{served}/v1/series/{MODEL}/observations").json()
    assert numbers(page, "path.history", "data-values") == stored["values"]
    scores = httpx.get(f"{served}/v1/models/{MODEL}/scores").json()
    served_score = float(page.get_attribute("tr.served td.score", "data-value"))
    assert (page.get_attribute("tr.served", "data-version"), served_score) == ("1", scores["versions"][1]["score"])
    summary = page.text_content("#forecast-summary")
    assert f"{MODEL} version 1 (@champion) answered {HORIZON} steps with 80% and 95% bands" in summary
    assert "backtest MASE is" in summary
    assert page.is_hidden("#forecast-error")
    page.screenshot(path=tmp_path / "page.png", full_page=True)
    assert (tmp_path / "page.png").stat().st_size > 10_000


def test_the_version_picker_draws_another_versions_forecast_on_the_same_chart(served, page, tmp_path):
    open_page(page, f"{served}/?model={MODEL}&series={MODEL}")
    until_drawn(page, lambda: page.check('#versions input[data-version="2"]'))
    other = api_forecast(served, model=MODEL, series=MODEL, horizon=HORIZON, version=2).json()
    champion = api_forecast(served, model=MODEL, series=MODEL, horizon=HORIZON).json()
    assert numbers(page, 'path.forecast.other[data-version="2"]', "data-values") == other["forecast"]
    assert numbers(page, "path.forecast.served", "data-values") == champion["forecast"] != other["forecast"]
    assert "version 2" in page.text_content("svg.forecast-chart .legend")
    page.screenshot(path=tmp_path / "versions.png", full_page=True)


def test_a_pasted_csv_is_forecast_and_a_bad_line_is_named(served, page):
    open_page(page, f"{served}/?model={MODEL}&horizon=4")
    page.select_option("#source", "csv")
    values = [round(10 + (i % 12) / 5, 2) for i in range(24)]
    days = [f"2024-03-{d:02d}" for d in range(1, 25)]
    page.fill("#csv", "timestamp,value\n" + "\n".join(f"{d},{v}" for d, v in zip(days, values, strict=True)))
    until_drawn(page, lambda: page.click("#forecast-form button[type=submit]"))
    expected = api_forecast(served, model=MODEL, history=values, timestamps=days, horizon=4, levels=LEVELS).json()
    assert numbers(page, "path.history", "data-values") == values
    assert numbers(page, "path.forecast.served", "data-values") == expected["forecast"]
    labels = page.eval_on_selector_all("text.x-tick", "els => els.map(e => e.textContent)")
    forecast_days = [t[:10] for t in expected["timestamps"]]
    assert forecast_days == ["2024-03-25", "2024-03-26", "2024-03-27", "2024-03-28"]
    assert set(labels) <= {*days, *forecast_days} and set(labels) & set(forecast_days)  # the x axis tells the days

    page.fill("#csv", "1.5\n2.5\nabc\n")
    until_drawn(page, lambda: page.click("#forecast-form button[type=submit]"))
    assert page.text_content(".chart-message") == 'The pasted CSV\'s line 3 has "abc" where a number belongs'


def test_an_unknown_model_and_a_refused_horizon_are_said_in_the_apis_words(served, page):
    r = api_forecast(served, model="no_such_model", series=MODEL, horizon=HORIZON, levels=LEVELS)
    assert r.status_code == 404
    open_page(page, f"{served}/?model=no_such_model&series={MODEL}")
    assert page.get_attribute("#forecast-panel", "data-state") == "done"
    assert page.text_content(".chart-error") == f"The forecast of no_such_model failed (404): {r.json()['detail']}"
    assert page.locator("path.history").count() == 1  # the history is still drawn under the message
    scores = httpx.get(f"{served}/v1/models/no_such_model/scores")
    assert scores.status_code == 404
    assert page.text_content("#forecast-error") == (
        f"Reading no_such_model's scores failed (404): {scores.json()['detail']}"
    )

    r = api_forecast(served, model=MODEL, series=MODEL, horizon=101, levels=LEVELS)
    assert (r.status_code, r.json()) == (422, {"detail": "horizon is 101; allowed: 1 to 100"})
    page.select_option("#model", MODEL)
    page.wait_for_selector('#forecast-panel[data-state="done"]')
    page.fill("#horizon", "101")
    until_drawn(page, lambda: page.click("#forecast-form button[type=submit]"))
    assert (
        page.text_content(".chart-error") == f"The forecast of {MODEL} failed (422): horizon is 101; allowed: 1 to 100"
    )


def test_an_uploaded_png_gets_the_classifiers_top_k(served, page, digits):
    open_page(page, f"{served}/")
    page.select_option("#classifier", DIGITS)
    image = digit_png(digits["data"].x[int(digits["test"][0])], size=32)  # a held-out digit, scaled up
    page.set_input_files("#image", files=[{"name": "digit.png", "mimeType": "image/png", "buffer": image}])
    page.click("#classify-form button[type=submit]")
    page.wait_for_selector('#classify-panel[data-state="done"]')
    shown = page.eval_on_selector_all(
        "tr.prediction", "els => els.map(e => [e.dataset.label, Number(e.dataset.probability)])"
    )
    files = {"file": ("digit.png", image, "image/png")}
    expected = httpx.post(f"{served}/v1/classify", files=files, data={"model": DIGITS, "top_k": "5"}).json()
    assert shown == [[p["label"], p["probability"]] for p in expected["predictions"]]
    assert page.text_content("#predictions caption") == f"{DIGITS} version 1: the top 5"

    page.set_input_files("#image", files=[{"name": "notes.png", "mimeType": "image/png", "buffer": b"not an image"}])
    page.click("#classify-form button[type=submit]")
    page.wait_for_selector('#classify-panel[data-state="done"]')
    r = httpx.post(
        f"{served}/v1/classify", files={"file": ("notes.png", b"not an image", "image/png")}, data={"model": DIGITS}
    )
    assert r.status_code == 415
    assert page.text_content("#classify-error") == f"Classifying with {DIGITS} failed (415): {r.json()['detail']}"
