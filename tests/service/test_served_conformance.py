"""What ``--variant auto`` can register is what ``seqcast serve`` answers: every global transform x every
per-window normalisation (the network family alternating, so both appear) and a forecast combination, each
fitted briefly, registered through the pipeline's own path, loaded by the app from the registry and asked
over ``POST /v1/forecast``; the body must be exactly the in-process forecast (and intervals) of the very
Forecaster that was registered.

The cells come from ``pipelines.forecasting.search.search_space``, so a new transform or normalisation is covered here
without editing this file. Fitting and registering happen once per module (``served`` below)."""

from __future__ import annotations

import logging
from dataclasses import replace

import mlflow
import numpy as np
import pytest
from svc_helpers import call, make_settings

from models.preprocessing import NORMALISATIONS
from pipelines import tracking
from pipelines.forecasting.backtest import backtest, fold_origins
from pipelines.forecasting.data import Series
from pipelines.forecasting.forecaster import Calibration
from pipelines.forecasting.pipeline import Candidate, _log_model, train_candidate
from pipelines.forecasting.scaling import KINDS
from pipelines.forecasting.search import backtest_folds, combine_forecasters, search_space
from pipelines.forecasting.training import TrainConfig
from pipelines.tracking import registry
from pipelines.tracking.tags import FORECAST, ModelFacts

SEASON = 12
HORIZON = 12
LENGTH = 144  # long enough for the search's three-season profile: members of the combination look back 36 and 24
EPOCHS = 2
LEVELS = [0.8, 0.95]
COMBINATION = "combination"


def _series() -> Series:
    """Positive (so the search offers ``log``) and seasonal, a little trend and noise."""
    t = np.arange(LENGTH)
    values = 10 + np.sin(2 * np.pi * t / SEASON) + 0.01 * t + 0.1 * np.random.default_rng(0).normal(size=LENGTH)
    return Series("conformance", values, season=SEASON, source="test: seasonal sine")


def _base() -> TrainConfig:
    """The search's base configuration for this series, as ``auto_search`` resolves it."""
    base = TrainConfig(variant="auto", horizon=HORIZON, season=SEASON).resolved(LENGTH, SEASON, None)
    folds, step = backtest_folds(LENGTH, base.horizon, base.lookback)
    return replace(base, folds=folds, fold_step=step)


def _cells() -> dict[str, TrainConfig]:
    """One configuration per (transform, normalisation) the search produces, its first shape for that pair,
    the family alternating along the grid; trained for ``EPOCHS`` only, and backtested on one fold (a batch
    of one compiles the same program the forecasts below use; the search's overlapping folds would compile
    a second, unrolled one per model and double this file's time)."""
    space = search_space(_base(), LENGTH, positive=True)
    transforms = list(dict.fromkeys(c.transform for c in space))
    normalisations = list(dict.fromkeys(c.normalise for c in space))
    families = list(dict.fromkeys(c.variant for c in space))
    cells = {}
    for i, transform in enumerate(transforms):
        for j, normalise in enumerate(normalisations):
            family = families[(i + j) % len(families)]
            config = next(c for c in space if (c.transform, c.normalise, c.variant) == (transform, normalise, family))
            cells[f"{transform}-{normalise}-{family}"] = replace(config, epochs=EPOCHS, folds=1, fold_step=None)
    return cells


CELLS = _cells()
COMBINED = [k for k in CELLS if k.startswith(f"{KINDS[0]}-")][:3]  # the search combines one transform's configs
MODELS = [*CELLS, COMBINATION]


def _name(cell: str) -> str:
    return f"conf_{cell.replace('-', '_')}"


def _register(candidate: Candidate, name: str) -> str:
    """The pipeline's registration: in an MLflow run, log the pyfunc, register it, first version -> @champion."""
    client, experiment_id = tracking.open_experiment(name)
    with mlflow.start_run(experiment_id=experiment_id, run_name=name):
        assert registry.champion_uri(client, name) is None, f"{name} already has a champion"
        scores = registry.Scores(candidate.score)
        facts = ModelFacts(FORECAST, candidate.config.variant)
        version = _log_model(candidate, name)
        registration = registry.record(client, name, version, facts, scores, registry.decide(scores))
    assert registration.promoted
    return registration.version


def _combination(series: Series, members: list[Candidate]) -> Candidate:
    """Like ``auto_search``: the members combined in one Keras model, backtested on the same folds, that
    backtest's residuals for the intervals."""
    config = members[0].config
    combined = combine_forecasters([m.forecaster for m in members])
    origins = fold_origins(len(series), config.horizon, config.folds, config.fold_step)
    result = backtest(combined.forecast_batch, series.values, config.horizon, origins, config.season)
    combined.horizon, combined.calibration = config.horizon, Calibration(np.abs(result.errors).round(10).tolist())
    combined.meta["chosen"] = " + ".join(m.config.describe() for m in members)
    return Candidate(config, combined, {}, result)


@pytest.fixture(scope="module")
def served(data_dir):
    """Every cell and the combination fitted, registered (@champion), and the app that serves them."""
    from service.app import create_app

    series = _series()
    candidates = {cell: train_candidate(series, config) for cell, config in CELLS.items()}
    candidates[COMBINATION] = _combination(series, [candidates[c] for c in COMBINED])
    versions = {cell: _register(candidate, _name(cell)) for cell, candidate in candidates.items()}
    # loaded on the first request, as `seqcast serve` does; that request waits for the load and its compiles
    # (a combination's unrolled program takes seconds on a busy machine), which this file does not time
    app = create_app(make_settings(data_dir, preload_models="", registry_timeout_seconds=120))
    return {"series": series, "candidates": candidates, "versions": versions, "app": app}


def test_cells_cover_the_search_space():
    """Guard against the grid shrinking: both transforms, every normalisation but ``none``, both families."""
    assert {c.transform for c in CELLS.values()} == set(KINDS)
    assert {c.normalise for c in CELLS.values()} == set(NORMALISATIONS) - {"none"}
    assert {c.variant for c in CELLS.values()} == {"mlp", "gru"}
    assert len(COMBINED) >= 2


def _server_errors(caplog) -> str:
    """What the service logged as errors while answering (a 500's body names only a request id)."""
    errors = [
        f"{record.getMessage()}: {type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        if record.exc_info
        else record.getMessage()
        for record in caplog.records
        if record.levelno >= logging.ERROR
    ]
    return "".join(f"\n  server: {e}" for e in errors)


@pytest.mark.parametrize("cell", MODELS)
def test_served_forecast_is_the_registered_forecasters(served, cell, caplog):
    forecaster = served["candidates"][cell].forecaster
    history = served["series"].values.tolist()
    point = forecaster.forecast(history, HORIZON)
    bands = forecaster.intervals(point, LEVELS)

    r = call(served["app"], "POST", "/v1/forecast",
             json={"model": _name(cell), "history": history, "horizon": HORIZON, "levels": LEVELS})  # fmt: skip

    assert r.status_code == 200, f"{cell}: HTTP {r.status_code}: {r.text}{_server_errors(caplog)}"
    assert r.json() == {
        "model": _name(cell),
        "version": served["versions"][cell],
        "forecast": point.tolist(),
        "intervals": {f"{level:g}": {"lower": lo.tolist(), "upper": hi.tolist()} for level, (lo, hi) in bands.items()},
        "calibrated_steps": forecaster.calibrated_steps,
    }
