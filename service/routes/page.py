"""The page at ``/``: static files under ``service/static/`` (no templating, no build step) that call the REST
API, ``GET /v1/models/{name}/scores`` (``routes/models.py``) included."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
STATIC = StaticFiles(directory=STATIC_DIR)  # mounted at /static by create_app

router = APIRouter(tags=["page"])


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html")
