"""The preprocessing layers inside forecasting models: baselines at initialisation, serialisable, safe_mode."""

import keras
import numpy as np
import pytest

from models import builders
from models.baselines import naive, seasonal_naive
from models.preprocessing import Affine, LastSteps, MemberMean, WindowDenormalise, WindowNormalise, build_forecast_model
from models.recursive import RecursiveForecaster
from pipelines.seeding import seed_everything

LOOKBACK, SEASON = 8, 4


def _model(normalise, members=1, variant="mlp"):
    seed_everything(0)
    return build_forecast_model(
        lambda length: builders.build(variant, lookback=length, units=4),
        LOOKBACK,
        normalise=normalise,
        season=SEASON,
        members=members,
    )


@pytest.fixture(scope="module")
def windows():
    t = np.arange(40)
    series = 0.1 * t + np.sin(2 * np.pi * t / SEASON) + 0.1 * np.random.default_rng(0).normal(size=40)
    return np.stack([series[i : i + LOOKBACK] for i in range(20)]).astype(np.float32)


@pytest.mark.parametrize(
    "layer",
    [
        WindowNormalise("seasonal", 4),
        WindowNormalise("profile", 4),
        WindowNormalise("last"),
        WindowDenormalise(),
        MemberMean(),
        Affine(2.0, -1.0),
        LastSteps(3),
        LastSteps(3, channel=1),
    ],
)
def test_layers_round_trip_their_config(layer):
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_unknown_normalisation_names_the_allowed_ones():
    with pytest.raises(
        ValueError, match="unknown normalisation 'zscore'; allowed: none, last, mean, seasonal, profile"
    ):
        WindowNormalise("zscore")


@pytest.mark.parametrize("normalise, lookback, needed", [("seasonal", 5, 6), ("profile", 7, 8)])
def test_lookback_too_short_for_the_season_is_explained(normalise, lookback, needed):
    with pytest.raises(
        ValueError,
        match=f"lookback {lookback} is too short for '{normalise}' normalisation with season 4; it needs at least {needed}",
    ):
        build_forecast_model(lambda n: builders.build("mlp", lookback=n), lookback, normalise=normalise, season=4)


def level_plus_profile(windows, season=SEASON):
    """The ``profile`` baseline written out: last season's mean + the next phase's mean seasonal deviation."""
    k = windows.shape[1] // season
    cycles = windows[:, -k * season :].reshape(len(windows), k, season)
    deviations = cycles - cycles.mean(axis=2, keepdims=True)
    return cycles[:, -1].mean(axis=1) + deviations[:, :, 0].mean(axis=1)


@pytest.mark.parametrize(
    "normalise, baseline",
    [
        ("last", lambda w: naive(w, 1)[:, 0]),
        ("seasonal", lambda w: seasonal_naive(w, 1, SEASON)[:, 0]),
        ("mean", lambda w: w.mean(axis=1)),
        ("profile", level_plus_profile),
        ("none", lambda w: np.zeros(len(w))),
    ],
)
def test_untrained_model_is_its_normalisations_baseline(normalise, baseline, windows):
    _, serve = _model(normalise, members=3)
    np.testing.assert_allclose(serve.predict(windows[:, :, None], verbose=0)[:, 0], baseline(windows), atol=1e-5)


def test_seasonal_model_recurses_as_seasonal_naive(windows):
    _, serve = _model("seasonal")
    recursive = RecursiveForecaster(serve)(windows, 9)
    np.testing.assert_allclose(recursive, seasonal_naive(list(windows), 9, SEASON), atol=1e-5)


def test_profile_model_recurses_as_level_plus_profile(windows):
    _, serve = _model("profile")
    recursive = RecursiveForecaster(serve)(windows, 5)
    history = windows.astype(np.float64)
    for _ in range(5):  # each step's window includes the steps forecast before it
        history = np.concatenate([history, level_plus_profile(history[:, -LOOKBACK:])[:, None]], axis=1)
    np.testing.assert_allclose(recursive, history[:, LOOKBACK:], atol=1e-4)


@pytest.mark.parametrize("normalise", ["last", "seasonal", "profile"])
def test_ensemble_trains_and_round_trips_with_safe_mode(normalise, windows, tmp_path):
    train, serve = _model(normalise, members=3, variant="gru")
    train.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    X, y = windows[:, :-1, None], windows[:, -1:]
    X = np.concatenate([X, X[:, -1:]], axis=1)  # any (B, LOOKBACK, 1) input will do
    train.fit(X, np.repeat(y, 3, axis=1), epochs=3, verbose=0)
    assert train.output_shape == (None, 3) and serve.output_shape == (None, 1)
    path = tmp_path / "ensemble.keras"
    serve.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    np.testing.assert_allclose(reloaded.predict(X, verbose=0), serve.predict(X, verbose=0), rtol=1e-6)
    members = serve.predict(X, verbose=0)
    np.testing.assert_allclose(members[:, 0], train.predict(X, verbose=0).mean(axis=1), rtol=1e-5)
