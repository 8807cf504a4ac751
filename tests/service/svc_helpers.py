"""Helpers for the service tests: constants, settings, ASGI calls (imported by conftest and tests)."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from pipelines.settings import Settings
from pipelines.tracking.registry import CHAMPION

MODEL = "svc_sine"
DIGITS = "svc_digits"  # the image classifier conftest's ``digits`` registers
LOOKBACK = 6
HORIZON = 6
API_KEY = "test-key-0123456789"


def copy_versions(client, source: str, name: str) -> str:
    """A new registered model whose versions 1 and 2 are the same artifacts as ``source``'s (no training)."""
    client.create_registered_model(name)
    for version in ("1", "2"):
        found = client.get_model_version(source, version)
        client.create_model_version(name, found.source, run_id=found.run_id)
    client.set_registered_model_alias(name, CHAMPION, "1")
    return name


def make_settings(data_dir, **overrides) -> Settings:
    values = {
        "data_dir": data_dir,
        "api_key": API_KEY,
        "max_horizon": 100,
        "max_body_bytes": 20_000,
        "model_poll_seconds": 0,
        "preload_models": MODEL,
    }
    values.update(overrides)
    return Settings(**values)


def client_for(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://seqcast.test")


async def until_ready(client: httpx.AsyncClient, seconds: float = 60) -> None:
    """Wait for ``/ready`` to answer 200: the app's startup models are served."""
    deadline = time.monotonic() + seconds
    while (await client.get("/ready")).status_code != 200:
        assert time.monotonic() < deadline, "startup models never loaded"
        await asyncio.sleep(0.05)


def call(app, method: str, url: str, **kwargs) -> httpx.Response:
    """One request through the ASGI app (no server, no socket)."""

    async def go():
        async with client_for(app) as client:
            return await client.request(method, url, **kwargs)

    return asyncio.run(go())


def png(array: np.ndarray, size: int | None = None) -> bytes:
    image = Image.fromarray(np.asarray(array, dtype=np.uint8))
    if size:
        image = image.resize((size, size), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def digit_png(digit: np.ndarray, size: int | None = None) -> bytes:
    """A 0..16 digits image as an 8-bit PNG (0..255), optionally scaled up (nearest) to size x size."""
    return png(np.round(digit[..., 0] * 255 / 16), size)


CHROMIUM = Path("/usr/bin/chromium")
NO_BROWSER = f"no {CHROMIUM}: the browser tests drive Debian's chromium (apt-get install chromium)"
NO_PLAYWRIGHT = "playwright comes with the dev extra: pip install -e '.[dev]'"


@contextmanager
def served_in_thread(app, name: str) -> Iterator[str]:
    """``app`` under uvicorn on a free port in a daemon thread, for a real browser; yields its URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
