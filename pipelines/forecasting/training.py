"""The one training loop: windows from the training part, a registered builder, early stopping, seeded."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import keras
import numpy as np

from models import builders
from models.preprocessing import build_forecast_model
from pipelines.forecasting.forecaster import Forecaster
from pipelines.forecasting.scaling import Scaler
from pipelines.forecasting.windows import to_windows
from pipelines.seeding import seed_everything


@dataclass(frozen=True)
class TrainConfig:
    variant: str = "lstm"
    lookback: int | None = None  # None: from the season (max(2 m, 8)), capped by the series' length
    horizon: int | None = None  # None: the built-in's horizon, else 2 seasons, else 12
    season: int | None = None  # None: inferred from the frequency
    epochs: int = 50
    seed: int = 42
    units: int = 32
    depth: int = 1
    activation: str = "tanh"
    dropout: float = 0.0
    learning_rate: float = 1e-3
    batch_size: int = 32
    patience: int = 5
    val_fraction: float = 0.2
    folds: int = 1
    fold_step: int | None = None  # None: folds are a horizon apart; smaller steps overlap them
    transform: str = "standard"  # global: "standard" or "log" (positive series), see pipelines/forecasting/scaling.py
    normalise: str = "none"  # per window, inside the model: none | last | mean | seasonal (models/preprocessing.py)
    normalise_season: int | None = None  # the season ``seasonal`` differences over (None: ``season``), e.g. a week
    members: int = 1  # an ensemble of this many independently initialised networks, averaged
    budget: float | None = None  # seconds for --variant auto's search (None: pipelines/forecasting/search.py's default)
    trials: int | None = None  # --variant auto: exactly this many configurations, whatever the clock (reproducible)

    def resolved(self, n: int, season: int | None, default_horizon: int | None) -> TrainConfig:
        """Fill the defaults that depend on the series (length ``n``, its season and usual horizon)."""
        season = self.season if self.season is not None else season
        horizon = self.horizon or default_horizon or (2 * season if season and season > 1 else 12)
        if self.lookback is not None:
            lookback = self.lookback
        else:
            lookback = max(2 * season, 8) if season and season > 1 else 12
            train_n = n - horizon * self.folds
            lookback = max(2, min(lookback, train_n // 3))
        return replace(self, season=season or 1, horizon=horizon, lookback=lookback)

    @property
    def steps(self) -> int:
        """The horizon of a resolved config (see :meth:`resolved`)."""
        if self.horizon is None:
            raise ValueError("this config has no horizon yet; resolve it for the series first (TrainConfig.resolved)")
        return self.horizon

    @property
    def window(self) -> int:
        """The lookback of a resolved config (see :meth:`resolved`)."""
        if self.lookback is None:
            raise ValueError("this config has no lookback yet; resolve it for the series first (TrainConfig.resolved)")
        return self.lookback

    def hyperparameters(self) -> dict:
        return {
            "units": self.units,
            "depth": self.depth,
            "activation": self.activation,
            "dropout": self.dropout,
            "learning_rate": self.learning_rate,
        }

    def describe(self) -> str:
        return (
            f"{self.variant}[{self.transform},{self.normalise}{self.normalise_season or ''},lookback={self.lookback},units={self.units},"
            f"members={self.members}]"
        )

    def params(self) -> dict:
        return asdict(self)


def fit_forecaster(
    values: np.ndarray,
    config: TrainConfig,
    *,
    freq: str | None = None,
    verbose: int = 0,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> tuple[Forecaster, dict[str, list[float]]]:
    """Train ``config.variant`` on ``values`` (the training part only); returns the forecaster and loss curves."""
    seed_everything(config.seed)
    values = np.asarray(values, dtype=np.float64)
    lookback = config.window
    n_windows = len(values) - lookback
    if n_windows < 2:
        raise ValueError(f"training part has {len(values)} values; lookback {lookback} needs at least {lookback + 2}")
    n_val = int(round(n_windows * config.val_fraction)) if n_windows >= 10 else 0
    fit_end = len(values) - n_val  # the scaler sees only what the network fits on
    scaler = Scaler.fit(values[:fit_end], config.transform)
    X, y = to_windows(scaler.transform(values), lookback, 1)
    y = np.repeat(y.reshape(-1, 1), config.members, axis=1)  # every ensemble member fits the same target
    X_fit, y_fit, X_val, y_val = (
        X[: n_windows - n_val],
        y[: n_windows - n_val],
        X[n_windows - n_val :],
        y[n_windows - n_val :],
    )

    model, train_model = _build(config, lookback)
    monitor = "val_loss" if n_val else "loss"
    fit_data = (np.ascontiguousarray(X_fit, np.float32), np.ascontiguousarray(y_fit, np.float32))
    val_data = (np.ascontiguousarray(X_val, np.float32), np.ascontiguousarray(y_val, np.float32)) if n_val else fit_data
    wrapped = train_model is not model
    if wrapped:  # the untrained wrapped model is its normalisation's baseline: keep it unless training beats it
        baseline_weights = train_model.get_weights()
        baseline_loss = float(train_model.evaluate(*val_data, batch_size=256, verbose=0))
    stop = keras.callbacks.EarlyStopping(monitor=monitor, patience=config.patience, restore_best_weights=True)
    history = train_model.fit(
        *fit_data,
        validation_data=val_data if n_val else None,
        epochs=config.epochs,
        batch_size=config.batch_size,
        shuffle=True,
        verbose=verbose,
        callbacks=[stop, *callbacks],
    )
    if wrapped and min(history.history[monitor]) >= baseline_loss:
        train_model.set_weights(baseline_weights)
    forecaster = Forecaster(
        model=model, scaler=scaler, lookback=lookback, variant=config.variant, season=config.season, freq=freq
    )
    return forecaster, {k: [float(v) for v in vals] for k, vals in history.history.items()}


def _build(config: TrainConfig, lookback: int) -> tuple[keras.Model, keras.Model]:
    """(served model, model to fit): the registered network, wrapped in per-window normalisation and an
    ensemble when asked for (both inside the Keras model, so the recursive loop serves them unchanged)."""
    hp = config.hyperparameters()
    if config.normalise == "none" and config.members == 1:
        model = builders.build(config.variant, lookback=lookback, features=1, **hp)
        return model, model
    train_model, model = build_forecast_model(
        lambda length: builders.build(config.variant, lookback=length, features=1, **hp),
        lookback,
        normalise=config.normalise,
        season=config.normalise_season or config.season or 1,
        members=config.members,
        name=config.variant,
    )
    train_model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="mse")
    return model, train_model
