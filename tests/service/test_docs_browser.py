"""/docs in a real browser with no network: Debian's headless Chromium (Playwright) against the app under uvicorn,
every request to another host aborted; Swagger UI must render the operations from the vendored files."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from svc_helpers import make_settings

from service.app import create_app

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(
        f"no {CHROMIUM}: the browser tests drive Debian's chromium (apt-get install chromium)", allow_module_level=True
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright comes with the dev extra: pip install -e '.[dev]'"
)


@pytest.fixture(scope="module")
def served(registered, data_dir):
    import uvicorn

    app = create_app(make_settings(data_dir, preload_models=""))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, name="docs-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    server.should_exit = True
    thread.join(30)


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
