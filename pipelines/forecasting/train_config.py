"""What a forecaster is trained with: the one list of its settings, read by the pipeline, the retraining recipe and
the ``seqcast train`` options (``seqcast/cli.py`` builds one option per field with ``help`` metadata).

Free of TensorFlow, so that ``seqcast --help`` and a bad argument answer at once."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

# the horizon of a model that states none, and of a series nothing else gives one (the one default)
DEFAULT_HORIZON = 12

# the registry's forecasting networks (models/builders.py, task "forecast"; a test keeps the two the same)
FORECAST_VARIANTS = ("simple_rnn", "lstm", "gru", "dense_gru", "one_step", "mlp")
AUTO = "auto"  # search configurations of every variant by backtest (pipelines/forecasting/search.py)
BASELINE_NORMALISATIONS = {"last": "naive", "seasonal": "seasonal_naive", "mean": "window_mean", "profile": "profile"}
FROM_SERIES = 0  # a horizon or lookback of 0: chosen from the series by TrainConfig.resolved


def option(
    help: str, *, default: str | None = None, choices: tuple[str, ...] | None = None, minimum: float | None = None
) -> dict[str, Any]:
    """A field's metadata that makes it a ``seqcast train`` option: ``help``; ``default``, the words for a default
    that is not a plain value; ``choices``; ``minimum``, the smallest value allowed (checked on construction)."""
    return {"help": help, "default": default, "choices": choices, "minimum": minimum}


@dataclass(frozen=True)
class TrainConfig:
    """How one forecaster is trained. A field with ``option`` metadata is a ``seqcast train`` option of the same
    name; the rest are set by the search (``--variant auto``) or by code. Values are checked on construction."""

    variant: str = field(
        default="lstm", metadata=option("the network, or auto: search by backtest", choices=(*FORECAST_VARIANTS, AUTO))
    )
    lookback: int = field(
        default=FROM_SERIES,
        metadata=option(
            "past values each forecast reads",
            default="from the season: max(2 m, 8), capped by the series' length",
            minimum=FROM_SERIES,
        ),
    )
    horizon: int = field(
        default=FROM_SERIES,
        metadata=option(
            "steps forecast ahead",
            default=f"the built-in's horizon, else 2 seasons, else {DEFAULT_HORIZON}",
            minimum=FROM_SERIES,
        ),
    )
    season: int | None = field(
        default=None, metadata=option("the seasonal period m", default="inferred from the frequency", minimum=1)
    )
    epochs: int = field(
        default=50, metadata=option("training epochs, early stopping on the validation loss", minimum=0)
    )
    seed: int = field(default=42, metadata=option("seed of the initial weights and of the search", minimum=0))
    units: int = field(default=32, metadata=option("units per recurrent or dense layer", minimum=1))
    depth: int = field(default=1, metadata=option("stacked layers", minimum=1))
    activation: str = field(default="tanh", metadata=option("the layers' Keras activation"))
    dropout: float = field(default=0.0, metadata=option("dropout fraction between layers", minimum=0))
    learning_rate: float = field(default=1e-3, metadata=option("Adam's learning rate", minimum=0))
    batch_size: int = 32
    epoch_steps: int | None = None  # at most this many batches make an epoch (None: one pass over the windows)
    patience: int = 5
    val_fraction: float = 0.2
    folds: int = field(default=1, metadata=option("backtest folds, rolling origin", minimum=1))
    fold_step: int | None = None  # None: folds are a horizon apart; smaller steps overlap them
    transform: str = "standard"  # global: "standard" or "log" (positive series), see pipelines/forecasting/scaling.py
    normalise: str = "none"  # per window, inside the model: none | last | mean | seasonal (models/preprocessing.py)
    normalise_season: int | None = None  # the season ``seasonal`` differences over (None: ``season``), e.g. a week
    members: int = 1  # an ensemble of this many independently initialised networks, averaged
    budget: float | None = field(
        default=None,
        metadata=option(
            "seconds for --variant auto's search instead of a trial count; the result then depends on the machine",
            default="none, a trial count",
            minimum=0,
        ),
    )
    trials: int | None = field(
        default=None,
        metadata=option(
            "--variant auto: exactly this many configurations, the same on any machine",
            default="10, search.DEFAULT_TRIALS",
            minimum=1,
        ),
    )

    def __post_init__(self) -> None:
        for f in fields(self):
            check_value(f.name, getattr(self, f.name))

    def resolved(self, n: int, season: int | None, default_horizon: int | None) -> TrainConfig:
        """Fill the defaults that depend on the series (length ``n``, its season and usual horizon): after this,
        ``horizon`` and ``lookback`` are set (a recipe logged before FROM_SERIES holds None for them: the same)."""
        season = self.season if self.season is not None else season
        horizon = self.horizon or default_horizon or (2 * season if season and season > 1 else DEFAULT_HORIZON)
        if self.lookback:
            lookback = self.lookback
        else:
            lookback = max(2 * season, 8) if season and season > 1 else 12
            train_n = n - horizon * self.folds
            lookback = max(2, min(lookback, train_n // 3))
        return replace(self, season=season or 1, horizon=horizon, lookback=lookback)

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


def check_value(name: str, value: Any) -> None:
    """The one check of a TrainConfig value against its field's ``choices`` and ``minimum`` (None passes: the
    field's default applies). Raises ValueError naming the field, the value and what is allowed."""
    meta = _FIELDS[name].metadata
    if value is None or not meta:
        return
    if meta["choices"] is not None and value not in meta["choices"]:
        raise ValueError(f"{name} {value!r} is not one of {', '.join(meta['choices'])}")
    if meta["minimum"] is not None and value < meta["minimum"]:
        raise ValueError(f"{name} {value!r} is below {meta['minimum']:g}, the smallest allowed")


_FIELDS = {f.name: f for f in fields(TrainConfig)}
