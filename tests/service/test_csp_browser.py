"""The Content-Security-Policy in a real browser (Debian's headless Chromium, Playwright): the page at ``/``,
``/docs`` and ``/redoc`` render under their policies with no violation reported, and the page's styles set from
its script (a version's colour swatch, a class's probability bar) still apply."""

from __future__ import annotations

import pytest
from svc_helpers import CHROMIUM, DIGITS, MODEL, NO_BROWSER, NO_PLAYWRIGHT, digit_png, make_settings, served_in_thread

from service.app import create_app

if not CHROMIUM.exists():
    pytest.skip(NO_BROWSER, allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason=NO_PLAYWRIGHT)


@pytest.fixture(scope="module")
def browsed(registered, digits, data_dir):
    """(url, a function opening a path that returns the console's CSP reports and uncaught errors)."""
    app = create_app(make_settings(data_dir, preload_models=""))
    with served_in_thread(app, "csp-uvicorn") as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))  # never a downloaded browser
        try:
            yield url, browser
        finally:
            browser.close()


def violations(page) -> list[str]:
    found: list[str] = []
    page.on("console", lambda m: found.append(m.text) if "Content Security Policy" in m.text else None)
    page.on("pageerror", lambda error: found.append(str(error)))
    return found


def test_the_page_runs_under_its_policy(browsed, digits, tmp_path):
    url, browser = browsed
    page = browser.new_page(viewport={"width": 1200, "height": 1000})
    found = violations(page)
    page.goto(f"{url}/?model={MODEL}&horizon=4")
    page.wait_for_selector("body[data-ready]")
    page.select_option("#source", "csv")
    page.fill("#csv", "\n".join(str(10 + (i % 12) / 5) for i in range(24)))
    page.click("#forecast-form button[type=submit]")
    page.wait_for_selector('#forecast-panel[data-state="done"]')
    page.wait_for_selector("#versions .swatch")  # the model's other version, with its colour set from the script
    assert page.eval_on_selector("#versions .swatch", "e => getComputedStyle(e).backgroundColor") not in (
        "",
        "rgba(0, 0, 0, 0)",
    )

    image = tmp_path / "digit.png"
    image.write_bytes(digit_png(digits["data"].x[0], 32))
    page.select_option("#classifier", DIGITS)
    page.set_input_files("#image", str(image))
    page.click("#classify-form button[type=submit]")
    page.wait_for_selector("#predictions .bar")
    assert page.eval_on_selector("#predictions .bar", "e => e.style.width").endswith("%")
    assert page.eval_on_selector("#preview", "e => e.complete && e.naturalWidth") == 32  # shown from a blob: URL
    page.close()
    assert found == []


@pytest.mark.parametrize(("path", "rendered"), [("/docs", ".opblock"), ("/redoc", "[data-section-id]")])
def test_the_api_pages_run_under_theirs(browsed, path, rendered):
    url, browser = browsed
    page = browser.new_page()
    found = violations(page)
    page.goto(f"{url}{path}")
    page.wait_for_selector(rendered, timeout=30_000)
    page.close()
    # ReDoc's bundle shows Redocly's logo from their CDN: the policy keeps the page offline by refusing it
    logo = (
        "Loading the image 'https://cdn.redoc.ly/redoc/logo-mini.svg' violates the following Content Security "
        "Policy directive: \"img-src 'self' data:\". The action has been blocked."
    )
    assert found == ([logo] if path == "/redoc" else [])
