"""Request and response bodies of the forecast endpoints (the contract in docs/architecture.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

MAX_BATCH = 10_000
MAX_LEVELS = 10

# strict: a number, not a string or a bool; finite: NaN/Infinity (also as bare JSON tokens) are rejected
FiniteNumber = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Level = Annotated[float, Field(strict=True, gt=0, lt=1)]
ModelName = Annotated[str, Field(min_length=1, max_length=256, description="registered model name")]
MAX_VERSION = 2**31 - 1  # the registry stores versions as integers; larger ones cannot name a version
Version = Annotated[int, Field(strict=True, ge=1, le=MAX_VERSION, description="registry version (instead of an alias)")]


class ForecastRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: ModelName
    history: list[FiniteNumber] | None = Field(
        default=None,
        description="the series so far, oldest first; at least the model's lookback values. Left out: the latest "
        "stored values of `series` (default: the series named like the model) are read from the series store",
    )
    series: str | None = Field(
        default=None, min_length=1, max_length=128, description="stored series to forecast (instead of history)"
    )
    timestamps: list[datetime] | None = Field(
        default=None, description="ISO-8601 time of each history value; the forecast continues their frequency"
    )
    horizon: int = Field(strict=True, ge=1, description="steps to forecast, 1 to SEQCAST_MAX_HORIZON")
    alias: str | None = Field(
        default=None, min_length=1, max_length=256, description="registry alias (default champion)"
    )
    version: Version | None = None
    levels: list[Level] | None = Field(
        default=None, max_length=MAX_LEVELS, description="prediction-interval levels in (0, 1), e.g. [0.8, 0.95]"
    )


class Interval(BaseModel):
    lower: list[float]
    upper: list[float]


class ForecastResponse(BaseModel):
    model: str
    version: str = Field(description="the registry version that produced this forecast")
    forecast: list[float]
    timestamps: list[str] | None = None
    intervals: dict[str, Interval] | None = None
    calibrated_steps: int | None = Field(
        default=None,
        description="with intervals: the steps they are calibrated for; later steps' widths grow like sqrt(h / H)",
    )


class BatchForecastRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests: list[ForecastRequest] = Field(min_length=1, max_length=MAX_BATCH)


class BatchForecastResponse(BaseModel):
    results: list[ForecastResponse]
