"""Every registered forecasting network: builds, learns, and round-trips through a .keras file with safe_mode."""

import keras
import numpy as np
import pytest

from models import builders
from pipelines.forecasting.windows import to_windows
from pipelines.seeding import seed_everything

LOOKBACK = 6


@pytest.fixture(scope="module")
def windows():
    t = np.arange(200)
    series = np.sin(0.3 * t) + 0.05 * np.random.default_rng(1).normal(size=200)
    X, y = to_windows(series, LOOKBACK)
    return np.ascontiguousarray(X, np.float32), np.ascontiguousarray(y, np.float32)


@pytest.mark.parametrize("name", builders.names("forecast"))
def test_forecast_model_conformance(name, windows, tmp_path):
    seed_everything(0)
    X, y = windows
    model = builders.build(name, lookback=LOOKBACK, features=1, learning_rate=1e-2)
    assert model.input_shape == (None, LOOKBACK, 1)
    assert model.output_shape == (None, 1)
    history = model.fit(X, y, epochs=2, batch_size=16, verbose=0, shuffle=False)
    assert history.history["loss"][-1] < history.history["loss"][0]

    path = tmp_path / f"{name}.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(model.predict(X[:32], verbose=0), reloaded.predict(X[:32], verbose=0))


def test_depth_and_units_are_hyperparameters():
    model = builders.build("lstm", lookback=4, units=7, depth=2)
    recurrent = [layer for layer in model.layers if isinstance(layer, keras.layers.LSTM)]
    assert [layer.units for layer in recurrent] == [7, 7]
    assert recurrent[0].return_sequences and not recurrent[1].return_sequences


def test_dense_gru_is_two_dense_then_two_gru():
    model = builders.build("dense_gru", lookback=4)
    kinds = [type(layer).__name__ for layer in model.layers[1:]]
    assert kinds == ["Dense", "Dense", "GRU", "GRU", "Dense"]


def test_unknown_model_names_the_registered_ones():
    with pytest.raises(ValueError, match="unknown model 'transformer'; registered are simple_rnn, lstm"):
        builders.build("transformer", lookback=3)
