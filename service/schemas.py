"""Request and response bodies of the forecast endpoints (the contract in docs/architecture.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator
from pydantic_core import PydanticCustomError

MAX_BATCH = 10_000
MAX_LEVELS = 10

# strict: a number, not a string or a bool; finite: NaN/Infinity (also as bare JSON tokens) are rejected
FiniteNumber = Annotated[float, Field(strict=True, allow_inf_nan=False)]
# an interval's key in the response is its level to 6 significant digits (level_key): up to 0.999999 each key
# names its level (0.9999996 would be "1"), and every interval is finite (the tail ratio of conformal.py is a
# t quantile at (1 + level) / 2, infinite once that rounds to 1, as it does for the float just under 1)
MAX_LEVEL = 0.999999
Level = Annotated[float, Field(strict=True, gt=0, le=MAX_LEVEL)]
ModelName = Annotated[str, Field(min_length=1, max_length=256, description="registered model name")]
MAX_VERSION = 2**31 - 1  # the registry stores versions as integers; larger ones cannot name a version
Version = Annotated[int, Field(strict=True, ge=1, le=MAX_VERSION, description="registry version (instead of an alias)")]


SeriesName = Annotated[str, Field(min_length=1, max_length=128)]
Horizon = Annotated[int, Field(strict=True, ge=1, description="steps to forecast, 1 to SEQCAST_MAX_HORIZON")]
Levels = Annotated[
    list[Level],
    Field(
        max_length=MAX_LEVELS,
        description=f"prediction-interval levels in (0, {MAX_LEVEL}], e.g. [0.8, 0.95], each different in its first "
        "6 significant digits (an interval's key)",
    ),
]


ALIAS_OR_VERSION = "give either alias or version, not both"


def one_ref(alias: str | None, version: int | None) -> None:
    """A body names the model's version by alias or by number, not both (an ``alias_or_version`` error)."""
    if alias is not None and version is not None:
        raise PydanticCustomError("alias_or_version", ALIAS_OR_VERSION)


def level_key(level: float) -> str:
    """The key of a level's interval in a forecast response: 6 significant digits (0.8 -> "0.8")."""
    return f"{level:g}"


def one_key_per_level(levels: list[float] | None) -> list[float] | None:
    """``levels`` unless two of them would be answered under one interval key (a ``levels_collide`` error)."""
    if levels is None:
        return None
    seen: dict[str, int] = {}
    for i, level in enumerate(levels):
        j = seen.setdefault(level_key(level), i)
        if j != i:
            raise PydanticCustomError(
                "levels_collide",
                f"levels[{j}] ({levels[j]!r}) and levels[{i}] ({level!r}) would both be answered as interval "
                f"{level_key(level)!r}; give levels that differ in their first 6 significant digits",
            )
    return levels


# the last 12 values of the built-in sine_noise series: `make run`'s model `sine` (lookback 12) takes them
EXAMPLE_HISTORY: list[JsonValue] = [2.156, 2.4, 2.097, 1.515, 1.956, 0.89, 1.983, 2.581, 1.034, 1.653, 1.226, 1.665]
FORECAST_EXAMPLES: list[JsonValue] = [
    {"model": "sine", "history": EXAMPLE_HISTORY, "horizon": 12, "levels": [0.8, 0.95]},
    {"model": "sine", "horizon": 24},  # the series stored under the model's name (make run ingests it)
]


class ForecastRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": FORECAST_EXAMPLES})

    model: ModelName
    history: list[FiniteNumber] | None = Field(
        default=None,
        description="the series so far, oldest first; at least the model's lookback values. Left out: the latest "
        "stored values of `series` (default: the series named like the model) are read from the series store",
    )
    series: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="stored series to forecast (instead of history); for a panel model, one of its series or any "
        "other stored series (forecast by its network, marked seen_in_training false)",
    )
    timestamps: list[datetime] | None = Field(
        default=None, description="ISO-8601 time of each history value; the forecast continues their frequency"
    )
    horizon: Horizon
    alias: str | None = Field(
        default=None, min_length=1, max_length=256, description="registry alias (default champion)"
    )
    version: Version | None = None
    levels: Levels | None = None

    _one_key_per_level = field_validator("levels")(one_key_per_level)

    @model_validator(mode="after")
    def _consistent(self) -> ForecastRequest:
        """The rules between fields: the history comes sent or stored, timestamps with a sent history, one each."""
        one_ref(self.alias, self.version)
        if self.history is not None:
            if self.series is not None:
                raise PydanticCustomError("history_or_series", "give either history or series, not both")
            if self.timestamps is not None and len(self.timestamps) != len(self.history):
                raise PydanticCustomError(
                    "timestamps_length",
                    f"timestamps has {len(self.timestamps)} entries and history {len(self.history)}; give one "
                    "timestamp per history value",
                )
        elif self.timestamps is not None:
            raise PydanticCustomError(
                "timestamps_without_history", "timestamps go with history; a stored series brings its own"
            )
        return self


class Interval(BaseModel):
    lower: list[float]
    upper: list[float]


class ForecastResponse(BaseModel):
    model: str
    version: str = Field(description="the registry version that produced this forecast")
    forecast: list[float]
    timestamps: list[str] | None = None
    intervals: dict[str, Interval] | None = Field(
        default=None, description='per requested level, keyed by the level to 6 significant digits (0.8 -> "0.8")'
    )
    calibrated_steps: int | None = Field(
        default=None,
        description="with intervals: the steps they are calibrated for; later steps' widths grow like sqrt(h / H)",
    )
    # a panel model's answers only
    series: str | None = Field(default=None, description="panel model: the series forecast (null: a sent history)")
    seen_in_training: bool | None = Field(
        default=None, description="panel model: whether the series was one the model was trained on"
    )
    served_by: str | None = Field(
        default=None,
        description="panel model: what forecast it, the series' backtest winner (network, naive, seasonal_naive, "
        "drift); network for a series the model never saw",
    )
    intervals_from: str | None = Field(
        default=None, description="panel model, with intervals: the backtest errors they were calibrated on"
    )


PANEL_BATCH_FIELDS = ("model", "series", "horizon", "alias", "version", "levels")


class BatchForecastRequest(BaseModel):
    """Either ``requests`` (any models, each request as ``POST /v1/forecast`` takes it) or a panel model's batch:
    ``model``, ``horizon`` and ``series`` (its stored series to forecast; left out: every series of the model)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "requests": [
                        {"model": "sine", "history": EXAMPLE_HISTORY, "horizon": 12},
                        {"model": "sine", "history": EXAMPLE_HISTORY[1:] + [1.9], "horizon": 12},
                    ]
                }
            ]
        },
    )

    requests: list[ForecastRequest] | None = Field(default=None, min_length=1, max_length=MAX_BATCH)
    model: ModelName | None = Field(default=None, description="a panel model (instead of requests)")
    series: list[SeriesName] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_BATCH,
        description="with model: the stored series to forecast, read in one store query and forecast in one call; "
        "left out: every series of the panel model",
    )
    horizon: Horizon | None = None
    alias: str | None = Field(
        default=None, min_length=1, max_length=256, description="with model: registry alias (default champion)"
    )
    version: Version | None = None
    levels: Levels | None = None

    _one_key_per_level = field_validator("levels")(one_key_per_level)

    @model_validator(mode="after")
    def _one_shape(self) -> BatchForecastRequest:
        panel = [name for name in PANEL_BATCH_FIELDS if getattr(self, name) is not None]
        if self.requests is not None:
            if panel:
                raise PydanticCustomError(
                    "batch_shape",
                    f"give either requests or a panel model's batch (model, horizon, series), not both; "
                    f"this body has requests and {', '.join(panel)}",
                )
            return self
        if self.model is None:
            raise PydanticCustomError(
                "batch_shape",
                'give requests (a list of forecast requests) or a panel model\'s batch: {"model": NAME, "horizon": '
                'H, "series"?: [NAME, ...]}',
            )
        if self.horizon is None:
            raise PydanticCustomError("batch_shape", "horizon is required with model: the steps to forecast")
        one_ref(self.alias, self.version)
        return self


class BatchForecastResponse(BaseModel):
    results: list[ForecastResponse]


class InvocationParams(BaseModel):
    """``params`` of ``POST /invocations``: the forecast's options (and, on ``/invocations``, the model)."""

    model_config = ConfigDict(extra="forbid")

    horizon: Horizon | None = Field(
        default=None, description="steps to forecast; left out: the model's trained horizon"
    )
    levels: Levels | None = None
    model: ModelName | None = Field(
        default=None,
        description="POST /invocations only: the model to serve (left out: the one preloaded single-series "
        "forecaster); /v1/models/{name}/invocations takes it from the path",
    )
    alias: str | None = Field(
        default=None, min_length=1, max_length=256, description="registry alias (default champion)"
    )
    version: Version | None = None

    _one_key_per_level = field_validator("levels")(one_key_per_level)

    @model_validator(mode="after")
    def _one_ref(self) -> InvocationParams:
        one_ref(self.alias, self.version)
        return self


class DataframeSplit(BaseModel):
    """pandas' ``split`` orientation, as MLflow sends a DataFrame: ``data`` is a list of rows."""

    columns: list[str | int] | None = None
    index: list | None = None
    data: list[list]


class InvocationsRequest(BaseModel):
    """MLflow's scoring protocol: exactly one of ``dataframe_split``, ``dataframe_records``, ``inputs``,
    ``instances``, and optional ``params``. One column (or a flat list) is one history, oldest first; several
    columns (or a list of lists) are a batch of equally long histories, one per row."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "dataframe_split": {"columns": ["value"], "data": [[v] for v in EXAMPLE_HISTORY]},
                    "params": {"model": "sine", "horizon": 12},
                },
                {"inputs": EXAMPLE_HISTORY, "params": {"model": "sine"}},
            ]
        },
    )

    dataframe_split: DataframeSplit | None = None
    dataframe_records: list[dict[str, object]] | None = Field(default=None, min_length=1)
    inputs: list | None = Field(default=None, min_length=1)
    instances: list | None = Field(default=None, min_length=1)
    params: InvocationParams | None = None

    @model_validator(mode="after")
    def _one_input(self) -> InvocationsRequest:
        given = [
            k for k in ("dataframe_split", "dataframe_records", "inputs", "instances") if getattr(self, k) is not None
        ]
        if len(given) != 1:
            raise PydanticCustomError(
                "invocations_shape",
                "give exactly one of dataframe_split, dataframe_records, inputs, instances (MLflow's input formats); "
                + (f"this body has {', '.join(given)}" if given else "this body has none"),
            )
        return self


class InvocationsResponse(BaseModel):
    predictions: list = Field(
        description="one history: its forecast; a batch: a forecast per row; with levels: a record per step "
        '(and row): {"row"?, "step", "forecast", "lower_0.8", "upper_0.8", ...}'
    )
