"""The API pages are offline: /docs and /redoc reference only this host's URLs, which answer; the request
schemas carry examples that a model answers (the test's models standing in for `make run`'s `sine`)."""

from __future__ import annotations

import re

import pytest
from svc_helpers import MODEL, call


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_api_pages_reference_only_local_urls(app, page):
    r = call(app, "GET", page)
    assert r.status_code == 200
    urls = re.findall(r"""(?:src|href|url|spec-url)\s*[=:]\s*["']([^"']+)["']""", r.text)
    assert urls, r.text
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url  # nothing from another host
        assert call(app, "GET", url).status_code == 200, url
    assert "http://" not in r.text and "https://" not in r.text


def test_each_request_schema_has_an_example(app):
    schemas = call(app, "GET", "/openapi.json").json()["components"]["schemas"]
    for name in (
        "ForecastRequest",
        "BatchForecastRequest",
        "InvocationsRequest",
        "ClassifyRequest",
        "ObservationBatch",
    ):
        assert schemas[name].get("examples"), name


def test_the_forecast_examples_are_answered(app):
    schemas = call(app, "GET", "/openapi.json").json()["components"]["schemas"]
    bodies = [e for e in schemas["ForecastRequest"]["examples"] if "history" in e]
    bodies += schemas["BatchForecastRequest"]["examples"]
    bodies += schemas["InvocationsRequest"]["examples"]
    for body in bodies:
        text = str(body).replace("'sine'", repr(MODEL))  # the test's model in place of make run's sine
        r = call(app, "POST", _route(body), json=eval(text))
        assert r.status_code == 200, (body, r.text)


def _route(body: dict) -> str:
    if "requests" in body:
        return "/v1/forecast/batch"
    return "/v1/forecast" if "model" in body else "/invocations"


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_api_pages_allow_their_own_inline_script_by_hash_and_no_other(app, page):
    import base64
    import hashlib

    r = call(app, "GET", page)
    inline = re.findall(r"<script>(.*?)</script>", r.text, re.S)
    sources = " ".join(
        ["'self'", *(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in inline)]
    )
    assert len(inline) == (1 if page == "/docs" else 0)  # Swagger UI is configured by an inline script
    assert r.headers["content-security-policy"] == (
        f"default-src 'none'; script-src {sources}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "font-src 'self'; connect-src 'self'; worker-src 'self' blob:; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    )
    assert r.headers["x-content-type-options"] == "nosniff"
