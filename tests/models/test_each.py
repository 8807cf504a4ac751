"""``RecursiveForecaster.each``: many series in one compiled call, each row the same to the bit as that series
forecast alone; a combination of several recurrent networks runs unrolled from one series on."""

import numpy as np
import pytest

from models import builders
from models.preprocessing import combine_models
from models.recursive import EACH_ROWS, RecursiveForecaster


@pytest.fixture(scope="module")
def lstm():
    return RecursiveForecaster(builders.build("lstm", lookback=6, units=5))


@pytest.mark.parametrize("batch", [1, 2, 3, 17, EACH_ROWS, EACH_ROWS + 5])
def test_each_row_equals_the_series_alone_to_the_bit(lstm, batch):
    windows = np.random.default_rng(batch).normal(size=(batch, 6))
    alone = np.concatenate([lstm(w[None], 9) for w in windows])
    np.testing.assert_array_equal(lstm.each(windows, 9), alone)


def test_each_shares_one_program_up_to_each_rows_and_says_when_it_would_compile(lstm):
    fresh = RecursiveForecaster(lstm.model)
    assert not fresh.each_is_compiled(3, 9)
    fresh.each(np.zeros((3, 6)), 9)
    assert [fresh.each_is_compiled(n, h) for n, h in ((2, 9), (EACH_ROWS, 100), (EACH_ROWS + 1, 9), (2, 200))] == [
        True,
        True,
        False,  # a larger buffer
        False,  # a longer horizon bucket
    ]
    assert list(fresh._each_programs) == [(EACH_ROWS, 128)]


def test_each_refuses_bad_shapes_like_a_call(lstm):
    with pytest.raises(ValueError, match=r"windows must have shape \(batch, 6\); got \(2, 5\)"):
        lstm.each(np.ones((2, 5)), 3)
    with pytest.raises(ValueError, match=f"each takes at most {lstm.max_batch} windows; got {lstm.max_batch + 1}"):
        lstm.each(np.ones((lstm.max_batch + 1, 6)), 3)


def test_a_combination_of_several_recurrent_networks_runs_unrolled_for_one_series_with_the_same_forecast():
    """Each recurrent layer rolled is a loop per step; with several (an auto combination) the unrolled copy
    is the faster one even for one series. Its forecast is the rolled one's, up to float32 rounding."""
    members = [builders.build("gru", lookback=6, units=4), builders.build("gru", lookback=5, units=3)]
    combination = combine_models(members, [(1.0, 0.0), (2.0, 0.5)])
    forecaster = RecursiveForecaster(combination)
    single = RecursiveForecaster(members[0])
    assert (forecaster.unrolled_from, single.unrolled_from) == (1, 2)
    windows = np.random.default_rng(7).normal(size=(3, 6))
    rolled = RecursiveForecaster(combination)
    rolled.unrolled_from = 10**9  # never unrolled
    for window in windows:
        np.testing.assert_allclose(forecaster(window[None], 12), rolled(window[None], 12), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(
        forecaster.each(windows, 12), np.concatenate([forecaster(w[None], 12) for w in windows])
    )
