"""The forecaster every caller uses: recursive extrapolation equals the predict-per-step loop."""

import json

import numpy as np
import pytest

from models import builders
from pipelines.forecasting.forecaster import CONFIG_FILE, DEFAULT_HORIZON, Calibration, Forecaster, HistoryError
from pipelines.forecasting.scaling import Scaler
from pipelines.seeding import seed_everything


@pytest.fixture(scope="module")
def forecaster():
    seed_everything(3)
    model = builders.build("gru", lookback=5, units=6)
    return Forecaster(model=model, scaler=Scaler(10.0, 2.0), lookback=5, variant="gru", season=1)


def predict_per_step(forecaster, history, horizon):
    """The plain way: one model call per step, each prediction appended to the window."""
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
        forecaster.model,
        forecaster.scaler,
        5,
        "gru",
        1,
        calibration=Calibration([[0.5, 1.0], [1.0, 1.5], [0.2, 0.4]]),
    )
    point = calibrated.forecast(10 + np.arange(10.0), 2)
    assert all(np.isfinite(band).all() for band in calibrated.intervals(point, [0.999999])[0.999999])
    with pytest.raises(HistoryError, match=r"^the 1 interval is not finite: the level is too close to 1 or the "):
        calibrated.intervals(point, [0.9999999999999999])


def test_calibration_is_a_typed_record_in_the_bundle_and_old_bundles_still_load(forecaster, tmp_path):
    from dataclasses import replace

    calibrated = replace(
        forecaster, horizon=2, calibration=Calibration([[0.5, 1.0], [1.0, 1.5]], [20, 22]), meta={"chosen": "gru"}
    )
    saved = json.loads((calibrated.save(tmp_path / "new") / CONFIG_FILE).read_text())
    assert (saved["horizon"], saved["calibration"], saved["meta"]) == (
        2,
        {"abs_residuals": [[0.5, 1.0], [1.0, 1.5]], "origins": [20, 22]},
        {"chosen": "gru"},
    )
    # a bundle saved before the record: the horizon and the residuals were keys of the untyped meta
    old = {k: v for k, v in saved.items() if k not in ("horizon", "calibration")}
    old["meta"] = {
        "horizon": 2,
        "abs_residuals": [[0.5, 1.0], [1.0, 1.5]],
        "calibration_origins": [20, 22],
        "chosen": "gru",
    }
    calibrated.save(tmp_path / "old")
    (tmp_path / "old" / CONFIG_FILE).write_text(json.dumps(old))
    for folder in ("new", "old"):
        loaded = Forecaster.load(tmp_path / folder)
        assert (loaded.horizon, loaded.calibration, loaded.meta) == (2, calibrated.calibration, {"chosen": "gru"})
        assert loaded.calibrated_steps == 2 and loaded.usual_horizon() == 2
    point = calibrated.forecast(10 + np.arange(10.0), 3)
    bands = Forecaster.load(tmp_path / "old").intervals(point, [0.8])[0.8]
    np.testing.assert_array_equal(bands[0], calibrated.intervals(point, [0.8])[0.8][0])


def test_one_default_horizon_for_a_model_that_does_not_say_its_own(forecaster, tmp_path):
    """The Forecaster's and the pyfunc's (it was 12 in one, 1 in the other)."""
    from pipelines.forecasting.pyfunc import FORECASTER_ARTIFACT, SeqcastForecastModel

    uncalibrated = Forecaster(forecaster.model, forecaster.scaler, 5, "gru", 1)
    uncalibrated.save(tmp_path / FORECASTER_ARTIFACT)
    config = json.loads((tmp_path / FORECASTER_ARTIFACT / CONFIG_FILE).read_text())
    del config["horizon"]  # saved before the horizon was kept
    (tmp_path / FORECASTER_ARTIFACT / CONFIG_FILE).write_text(json.dumps(config))
    model = SeqcastForecastModel()
    model.load_context(type("Context", (), {"artifacts": {FORECASTER_ARTIFACT: str(tmp_path / FORECASTER_ARTIFACT)}})())
    history = 10 + np.arange(10.0)
    assert DEFAULT_HORIZON == 12 and uncalibrated.usual_horizon() == DEFAULT_HORIZON
    assert model.predict(None, history).shape == (DEFAULT_HORIZON,)
    assert model.forecaster.calibration is None and model.forecaster.calibrated_steps == 0
