"""The API pages, offline: ``/docs`` (Swagger UI 5) and ``/redoc`` (ReDoc) from the files the ``fastapi-offline``
package vendors, mounted at ``/docs-static``; FastAPI's own pages load them from a CDN. Nothing on either page
leaves the host: the scripts, the stylesheet, the favicon and ``/openapi.json`` are all served here, and ReDoc
goes without its Google fonts.

Their Content-Security-Policy (the page's, ``service.errors.CONTENT_SECURITY_POLICY``, is stricter) allows the
one inline script each page is built with, by its hash, and inline styles (Swagger UI and ReDoc style their
elements from their scripts); ReDoc's search runs in a ``blob:`` worker."""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

DOCS_STATIC = "/docs-static"
VENDORED = Path(str(files("fastapi_offline") / "static"))  # swagger-ui-bundle.js, swagger-ui.css, redoc..., favicon
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)


def with_policy(page: HTMLResponse) -> HTMLResponse:
    """``page`` with a Content-Security-Policy that allows its own inline scripts (by hash) and nothing else's."""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(bytes(page.body).decode())
    ]
    scripts = " ".join(["'self'", *hashes])
    page.headers["content-security-policy"] = (
        f"default-src 'none'; script-src {scripts}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self'; connect-src 'self'; worker-src 'self' blob:; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    )
    return page


def install_docs(app: FastAPI) -> None:
    """``/docs`` and ``/redoc`` on ``app`` (built with ``docs_url=None, redoc_url=None``)."""
    app.mount(DOCS_STATIC, StaticFiles(directory=VENDORED), name="docs-static")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return with_policy(
            get_swagger_ui_html(
                openapi_url=f"{root}{openapi_url}",
                title=f"{app.title} - API",
                swagger_js_url=f"{root}{DOCS_STATIC}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{DOCS_STATIC}/swagger-ui.css",
                swagger_favicon_url=f"{root}{DOCS_STATIC}/favicon.png",
                swagger_ui_parameters={"tryItOutEnabled": True},
            )
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return with_policy(
            get_redoc_html(
                openapi_url=f"{root}{openapi_url}",
                title=f"{app.title} - API",
                redoc_js_url=f"{root}{DOCS_STATIC}/redoc.standalone.js",
                redoc_favicon_url=f"{root}{DOCS_STATIC}/favicon.png",
                with_google_fonts=False,
            )
        )


def add_schemas(app: FastAPI, models: list[type[BaseModel]]) -> None:
    """Put ``models`` in the OpenAPI document's components: the bodies routes read themselves (classify's JSON,
    the series' observations) are referenced from their ``openapi_extra`` by ``$ref`` but FastAPI never sees them."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        components = document.setdefault("components", {}).setdefault("schemas", {})
        for model in models:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(schema.pop("$defs", {}))
            components[model.__name__] = schema
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
