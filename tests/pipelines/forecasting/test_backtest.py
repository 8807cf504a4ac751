"""The one backtest loop, its folds, the baselines through it, the conformal widths and the auto search's pieces."""

from dataclasses import replace

import numpy as np
import pytest

from models.baselines import BASELINES, drift, naive, seasonal_naive
from pipelines.forecasting import metrics
from pipelines.forecasting.backtest import backtest, fold_origins
from pipelines.forecasting.conformal import backtest_coverage, coverage, extended_widths, interval_widths
from pipelines.forecasting.scaling import Scaler
from pipelines.forecasting.search import (
    MAX_FOLDS,
    Trial,
    backtest_folds,
    best_trial,
    run_trials,
    search_space,
    weekly_season,
)
from pipelines.forecasting.training import TrainConfig


def test_folds_expand_and_overlap_with_a_step():
    assert fold_origins(100, 10, 3) == [70, 80, 90]
    assert fold_origins(100, 10, 4, step=5) == [75, 80, 85, 90]


def test_too_many_folds_name_the_numbers():
    with pytest.raises(
        ValueError, match="series has 30 values; 3 fold\\(s\\) of horizon 10 with step 10 need at least 32"
    ):
        fold_origins(30, 10, 3)


def test_baselines_through_the_one_loop():
    t = np.arange(60, dtype=float)
    season = 12 + np.sin(2 * np.pi * t / 12)
    origins = fold_origins(60, 12, 3, step=6)
    result = backtest(lambda h, H: seasonal_naive(h, H, 12), season, 12, origins, season=12)
    assert result.forecasts.shape == (3, 12)
    assert result.summary()["mase"] == pytest.approx(0.0, abs=1e-9)
    trend = 3.0 + 2 * t
    scored = backtest(lambda h, H: drift(h, H), trend, 5, fold_origins(60, 5, 2), season=1)
    assert scored.summary()["mae"] == pytest.approx(0.0, abs=1e-9)
    per_step = backtest(lambda h, H: naive(h, H), trend, 5, fold_origins(60, 5, 2), season=1).per_step()["mase"]
    np.testing.assert_allclose(per_step, [1, 2, 3, 4, 5])  # naive on a line: one more step of error each step
    assert set(BASELINES) == {"naive", "seasonal_naive", "drift"}


def test_mase_is_scaled_by_the_in_sample_seasonal_naive():
    insample = np.array([1.0, 2, 3, 4, 2, 3, 4, 5])
    assert metrics.naive_scale(insample, 4) == pytest.approx(1.0)
    assert metrics.mase([6.0, 7], [5.0, 5], insample, 4) == pytest.approx(1.5)


def test_conformal_widths_cover_at_their_level_and_grow_with_the_horizon():
    rng = np.random.default_rng(0)
    steps = np.arange(1, 9)
    calibration = np.abs(rng.normal(size=(6, 8)) * steps)
    fresh = rng.normal(size=(4000, 8)) * steps
    for level in (0.8, 0.95):
        widths = interval_widths(calibration, 8, level)
        assert np.all(np.diff(widths) >= 0)
        assert coverage(fresh, np.zeros_like(fresh), widths) == pytest.approx(level, abs=0.06)
    assert interval_widths(calibration, 3, 0.8).shape == (3,)


def test_high_levels_are_at_least_a_student_t_tail_beyond_the_reference_level():
    from scipy import stats

    from pipelines.forecasting.conformal import REFERENCE_LEVEL, tail_ratio

    t5 = stats.t(df=5)
    assert tail_ratio(0.95, 6) == pytest.approx(t5.ppf(0.975) / t5.ppf((1 + REFERENCE_LEVEL) / 2))  # 1.74
    # the fewer folds, the heavier the tail; with many, a normal distribution's 1.53
    assert tail_ratio(0.95, 4) > tail_ratio(0.95, 7) > tail_ratio(0.95, 1000) == pytest.approx(1.53, abs=0.01)
    light = np.full((6, 4), 1.0)  # every error the same size: no tail at all
    light[0] = 1.1
    ratio = tail_ratio(0.95, 6)
    assert interval_widths(light, 4, 0.95) == pytest.approx(interval_widths(light, 4, REFERENCE_LEVEL) * ratio)
    assert np.all(interval_widths(light, 4, 0.5) <= interval_widths(light, 4, REFERENCE_LEVEL))  # below: conformal
    heavy = np.abs(np.random.default_rng(1).standard_cauchy(size=(40, 4)))  # a tail heavier than the floor's:
    ratio = tail_ratio(0.95, 40)
    assert np.all(interval_widths(heavy, 4, 0.95) > ratio * interval_widths(heavy, 4, REFERENCE_LEVEL))  # its own


def test_overlapping_folds_count_as_the_horizons_they_cover_and_widen_the_tail():
    from pipelines.forecasting.conformal import independent_forecasts

    assert independent_forecasts([10, 14, 18, 22, 26, 30], 8) == 3.5  # six folds half a horizon apart
    assert independent_forecasts([0, 24, 36], 24) == 2.5
    assert independent_forecasts([16, 0, 8], 8) == 3.0  # a horizon apart: one each, in any order
    light = np.full((6, 8), 1.0)
    light[0] = 1.1
    np.testing.assert_array_equal(interval_widths(light, 8, 0.8, folds=3.5), interval_widths(light, 8, 0.8))
    assert np.all(interval_widths(light, 8, 0.95, folds=3.5) > interval_widths(light, 8, 0.95))  # 6 rows by default


def test_widths_past_the_calibrated_steps_grow_like_sqrt_h():
    calibration = np.abs(np.random.default_rng(0).normal(size=(6, 4)))
    calibrated = interval_widths(calibration, 4, 0.8)
    np.testing.assert_array_equal(extended_widths(calibration, 3, 0.8), interval_widths(calibration, 3, 0.8))
    np.testing.assert_array_equal(extended_widths(calibration, 4, 0.8), calibrated)
    longer = extended_widths(calibration, 9, 0.8)
    np.testing.assert_array_equal(longer[:4], calibrated)
    np.testing.assert_allclose(longer[4:], calibrated[-1] * np.sqrt(np.arange(5, 10) / 4))


def test_log_scaler_round_trips_and_rejects_non_positive_history():
    values = np.array([1.0, 10.0, 100.0])
    scaler = Scaler.fit(values, "log")
    np.testing.assert_allclose(scaler.inverse(scaler.transform(values)), values)
    assert Scaler.from_dict(scaler.to_dict()) == scaler
    assert Scaler.from_dict({"kind": "standard", "loc": 1.0, "scale": 2.0}) == Scaler(1.0, 2.0)
    with pytest.raises(ValueError, match="history holds 1 value\\(s\\) <= 0 \\(smallest -1\\)"):
        scaler.transform([3.0, -1.0])
    with pytest.raises(ValueError, match="unknown scaler kind 'boxcox'"):
        Scaler(kind="boxcox")


def test_trials_stop_before_one_would_overrun_the_budget():
    now = [0.0]

    def evaluate(config):  # every trial takes 10 s on this clock
        now[0] += 10.0
        return float(config.seed)

    configs = [TrainConfig(seed=s) for s in range(10)]
    trials = run_trials(configs, evaluate, budget_s=45, clock=lambda: now[0])
    # after 4 trials 40 s are spent; a fifth of the mean 10 s would end at 50 s, past the 45 s budget
    assert [t.config.seed for t in trials] == [0, 1, 2, 3]
    assert [t.seconds for t in trials] == [10.0] * 4
    assert best_trial(trials).config.seed == 0
    now[0] = 0.0
    assert len(run_trials(configs, evaluate, budget_s=5, clock=lambda: now[0])) == 1  # the first always runs


def test_a_trial_count_ignores_the_clock():
    ticks = iter(range(0, 100_000, 100))  # every reading 100 s later: a budget would stop after the first
    configs = [TrainConfig(seed=s) for s in range(10)]
    trials = run_trials(configs, lambda c: float(c.seed), budget_s=45, clock=lambda: next(ticks), max_trials=4)
    assert [t.config.seed for t in trials] == [0, 1, 2, 3]


def test_failed_trials_are_skipped_and_all_failing_is_explained():
    def evaluate(config):
        if config.seed == 0:
            raise ValueError("history too short")
        return 2.0

    trials = run_trials([TrainConfig(seed=0), TrainConfig(seed=1)], evaluate, budget_s=1e9)
    assert best_trial(trials).config.seed == 1
    with pytest.raises(ValueError, match="no configuration could be trained .* history too short"):
        best_trial([Trial(TrainConfig(), float("inf"), 0.0, "history too short")])


def test_search_space_is_season_aware():
    base = TrainConfig(variant="auto").resolved(4000, 48, 96)
    base = base.__class__(**{**base.params(), "folds": 6, "fold_step": 48})
    configs = search_space(base, 4000, positive=True, freq="30min")
    shapes = {(c.normalise, c.normalise_season, c.lookback) for c in configs}
    assert ("seasonal", 336, 384) in shapes and ("seasonal", 48, base.lookback) in shapes
    assert ("profile", 48, 144) in shapes  # three seasons where the series has room for them
    short = search_space(TrainConfig(variant="auto").resolved(60, 12, 6), 60, positive=True)
    assert {(c.normalise, c.lookback) for c in short if c.normalise == "profile"} == {("profile", 24)}
    assert {c.transform for c in configs} == {"standard", "log"}
    assert weekly_season("MS", 12) is None and weekly_season("h", 24) == 168
    yearly = search_space(TrainConfig(variant="auto").resolved(100, 1, 10), 100, positive=False)
    assert {(c.normalise, c.normalise_season) for c in yearly} == {("last", None), ("seasonal", 1), ("mean", None)}
    assert {c.transform for c in yearly} == {"standard"}


def test_backtest_folds_leave_most_of_the_series_to_fit():
    """Folds half a horizon apart, as many as leave 65% of the series (and a lookback + 8) before the first origin."""
    assert backtest_folds(150, 24, 24) == (3, 12)  # the first origin leaves 102 >= 97 to fit on; a 4th, 90
    assert backtest_folds(30, 6, 8) == (2, 3)  # 21 >= 19; a 3rd would leave 18
    assert backtest_folds(30, 6, 13) == (2, 3)  # 21 = 13 + 8: exactly enough
    assert backtest_folds(30, 6, 14) == (1, 3)  # 21 < 14 + 8
    assert backtest_folds(20, 6, 8) == (1, 3)  # not even 2 fit (11 < 16): the one fold stays
    assert backtest_folds(2000, 10, 8) == (MAX_FOLDS, 5)  # room for many more: capped
    assert backtest_folds(7, 1, 1) == (1, 1)  # a horizon of 1 still steps by 1


def test_a_combination_forecasts_the_mean_of_its_members_forecasts_and_round_trips(tmp_path):
    from pipelines.forecasting.forecaster import Forecaster
    from pipelines.forecasting.search import combine_forecasters
    from pipelines.forecasting.training import fit_forecaster

    t = np.arange(80, dtype=float)
    values = 50 + 0.5 * t + 3 * np.sin(2 * np.pi * t / 4)
    configs = [
        TrainConfig(variant="mlp", lookback=8, season=4, normalise="seasonal", epochs=3, transform="log"),
        TrainConfig(variant="mlp", lookback=5, season=4, normalise="last", epochs=3, transform="log", members=2),
    ]
    members = [fit_forecaster(values[: 60 + 10 * k], c)[0] for k, c in enumerate(configs)]  # different scalers
    combined = combine_forecasters(members)
    assert combined.lookback == 8
    # each member recurses on its own forecasts; the paths are averaged in the (log) model space: a geometric
    # mean in the data's space
    expected = np.exp(np.mean([np.log(m.forecast(values, 6)) for m in members], axis=0))
    np.testing.assert_allclose(combined.forecast(values, 6), expected, rtol=1e-4)
    reloaded = Forecaster.load(combined.save(tmp_path / "combined"))
    np.testing.assert_allclose(reloaded.forecast(values, 6), expected, rtol=1e-4)


def test_backtest_coverage_leaves_each_fold_out():
    rng = np.random.default_rng(1)
    residuals = np.abs(rng.normal(size=(40, 5)))
    cov = backtest_coverage(residuals)
    assert cov["interval_coverage_80"] == pytest.approx(0.8, abs=0.07)
    assert cov["interval_coverage_95"] == pytest.approx(0.95, abs=0.05)
    assert backtest_coverage(residuals[:1]) == {}


def test_calibration_origins_lie_before_the_backtest_and_leave_enough_to_fit(monkeypatch):
    from pipelines.forecasting import search

    assert search.CALIBRATION_REFITS == 1
    assert search.calibration_origins(130, 20, 90, lookback=12) == [70]  # a horizon before the first fold
    assert search.calibration_origins(30, 6, 21, lookback=8) == []  # a short series keeps only its backtest folds
    monkeypatch.setattr(search, "CALIBRATION_REFITS", 2)
    assert search.calibration_origins(130, 20, 90, lookback=12) == [50, 70]  # a horizon apart
    assert search.calibration_origins(1000, 10, 900, lookback=12) == [880, 890]
    assert search.calibration_origins(130, 20, 90, lookback=24) == [70]  # 50 leaves fewer than 2 * 24 + 8 to fit on


def test_calibration_errors_come_from_refits_that_see_only_the_past():
    from pipelines.forecasting.data import Series
    from pipelines.forecasting.search import calibration_errors
    from pipelines.forecasting.training import fit_forecaster

    t = np.arange(90, dtype=float)
    values = 20 + 0.2 * t + np.sin(2 * np.pi * t / 4)
    config = TrainConfig(variant="mlp", lookback=8, season=4, horizon=6, epochs=1)
    errors = calibration_errors(Series("cal", values, season=4), [config], [40, 60])
    assert errors.shape == (2, 6)
    for row, origin in zip(errors, [40, 60], strict=True):
        refit = fit_forecaster(values[:origin], config)[0]
        np.testing.assert_allclose(row, values[origin : origin + 6] - refit.forecast(values[:origin], 6), rtol=1e-5)

    later = values.copy()
    later[66:] += 100  # what follows the last calibration forecast cannot change it
    np.testing.assert_array_equal(calibration_errors(Series("cal", later, season=4), [config], [40, 60]), errors)
    assert calibration_errors(Series("cal", values, season=4), [config], []).shape == (0, 6)


def test_an_epoch_is_at_most_epoch_steps_batches():
    import keras

    from pipelines.forecasting.training import fit_forecaster

    class Batches(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.per_epoch: list[int] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.per_epoch.append(0)

        def on_train_batch_end(self, batch, logs=None):
            self.per_epoch[-1] += 1

    values = np.sin(np.arange(400) / 5.0)  # 388 windows: 310 to fit on, 10 batches of 32 a pass
    config = TrainConfig(variant="mlp", lookback=12, season=1, horizon=6, epochs=3, patience=10)
    for epoch_steps, batches in ((None, 10), (4, 4)):
        counted = Batches()
        fit_forecaster(values, replace(config, epoch_steps=epoch_steps), callbacks=[counted])
        assert counted.per_epoch == [batches] * 3


def test_a_reused_network_trains_as_a_new_one_and_leaves_earlier_forecasters_alone():
    from pipelines.forecasting import training

    values = 10 + np.sin(np.arange(120) / 3.0)
    other_values = 10 + np.cos(np.arange(100) / 2.0)
    config = TrainConfig(variant="mlp", lookback=8, season=1, horizon=4, epochs=5, normalise="last", members=2)
    training._trainers.__dict__.pop("cache", None)  # this thread's first fit of the architecture: a new network
    first, first_curves = training.fit_forecaster(values, config)
    kept = first.model.get_weights()
    training.fit_forecaster(other_values, config)  # the same architecture: the network just trained, reset
    again, again_curves = training.fit_forecaster(values, config)
    assert len(training._trainers.cache) == 1
    assert again_curves == first_curves
    for weights in (again.model.get_weights(), first.model.get_weights()):  # the first forecaster kept its own
        for got, want in zip(weights, kept, strict=True):
            np.testing.assert_array_equal(got, want)
