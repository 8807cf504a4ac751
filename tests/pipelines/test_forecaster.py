"""The forecaster every caller uses: recursive extrapolation equals the notes' predict-per-step loop."""

import numpy as np
import pytest

from models import builders
from pipelines.forecasting.forecaster import Forecaster, HistoryError
from pipelines.forecasting.scaling import Scaler
from pipelines.seeding import seed_everything


@pytest.fixture(scope="module")
def forecaster():
    seed_everything(3)
    model = builders.build("gru", lookback=5, units=6)
    return Forecaster(model=model, scaler=Scaler(10.0, 2.0), lookback=5, variant="gru", season=1)


def predict_per_step(forecaster, history, horizon):
    """The seed's way: one model call per step, each prediction appended to the window."""
    window = list(forecaster.scaler.transform(history[-forecaster.lookback :]))
    out = []
    for _ in range(horizon):
        y = float(
            forecaster.model.predict(np.array(window[-forecaster.lookback :], np.float32)[None, :, None], verbose=0)[
                0, 0
            ]
        )
        window.append(y)
        out.append(y)
    return forecaster.scaler.inverse(out)


def test_recursive_equals_predict_per_step(forecaster):
    history = 10 + 2 * np.sin(np.arange(30) / 3)
    np.testing.assert_allclose(
        forecaster.forecast(history, 13), predict_per_step(forecaster, history, 13), rtol=1e-4, atol=1e-4
    )


def test_batch_equals_singles(forecaster):
    rng = np.random.default_rng(0)
    histories = [10 + rng.normal(size=n) for n in (5, 9, 40)]  # different lengths: only the last lookback matter
    batch = forecaster.forecast_batch(histories, 7)
    assert batch.shape == (3, 7)
    for history, row in zip(histories, batch, strict=True):
        np.testing.assert_allclose(row, forecaster.forecast(history, 7), rtol=1e-5, atol=1e-5)


def test_history_errors_name_the_numbers(forecaster):
    with pytest.raises(HistoryError, match="history has 3 values; this model needs at least 5"):
        forecaster.forecast([1.0, 2.0, 3.0], 4)
    with pytest.raises(HistoryError, match=r"^history\[2\] is nan; only finite numbers are allowed$"):
        forecaster.forecast([1.0, 2.0, np.nan, 4.0, 5.0], 4)
    with pytest.raises(HistoryError, match=r"^history\[4\] is 1e\+09, outside the range this model can represent: "):
        forecaster.forecast([1.0, 2.0, 3.0, 4.0, 1e9], 4)
    with pytest.raises(HistoryError, match="horizon is 0; it must be at least 1"):
        forecaster.forecast(np.ones(5), 0)


def test_save_load_round_trip(forecaster, tmp_path):
    forecaster.save(tmp_path / "f")
    loaded = Forecaster.load(tmp_path / "f")
    history = 10 + np.cos(np.arange(12))
    np.testing.assert_array_equal(loaded.forecast(history, 6), forecaster.forecast(history, 6))
    assert loaded.config() == forecaster.config()


def test_an_interval_that_is_not_finite_is_refused(forecaster):
    """0.9999999999999999 is the float whose (1 + level) / 2 rounds to 1: an infinite quantile; JSON has no inf."""
    calibrated = Forecaster(
        forecaster.model, forecaster.scaler, 5, "gru", 1, meta={"abs_residuals": [[0.5, 1.0], [1.0, 1.5], [0.2, 0.4]]}
    )
    point = calibrated.forecast(10 + np.arange(10.0), 2)
    assert all(np.isfinite(band).all() for band in calibrated.intervals(point, [0.999999])[0.999999])
    with pytest.raises(HistoryError, match=r"^the 1 interval is not finite: the level is too close to 1 or the "):
        calibrated.intervals(point, [0.9999999999999999])
