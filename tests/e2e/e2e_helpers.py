"""Helpers for the end-to-end tests: the console script, ports, waiting for a server (imported by conftest and tests)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

SEQCAST = str(Path(sys.executable).with_name("seqcast"))
API_KEY = "e2e-key"
MODEL = "sales"  # trained by conftest's ``trained``: version 1 is @champion, version 2 was not promoted


def clean_env(**updates: str) -> dict:
    """This process's environment for a child, without the tracking and registry URIs MLflow's
    ``set_tracking_uri`` writes into it (the child finds its store from ``SEQCAST_DATA_DIR``), plus ``updates``."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    return {**env, **updates}


def seqcast(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([SEQCAST, *args], env=env, capture_output=True, text=True, timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, seconds: float = 120, status: int | None = None) -> httpx.Response:
    """GET ``url`` until it answers (with ``status``, if given) while ``process`` runs."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            r = httpx.get(url, timeout=2)
            if status is None or r.status_code == status:
                return r
        except httpx.TransportError:
            pass
        assert process.poll() is None, f"{process.args} exited"
        assert time.monotonic() < deadline, f"{url} did not answer in {seconds} s"
        time.sleep(0.2)
