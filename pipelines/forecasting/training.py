"""The one training loop: windows from the training part, a registered builder, early stopping, seeded."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

import keras
import numpy as np
import tensorflow as tf

from models import builders
from models.preprocessing import build_forecast_model
from models.recurrent import compile_forecaster
from pipelines.forecasting.forecaster import DEFAULT_HORIZON, Forecaster
from pipelines.forecasting.scaling import Scaler
from pipelines.forecasting.windows import to_windows
from pipelines.seeding import seed_everything

BASELINE_NORMALISATIONS = {"last": "naive", "seasonal": "seasonal_naive", "mean": "window_mean", "profile": "profile"}
# traced networks kept per thread for the next fit of the same architecture (see _trainer)
CACHED_TRAINERS = 4


@dataclass(frozen=True)
class TrainConfig:
    variant: str = "lstm"
    lookback: int | None = None  # None: from the season (max(2 m, 8)), capped by the series' length
    horizon: int | None = None  # None: the built-in's horizon, else 2 seasons, else DEFAULT_HORIZON
    season: int | None = None  # None: inferred from the frequency
    epochs: int = 50
    seed: int = 42
    units: int = 32
    depth: int = 1
    activation: str = "tanh"
    dropout: float = 0.0
    learning_rate: float = 1e-3
    batch_size: int = 32
    epoch_steps: int | None = None  # at most this many batches make an epoch (None: one pass over the windows)
    patience: int = 5
    val_fraction: float = 0.2
    folds: int = 1
    fold_step: int | None = None  # None: folds are a horizon apart; smaller steps overlap them
    transform: str = "standard"  # global: "standard" or "log" (positive series), see pipelines/forecasting/scaling.py
    normalise: str = "none"  # per window, inside the model: none | last | mean | seasonal (models/preprocessing.py)
    normalise_season: int | None = None  # the season ``seasonal`` differences over (None: ``season``), e.g. a week
    members: int = 1  # an ensemble of this many independently initialised networks, averaged
    budget: float | None = None  # seconds for --variant auto's search, instead of a trial count (machine-dependent)
    trials: int | None = None  # --variant auto: exactly this many configurations (None: search.DEFAULT_TRIALS)

    def resolved(self, n: int, season: int | None, default_horizon: int | None) -> TrainConfig:
        """Fill the defaults that depend on the series (length ``n``, its season and usual horizon)."""
        season = self.season if self.season is not None else season
        horizon = self.horizon or default_horizon or (2 * season if season and season > 1 else DEFAULT_HORIZON)
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

    @property
    def baseline(self) -> str | None:
        """The free forecast an untrained (``epochs=0``) normalised model makes (its output layers start at zero:
        ``models/preprocessing.py``): ``naive`` for ``last``, ``seasonal_naive`` for ``seasonal``; None otherwise."""
        return BASELINE_NORMALISATIONS.get(self.normalise) if self.epochs == 0 else None

    def describe(self) -> str:
        if self.baseline:
            return f"{self.baseline}[{self.transform},season={self.normalise_season or 1},lookback={self.lookback}]"
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
    compiled: bool = True,
) -> tuple[Forecaster, dict[str, list[float]]]:
    """Train ``config.variant`` on ``values`` (the training part only); returns the forecaster and loss curves.
    ``compiled=False`` for a model that will forecast once or twice (see :class:`Forecaster`)."""
    seed_everything(config.seed)
    scaler, windows = series_windows(values, config)
    model, curves = fit_network(config, [windows], verbose=verbose, callbacks=callbacks)
    forecaster = Forecaster(
        model=model,
        scaler=scaler,
        lookback=config.window,
        variant=config.variant,
        season=config.season,
        freq=freq,
        compiled=compiled,
    )
    return forecaster, curves


@dataclass(frozen=True)
class Windows:
    """One series' supervised windows in its scaler's units, split in time: the last ``val_fraction`` validate."""

    x_fit: np.ndarray
    y_fit: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


def series_windows(values: np.ndarray, config: TrainConfig, scaler: Scaler | None = None) -> tuple[Scaler, Windows]:
    """``scaler`` (default: ``config.transform`` fitted on the part the network fits on) and the series' windows
    in its units (views of the scaled values: :func:`to_windows` copies nothing)."""
    values = np.asarray(values, dtype=np.float64)
    lookback = config.window
    n_windows = len(values) - lookback
    if n_windows < 2:
        raise ValueError(f"training part has {len(values)} values; lookback {lookback} needs at least {lookback + 2}")
    n_val = int(round(n_windows * config.val_fraction)) if n_windows >= 10 else 0
    if scaler is None:  # the scaler sees only what the network fits on
        scaler = Scaler.fit(values[: len(values) - n_val], config.transform)
    X, y = to_windows(scaler.transform(values), lookback, 1)
    cut = n_windows - n_val
    return scaler, Windows(X[:cut], y[:cut], X[cut:], y[cut:])


def fit_network(
    config: TrainConfig,
    windows: Sequence[Windows],
    *,
    verbose: int = 0,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> tuple[keras.Model, dict[str, list[float]]]:
    """The one training loop: the windows of one series, or pooled from a panel's, fit one network (seeded by the
    caller). Returns the served network and its loss curves."""
    lookback = config.window

    def pooled(parts: list[np.ndarray]) -> np.ndarray:
        return np.ascontiguousarray(np.concatenate(parts) if len(parts) > 1 else parts[0], np.float32)

    def targets(y: np.ndarray) -> np.ndarray:  # every ensemble member fits the same target
        return np.repeat(y.reshape(-1, 1), config.members, axis=1)

    fit_data = (pooled([w.x_fit for w in windows]), pooled([targets(w.y_fit) for w in windows]))
    n_val = sum(len(w.x_val) for w in windows)
    val_data = (pooled([w.x_val for w in windows]), pooled([targets(w.y_val) for w in windows])) if n_val else None
    if config.epochs == 0:  # the normalisation's own baseline, as built (see TrainConfig.baseline)
        if config.baseline is None:
            raise ValueError(
                f"epochs is 0; only a normalised model ({', '.join(BASELINE_NORMALISATIONS)}) forecasts untrained"
            )
        model, _ = _build(config, lookback)
        return model, {}
    trainer = _trainer(config, lookback)
    curves = _fit(config, trainer, fit_data, val_data, verbose, callbacks)
    model, _ = _build(config, lookback)  # the forecaster's own copy: the trainer's trains the next fit
    model.set_weights(trainer.model.get_weights())
    return model, {k: [float(v) for v in vals] for k, vals in curves.items()}


def _fit(
    config: TrainConfig,
    trainer: _Trainer,
    fit_data: tuple[np.ndarray, np.ndarray],
    val_data: tuple[np.ndarray, np.ndarray] | None,
    verbose: int,
    callbacks: Sequence[keras.callbacks.Callback],
) -> dict[str, list]:
    """Fit the trainer's network with early stopping on ``val_data`` (on the fitted data's loss without one). A
    wrapped (normalised) model keeps its untrained baseline unless training beats it. Returns the curves."""
    train_model = trainer.train_model
    monitor = "val_loss" if val_data is not None else "loss"
    validation = ValidationLoss(trainer.mse, *(val_data or fit_data))
    wrapped = train_model is not trainer.model
    if wrapped:  # the untrained wrapped model is its normalisation's baseline: keep it unless training beats it
        baseline_weights = train_model.get_weights()
        baseline_loss = validation.loss()
    stop = keras.callbacks.EarlyStopping(monitor=monitor, patience=config.patience, restore_best_weights=True)
    history = train_model.fit(
        _batches(*fit_data, config.batch_size, config.seed),
        steps_per_epoch=min(math.ceil(len(fit_data[0]) / config.batch_size), config.epoch_steps or math.inf),
        epochs=config.epochs,
        shuffle=False,  # the dataset shuffles itself, seeded
        verbose=verbose,
        callbacks=[*([validation] if val_data is not None else []), stop, *callbacks],
    )
    if wrapped and min(history.history[monitor]) >= baseline_loss:
        train_model.set_weights(baseline_weights)
    return history.history


@dataclass
class _Trainer:
    """A built, compiled network whose training step (and validation loss) is traced once and reused."""

    model: keras.Model  # the served form (the members' mean); shares its weights with train_model
    train_model: keras.Model
    weights: list[np.ndarray]  # as initialised under the config's seed
    optimizer_state: list[np.ndarray]
    mse: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]

    def reset(self) -> _Trainer:
        """Back to the state just after building: the next fit is the one a new network would make."""
        self.train_model.set_weights(self.weights)
        for variable, value in zip(self.train_model.optimizer.variables, self.optimizer_state, strict=True):
            variable.assign(value)
        return self


_trainers = threading.local()


def _trainer(config: TrainConfig, lookback: int) -> _Trainer:
    """The network ``config`` trains, reset to its seeded initial state: built on the first fit of its
    architecture, reused by the next ones in this thread.

    Tracing a new network's training step costs more than a small series' whole training (1.2 s of an MLP's
    1.9 s fit, 3.7 s of a GRU's 5.4 s). A search fits each architecture more than once (both global scalings
    of a configuration, then its calibration refit), and a reused network trains exactly as a new one would:
    the same initial weights (the key holds the seed), a fresh optimizer, the same batches."""
    key: tuple = (config.variant, lookback, config.normalise, config.normalise_season or config.season or 1)
    key += (config.members, config.seed, *config.hyperparameters().items())
    cache: OrderedDict[tuple, _Trainer] = _trainers.__dict__.setdefault("cache", OrderedDict())
    if key in cache:
        cache.move_to_end(key)
        return cache[key].reset()
    model, train_model = _build(config, lookback)
    train_model.optimizer.build(train_model.trainable_variables)
    trainer = _Trainer(
        model,
        train_model,
        train_model.get_weights(),
        [np.array(v) for v in train_model.optimizer.variables],
        tf.function(lambda x, y: tf.reduce_mean(tf.square(train_model(x, training=False) - y)), reduce_retracing=True),
    )
    cache[key] = trainer
    while len(cache) > CACHED_TRAINERS:
        cache.popitem(last=False)
    return trainer


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
    compile_forecaster(train_model, config.learning_rate)
    return model, train_model


def _batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int) -> tf.data.Dataset:
    """Shuffled batches, reshuffled every pass, repeated: one iterator for the whole fit. Keras makes a new
    iterator per epoch from arrays (12 ms each here, more than a small series' epoch of training)."""
    data = tf.data.Dataset.from_tensor_slices((x, y))
    return data.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).batch(batch_size).repeat()


class ValidationLoss(keras.callbacks.Callback):
    """``val_loss`` (the mean squared error over the validation windows) after each epoch, from one call of the
    trainer's traced ``mse``: Keras's own validation makes a data iterator and runs an evaluation loop per epoch
    (about 25 ms here, where the epoch's training took 10). Listed before EarlyStopping, which reads it."""

    def __init__(self, mse: Callable[[tf.Tensor, tf.Tensor], tf.Tensor], x: np.ndarray, y: np.ndarray):
        super().__init__()
        self._mse, self._x, self._y = mse, tf.constant(x), tf.constant(y)

    def loss(self) -> float:
        return float(self._mse(self._x, self._y))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["val_loss"] = self.loss()
