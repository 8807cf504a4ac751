"""Moving @champion while forecasts are in flight: zero errors, only the two versions, each answer from the
version it names; the poller notices a moved alias on its own."""

from __future__ import annotations

import asyncio
import time

from svc_helpers import API_KEY, MODEL, client_for, copy_versions, make_settings

from pipelines.tracking.registry import CHAMPION
from service.app import create_app

HISTORY = [10.0, 10.5, 11.0, 10.2, 9.8, 9.5, 9.9, 10.4]


def test_moving_champion_under_load_swaps_atomically(registered, data_dir):
    name = copy_versions(registered["client"], MODEL, "svc_swap")
    client_mlflow = registered["client"]
    expected = {v: f.forecast(HISTORY, 6).tolist() for v, f in registered["forecasters"].items()}
    app = create_app(make_settings(data_dir, preload_models=""))
    body = {"model": name, "history": HISTORY, "horizon": 6}
    results = []  # (start order, status, body)
    moved_at = None  # start order of the first request begun after the alias moved
    swap_done_at = None  # start order of the first request begun after the reload returned

    async def main():
        nonlocal moved_at, swap_done_at
        async with client_for(app) as client:
            first = await client.post("/v1/forecast", json=body)  # loads @champion = version 1
            assert first.json()["version"] == "1"
            started = 0

            async def worker():
                nonlocal started
                while swap_done_at is None or started < swap_done_at + 80:
                    order = started
                    started += 1
                    r = await client.post("/v1/forecast", json=body)
                    results.append((order, r.status_code, r.json()))
                    await asyncio.sleep(0)  # in process, a cached forecast never suspends: let the mover run

            async def mover():
                nonlocal moved_at, swap_done_at
                while len(results) < 60:
                    await asyncio.sleep(0.001)
                moved_at = started
                client_mlflow.set_registered_model_alias(name, CHAMPION, "2")
                r = await client.post(f"/v1/models/{name}/reload", headers={"X-API-Key": API_KEY})
                assert r.json() == {
                    "name": name,
                    "changes": [{"ref": "@champion", "version": "2", "previous": "1", "changed": True}],
                }
                swap_done_at = started

            await asyncio.gather(*(worker() for _ in range(16)), mover())

    asyncio.run(main())
    assert len(results) >= 200
    assert [status for _, status, _ in results if status != 200] == []
    assert {b["version"] for _, _, b in results} == {"1", "2"}
    for _, _, b in results:
        assert b["forecast"] == expected[b["version"]]  # every answer comes whole from the version it names
    assert {b["version"] for order, _, b in results if order >= swap_done_at} == {"2"}
    # nothing swaps before the alias moves: every request begun earlier is answered by version 1
    assert {b["version"] for order, _, b in results if order < moved_at} == {"1"}


def test_poller_notices_a_moved_alias(registered, data_dir):
    name = copy_versions(registered["client"], MODEL, "svc_poll")
    app = create_app(make_settings(data_dir, preload_models=name, model_poll_seconds=0.2))
    body = {"model": name, "history": HISTORY, "horizon": 3}

    async def main():
        async with app.router.lifespan_context(app), client_for(app) as client:
            deadline = time.monotonic() + 60
            while (await client.get("/ready")).status_code != 200:
                assert time.monotonic() < deadline, "startup models never loaded"
                await asyncio.sleep(0.05)
            assert (await client.post("/v1/forecast", json=body)).json()["version"] == "1"
            registered["client"].set_registered_model_alias(name, CHAMPION, "2")
            versions = []
            while not versions or versions[-1] != "2":
                assert time.monotonic() < deadline, f"the poller did not pick up @champion -> 2: {versions[-5:]}"
                r = await client.post("/v1/forecast", json=body)
                assert r.status_code == 200
                versions.append(r.json()["version"])
                await asyncio.sleep(0.05)
            metrics = (await client.get("/metrics")).text
            assert f'seqcast_model_swaps_total{{model="{name}"}} 1.0' in metrics

    asyncio.run(main())
