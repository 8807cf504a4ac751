"""The compiled recursive loop equals the seed's predict-per-step loop, for one series, a batch and a combination."""

import numpy as np
import pytest

from models import registry
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
    return registry.build("lstm", lookback=5, units=6)


@pytest.mark.parametrize("horizon", [1, 7, 20])
def test_one_series_matches_the_predict_loop(model, horizon):
    window = np.random.default_rng(horizon).normal(size=5)
    got = RecursiveForecaster(model)(window[None], horizon)
    assert got.shape == (1, horizon)
    np.testing.assert_allclose(got[0], predict_loop(model, window, horizon), rtol=1e-4, atol=1e-5)


def test_a_padded_batch_runs_the_unrolled_copy_and_matches(model):
    windows = np.random.default_rng(0).normal(size=(3, 5))  # padded to a batch of 4
    forecaster = RecursiveForecaster(model)
    assert forecaster._unrolled is not None
    got = forecaster(windows, 9)
    assert got.shape == (3, 9)
    for window, row in zip(windows, got):
        np.testing.assert_allclose(row, predict_loop(model, window, 9), rtol=1e-4, atol=1e-5)


def test_models_without_recurrent_layers_are_not_copied():
    assert unrolled_copy(registry.build("lstm", lookback=3, units=2)) is not None
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

    members = [registry.build("lstm", lookback=5, units=6), registry.build("mlp", lookback=4, units=3)]
    combination = combine_models(members, [(1.0, 0.0), (2.0, 0.5)])  # the second member works in 2x + 0.5
    windows = np.random.default_rng(3).normal(size=(3, 5))  # a batch: the unrolled copy runs too
    got = RecursiveForecaster(combination)(windows, 6)
    for window, row in zip(windows, got):
        own_paths = [predict_loop(members[0], window, 6), (predict_loop(members[1], 2 * window[1:] + 0.5, 6) - 0.5) / 2]
        np.testing.assert_allclose(row, np.mean(own_paths, axis=0), rtol=1e-4, atol=1e-5)
