"""/docs in a real browser with no network: Debian's headless Chromium (Playwright) against the app under uvicorn,
every request to another host aborted; Swagger UI must render the operations from the vendored files."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from svc_helpers import CHROMIUM, NO_BROWSER, NO_PLAYWRIGHT, make_settings, served_in_thread

from service.app import create_app

if not CHROMIUM.exists():
    pytest.skip(NO_BROWSER, allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason=NO_PLAYWRIGHT)


@pytest.fixture(scope="module")
def served(registered, data_dir):
    with served_in_thread(create_app(make_settings(data_dir, preload_models="")), "docs-uvicorn") as url:
        yield url


def test_swagger_ui_renders_the_operations_with_every_other_host_blocked(served):
    host = urlsplit(served).netloc
    blocked: list[str] = []
    errors: list[str] = []

    def only_this_host(route):
        if urlsplit(route.request.url).netloc == host:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))  # never a downloaded browser
        try:
            page = browser.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.route("**/*", only_this_host)
            page.goto(f"{served}/docs")
            page.wait_for_selector(".opblock", timeout=30_000)
            paths = page.eval_on_selector_all(".opblock .opblock-summary-path", "els => els.map(e => e.dataset.path)")
            assert {"/v1/forecast", "/v1/forecast/batch", "/invocations", "/v1/classify"} <= set(paths)
            assert page.is_hidden(".errors-wrapper")  # no "Could not resolve reference" or schema errors
            page.click("#operations-forecast-forecast_v1_forecast_post .opblock-summary")  # open POST /v1/forecast
            # try-it-out is on: the body's editor holds the schema's first example, ready to send to `make run`
            example = page.input_value("#operations-forecast-forecast_v1_forecast_post textarea.body-param__text")
            assert '"model": "sine"' in example and '"horizon": 12' in example
        finally:
            browser.close()
    assert blocked == [] and errors == []
