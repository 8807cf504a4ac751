"""The compiled recursive loop equals the plain predict-per-step loop, for one series, a batch and a combination."""

import numpy as np
import pytest

from models import builders
from models.recursive import RecursiveForecaster, unrolled_copy


def predict_loop(model, window, horizon):
    window, out = window.astype(np.float32).copy(), []
    for _ in range(horizon):
        y = float(model.predict(window[None, :, None], verbose=0)[0, 0])
        out.append(y)
        window = np.append(window[1:], y)
    return np.array(out)


@pytest.fixture(scope="module")
def model():
    return builders.build("lstm", lookback=5, units=6)


@pytest.mark.parametrize("horizon", [1, 7, 20])
def test_one_series_matches_the_predict_loop(model, horizon):
    window = np.random.default_rng(horizon).normal(size=5)
    got = RecursiveForecaster(model)(window[None], horizon)
    assert got.shape == (1, horizon)
    np.testing.assert_allclose(got[0], predict_loop(model, window, horizon), rtol=1e-4, atol=1e-5)


def test_a_padded_batch_runs_the_unrolled_copy_and_matches(model):
    windows = np.random.default_rng(0).normal(size=(3, 5))  # padded to a batch of 4
    forecaster = RecursiveForecaster(model)
    assert forecaster._unrolled() is not None
    got = forecaster(windows, 9)
    assert got.shape == (3, 9)
    for window, row in zip(windows, got, strict=True):
        np.testing.assert_allclose(row, predict_loop(model, window, 9), rtol=1e-4, atol=1e-5)


def test_models_without_recurrent_layers_are_not_copied():
    assert unrolled_copy(builders.build("lstm", lookback=3, units=2)) is not None
    import keras

    inputs = keras.Input((4, 1))
    dense = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Flatten()(inputs)))
    assert unrolled_copy(dense) is None
    np.testing.assert_allclose(RecursiveForecaster(dense)(np.ones((2, 4)), 3).shape, (2, 3))


def test_bad_shapes_are_value_errors(model):
    with pytest.raises(ValueError, match=r"windows must have shape \(batch, 5\); got \(1, 4\)"):
        RecursiveForecaster(model)(np.ones((1, 4)), 3)
    with pytest.raises(ValueError, match="horizon is 0; it must be at least 1"):
        RecursiveForecaster(model)(np.ones((1, 5)), 0)


def test_a_model_with_paths_feeds_each_path_its_own_forecasts_and_averages_them():
    from models.preprocessing import combine_models

    members = [builders.build("lstm", lookback=5, units=6), builders.build("mlp", lookback=4, units=3)]
    combination = combine_models(members, [(1.0, 0.0), (2.0, 0.5)])  # the second member works in 2x + 0.5
    windows = np.random.default_rng(3).normal(size=(3, 5))  # a batch: the unrolled copy runs too
    got = RecursiveForecaster(combination)(windows, 6)
    for window, row in zip(windows, got, strict=True):
        own_paths = [predict_loop(members[0], window, 6), (predict_loop(members[1], 2 * window[1:] + 0.5, 6) - 0.5) / 2]
        np.testing.assert_allclose(row, np.mean(own_paths, axis=0), rtol=1e-4, atol=1e-5)


# --- bounded compiled programs, compiling off the hot path ---------------------------------------------------

GOLDEN = {  # (batch, horizon): {row: forecast}, from the implementation before the bound (one program per shape)
    (1, 7): {0: [-0.1197205, -0.1482874, -0.1757997, -0.1941165, -0.2082731, -0.2222661, -0.2267697]},
    (3, 20): {
        0: [
            -0.2461986,
            -0.2616777,
            -0.2479391,
            -0.2458993,
            -0.2396149,
            -0.2367379,
            -0.2356309,
            -0.234852,
            -0.2343951,
            -0.2341178,
            -0.2339675,
            -0.2338822,
            -0.233832,
            -0.2338031,
            -0.2337865,
            -0.233777,
            -0.2337715,
            -0.2337684,
            -0.2337666,
            -0.2337656,
        ],
        2: [
            -0.3657729,
            -0.327616,
            -0.2982656,
            -0.2765465,
            -0.2577285,
            -0.245926,
            -0.241108,
            -0.2380904,
            -0.2362546,
            -0.2351782,
            -0.2345736,
            -0.2342329,
            -0.2340339,
            -0.2339191,
            -0.2338531,
            -0.2338153,
            -0.2337936,
            -0.2337811,
            -0.2337739,
            -0.2337698,
        ],
    },
    (300, 6): {
        0: [-0.205558, -0.2110272, -0.2164599, -0.2236775, -0.2283118, -0.2308529],
        150: [-0.424952, -0.3696011, -0.3284335, -0.3004132, -0.2707638, -0.2520753],
        299: [-0.1597033, -0.1320433, -0.1542206, -0.1581715, -0.1853588, -0.2155268],
    },
    (1100, 4): {  # past max_batch: a chunk of 1024 and one of 76
        0: [-0.3133007, -0.2890801, -0.2749194, -0.2684463],
        1023: [-0.0890875, -0.1438373, -0.1789049, -0.2027823],
        1024: [-0.4052002, -0.3582346, -0.3267187, -0.2981595],
        1099: [-0.0152858, -0.089624, -0.1457551, -0.1812221],
    },
}


@pytest.fixture(scope="module")
def fixed_model():
    model = builders.build("lstm", lookback=5, units=6)
    rng = np.random.default_rng(42)
    model.set_weights([rng.normal(scale=0.5, size=w.shape).astype(np.float32) for w in model.get_weights()])
    return model


@pytest.fixture(scope="module")
def reference(model):
    """One program per shape (the bound never reached in these tests): what bounded forecasters must equal."""
    return RecursiveForecaster(model, max_programs=100)


def windows_for(batch, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, 5))


def test_results_equal_the_implementation_before_the_bound(fixed_model):
    forecaster = RecursiveForecaster(fixed_model)
    for (batch, horizon), rows in GOLDEN.items():
        got = forecaster(np.random.default_rng(batch).normal(size=(batch, 5)), horizon)
        assert got.shape == (batch, horizon)
        for row, expected in rows.items():
            np.testing.assert_allclose(got[row], expected, atol=2e-7, err_msg=f"batch {batch} row {row}")
    # 1, 4, 512 and 1024 rows with a buffer of 128 steps; the remainder of 76 rides in a chunk of 1024
    assert set(forecaster.compiled_shapes) == {(1, 128), (4, 128), (512, 128), (1024, 128)}


def test_the_programs_never_exceed_the_bound_and_shapes_past_it_forecast_the_same(model, reference):
    forecaster = RecursiveForecaster(model, max_programs=2)
    for batch in [1, 3, 9, 2, 17, 3]:
        windows = windows_for(batch, seed=batch)
        got = forecaster(windows, 5)
        assert sum(b > 1 for b, _ in forecaster.compiled_shapes) <= 2
        np.testing.assert_allclose(got, reference(windows, 5), rtol=1e-5, atol=1e-6, err_msg=f"batch {batch}")
    assert forecaster.compiled_shapes == ((1, 128), (4, 128), (16, 128))  # one series has its own, outside the bound
    assert forecaster.traces == 3  # nothing traced (so nothing compiled) past the bound: 2 padded to 4, 17 as 16 + 1


def test_is_compiled_is_false_before_compile_and_true_after_and_then_a_call_does_not_trace(model, reference):
    forecaster = RecursiveForecaster(model)
    assert not forecaster.is_compiled(3, 10)
    forecaster.compile(3, 10)
    assert forecaster.traces == 1
    assert forecaster.is_compiled(3, 10) and forecaster.is_compiled(4, 128)  # the same buckets
    assert (
        not forecaster.is_compiled(5, 10) and not forecaster.is_compiled(3, 129) and not forecaster.is_compiled(1, 10)
    )
    windows = windows_for(3)
    np.testing.assert_allclose(forecaster(windows, 10), reference(windows, 10), rtol=1e-5, atol=1e-6)
    assert forecaster.traces == 1
    forecaster.compile(3, 10)  # nothing left to compile
    assert forecaster.traces == 1


def test_large_batches_run_in_chunks_of_max_batch(model, reference):
    forecaster = RecursiveForecaster(model, max_batch=4)
    windows = windows_for(10)
    np.testing.assert_allclose(forecaster(windows, 3), reference(windows, 3), rtol=1e-5, atol=1e-6)
    assert forecaster.compiled_shapes == ((4, 128),)  # 4 + 4 + 2: the remainder is not worth its own program
    assert forecaster.is_compiled(1000, 3)
    with pytest.raises(ValueError, match="max_batch is 6; it must be a power of two"):
        RecursiveForecaster(model, max_batch=6)


def test_one_series_and_a_horizon_longer_than_every_program_are_the_exceptions_to_the_bound(model, reference):
    forecaster = RecursiveForecaster(model, max_programs=1)
    forecaster.compile(2, 5)
    assert forecaster.is_compiled(64, 100)  # full: 64 series run in chunks of 2
    assert not forecaster.is_compiled(1, 5)  # one series never runs padded: it gets its own program
    assert not forecaster.is_compiled(3, 129)  # nothing compiled is that long
    windows = windows_for(3)
    np.testing.assert_allclose(forecaster(windows, 130), reference(windows, 130), rtol=1e-5, atol=1e-6)
    forecaster.compile(1, 5)
    assert forecaster.compiled_shapes == ((2, 128), (4, 1024), (1, 128))
    assert forecaster.is_compiled(1, 100) and forecaster.is_compiled(64, 1000)
    assert forecaster.traces == 3


def test_concurrent_first_calls_trace_once(model, reference):
    import threading

    forecaster = RecursiveForecaster(model)
    windows = windows_for(6)
    results, start = [None] * 6, threading.Barrier(6)

    def run(i):
        start.wait()
        results[i] = forecaster(windows, 7)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert forecaster.traces == 1
    for got in results:
        np.testing.assert_allclose(got, reference(windows, 7), rtol=1e-5, atol=1e-6)
