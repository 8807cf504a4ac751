"""Dynamic batching of POST /v1/forecast: concurrent requests become one compiled call, each answer identical
to the bit to the same request alone (and to Forecaster.forecast), and a failing series fails only itself."""

from __future__ import annotations

import asyncio
import re

import numpy as np
import pytest
from svc_helpers import HORIZON, LOOKBACK, MODEL, client_for, make_settings

from pipelines.forecasting.forecaster import Forecaster
from pipelines.forecasting.scaling import Scaler
from service.app import create_app
from service.batching import Batcher


def histories(registered, n: int) -> list[list[float]]:
    values = registered["series"].values
    return [values[i : i + LOOKBACK + 2].round(6).tolist() for i in range(n)]


def batch_calls(metrics_text: str) -> tuple[float, float]:
    """(compiled calls, series in them) from seqcast_forecast_batch_size."""
    count = re.search(r"^seqcast_forecast_batch_size_count (\S+)$", metrics_text, re.M)
    total = re.search(r"^seqcast_forecast_batch_size_sum (\S+)$", metrics_text, re.M)
    return float(count.group(1)) if count else 0.0, float(total.group(1)) if total else 0.0


def run(app, bodies: list[dict], concurrent: bool) -> tuple[list, tuple[float, float]]:
    """Each body POSTed to /v1/forecast (all at once, or one after another), after one request that loads the
    model: [(status, json)] and the (calls, series) the batcher added meanwhile."""

    async def go():
        async with client_for(app) as client:
            assert (await client.post("/v1/forecast", json=bodies[0])).status_code == 200  # loaded and cached
            before = batch_calls((await client.get("/metrics")).text)
            if concurrent:
                answers = await asyncio.gather(*(client.post("/v1/forecast", json=b) for b in bodies))
            else:
                answers = [await client.post("/v1/forecast", json=b) for b in bodies]
            after = batch_calls((await client.get("/metrics")).text)
            calls = (after[0] - before[0], after[1] - before[1])
            return [(r.status_code, r.json()) for r in answers], calls

    return asyncio.run(go())


@pytest.fixture(scope="module")
def app(registered, data_dir):
    return create_app(make_settings(data_dir))


def test_concurrent_requests_are_one_call_and_each_answer_is_the_one_it_gets_alone(app, registered):
    bodies = [{"model": MODEL, "history": h, "horizon": HORIZON} for h in histories(registered, 16)]
    alone, alone_calls = run(app, bodies, concurrent=False)
    together, together_calls = run(app, bodies, concurrent=True)
    assert alone_calls == (16, 16)  # one call per request
    assert together_calls == (1, 16)  # all sixteen in one compiled call
    assert together == alone  # the same bits: JSON floats round-trip exactly
    forecaster = registered["forecasters"]["1"]
    for body, (status, answer) in zip(bodies, together, strict=True):
        assert (status, answer) == (
            200,
            {"model": MODEL, "version": "1", "forecast": forecaster.forecast(body["history"], HORIZON).tolist()},
        )


def test_a_bad_request_among_coalesced_ones_fails_alone_with_a_clear_422(app, registered):
    bodies = [{"model": MODEL, "history": h, "horizon": HORIZON} for h in histories(registered, 6)]
    lo, hi = registered["forecasters"]["1"].value_range()
    bodies[2] = {**bodies[2], "history": [*bodies[2]["history"][:-1], 1e9]}
    bodies[4] = {**bodies[4], "horizon": 1000}
    answers, calls = run(app, bodies, concurrent=True)
    assert answers[2] == (
        422,
        {
            "detail": f"history[{LOOKBACK + 1}] is 1e+09, outside the range this model can represent: {lo:.6g} to "
            f"{hi:.6g} (its training data's mean +- 20 standard deviations)"
        },
    )
    assert answers[4] == (422, {"detail": "horizon is 1000; allowed: 1 to 100"})
    good = [i for i in range(6) if i not in (2, 4)]
    assert [answers[i][0] for i in good] == [200] * 4
    assert calls == (1, 4)
    alone, _ = run(app, [bodies[i] for i in good], concurrent=False)
    assert [answers[i] for i in good] == alone


def test_the_settings_bound_the_batches_of_the_app(registered, data_dir):
    app = create_app(make_settings(data_dir, forecast_batch_max_size=4, forecast_batch_wait_ms=3_000))
    bodies = [{"model": MODEL, "history": h, "horizon": HORIZON} for h in histories(registered, 6)]
    answers, calls = run(app, bodies[:4] * 2 + bodies[4:6], concurrent=True)  # 4 + 4 + 2
    assert [status for status, _ in answers] == [200] * 10
    assert calls == (3, 10)
    assert answers[:4] == answers[4:8]
    assert (app.state.batcher.max_size, app.state.batcher.max_wait) == (4, 3.0)


def test_a_lone_request_waits_for_company_and_a_full_batch_does_not(registered):
    """With a wait set, a lone request's call waits (it has not run while the loop turns) until the batch fills or
    the wait runs out; a full batch starts at once, and what queued behind it runs right after it, not after a
    wait of its own. Checked by the calls the batcher makes, not by a clock: the wait is an hour."""
    forecaster = registered["forecasters"]["1"]
    windows = np.array([h[-LOOKBACK:] for h in histories(registered, 10)])
    for size in (1, 2, 4):  # compiled: every call runs inline on the loop, so a call that ran shows at once
        forecaster.forecast_each(windows[:size], HORIZON)
        assert forecaster.each_is_compiled(HORIZON, size)
    batcher = Batcher(max_size=4, max_wait=3600.0)
    calls: list[int] = []
    batcher.on_call = calls.append

    async def go():
        lone = asyncio.ensure_future(batcher.forecast(forecaster, windows[0], HORIZON))
        for _ in range(20):
            await asyncio.sleep(0)
        waited = (lone.done(), list(calls))
        rest = [batcher.forecast(forecaster, w, HORIZON) for w in windows[1:]]  # 3 fill the lone one's batch
        # a bound, not a measurement: a batch that waited out the hour would fail here instead of hanging
        return waited, await asyncio.wait_for(asyncio.gather(lone, *rest), timeout=300)

    waited, outcomes = asyncio.run(go())
    assert waited == (False, [])  # 20 turns of the loop and the lone request's call has not run
    assert calls == [4, 4, 2]  # the full batch ran without waiting, the rest right behind it
    for window, outcome in zip(windows, outcomes, strict=True):
        np.testing.assert_array_equal(outcome, forecaster.forecast(window, HORIZON))

    short = Batcher(max_size=4, max_wait=0.01)
    short.on_call = calls.append
    alone = asyncio.run(short.forecast(forecaster, windows[0], HORIZON))  # nobody comes: it runs when the wait ends
    batcher.close()
    short.close()
    assert calls[3:] == [1]
    np.testing.assert_array_equal(alone, outcomes[0])


def test_a_series_that_fails_inside_a_coalesced_call_fails_only_its_own_request(registered):
    """A log-scaled forecaster cannot transform a 0: the whole call raises, then each series runs alone."""
    source = registered["forecasters"]["1"]
    forecaster = Forecaster(source.model, Scaler(0.0, 1.0, "log"), source.lookback, source.variant)
    windows = np.abs(np.random.default_rng(0).normal(size=(5, LOOKBACK))) + 0.5
    windows[3, 2] = 0.0
    batcher = Batcher(max_size=8)
    seen: list[int] = []
    batcher.on_call = seen.append

    async def go():
        return await asyncio.gather(
            *(batcher.forecast(forecaster, w, HORIZON) for w in windows), return_exceptions=True
        )

    outcomes = asyncio.run(go())
    batcher.close()
    assert seen == [5]
    assert isinstance(outcomes[3], ValueError)
    assert "log-transforms its input" in str(outcomes[3])
    for i in (0, 1, 2, 4):
        np.testing.assert_array_equal(outcomes[i], forecaster.forecast(windows[i], HORIZON))
