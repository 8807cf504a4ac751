"""The one place that reads the environment (prefix ``SEQCAST_``; ``MLFLOW_TRACKING_URI`` as MLflow defines it)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEQCAST_", extra="ignore")

    data_dir: Path = Path(".seqcast")
    database_url: str | None = None
    api_key: str | None = None
    ray_address: str | None = None
    mlflow_tracking_uri: str | None = Field(
        default=None, validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "SEQCAST_MLFLOW_TRACKING_URI")
    )
    max_horizon: int = 1000
    model_poll_seconds: float = 10.0
    max_body_bytes: int = 1_000_000
    max_image_pixels: int = 4_000_000  # /v1/classify: width x height of an upload, checked from its header
    max_image_bytes: int = (
        12_000_000  # /v1/classify: decoded size of an upload (w x h x bands x bytes), from its header
    )
    image_decode_concurrency: int = 2  # /v1/classify: uploads decoded at once per process (bounds their memory)
    registry_workers: int = 4  # threads for registry lookups and model loads; cached traffic never waits on them
    registry_timeout_seconds: float = 10.0  # a request waits this long for a registry lookup, then gets a 503
    # seqcast serve's MLflow client against a tracking server: give up fast, so an outage shows in /ready and the
    # poller recovers at its next round (MLflow's own defaults retry one request for minutes)
    registry_http_retries: int = 1
    registry_http_timeout_seconds: float = 5.0
    not_found_ttl_seconds: float = 5.0  # how long an unknown model/alias/version answers 404 without asking again
    max_cached_misses: int = 1024  # unknown (model, ref) pairs remembered for the TTL (LRU beyond this)
    preload_retry_max_seconds: float = 30.0  # startup preload retries with backoff up to this interval
    shutdown_grace_seconds: float = 10.0  # on SIGTERM, in-flight requests get this long, then the process exits
    log_format: Literal["text", "json"] = "text"  # every command: "json" writes one JSON object per line
    preload_models: str = "*"  # served at startup: comma-separated names, "*" = every @champion, "" = none
    # retraining (pipelines/retraining/): `seqcast retrain` and `seqcast scheduler`
    # when `seqcast scheduler` runs a pass (crontab: minute hour day month weekday; six fields: seconds first)
    retrain_cron: str = "0 3 * * *"
    retrain_margin: float = 0.02  # a challenger replaces @champion only with a backtest MASE this much lower (relative)
    retrain_min_new_points: int = 1  # a series with fewer new observations since its champion's data is skipped
    retrain_variant: str | None = None  # None: each champion's own recipe; "auto": search again
    retrain_workers: int | None = None  # series trained at once (None: the core count)
    retrain_lease_seconds: float = 60.0  # a pass's lock in the store expires this long after its holder stops
    max_batch_points: int = 100_000  # POST /v1/series/{name}/observations: observations per batch
    store_workers: int = 4  # threads for series-store reads and writes (never on the event loop)
    # POST /v1/forecast dynamic batching (service/batching.py): concurrent requests for one model version and
    # horizon run as one compiled call of at most this many series (1: each request alone) ...
    forecast_batch_max_size: int = Field(default=32, ge=1, le=1024)
    # ... and a request waits at most this long for others to join before its call starts (0: at once)
    forecast_batch_wait_ms: float = Field(default=0.0, ge=0, le=60_000)
    # set by `seqcast serve --workers N` (a temporary folder): Prometheus metrics summed across the workers
    prometheus_multiproc_dir: Path | None = Field(
        default=None, validation_alias=AliasChoices("PROMETHEUS_MULTIPROC_DIR")
    )
    # series store (pipelines/store/): a store call waits at most this long (connect, locks, statements, and the
    # service's wait for its store thread); past it the call fails, a request with a 503 naming the store
    store_timeout_seconds: float = Field(default=5.0, gt=0, le=600)
    store_write_chunk: int = Field(default=10_000, ge=1)  # rows per INSERT of a write (a file's ingest: many, one txn)
    # retraining (pipelines/retraining/): the scheduler's clock
    retrain_timezone: str = "UTC"  # the zone SEQCAST_RETRAIN_CRON is read in (an IANA name, e.g. Europe/Paris)

    def pass_workers(self, asked: int | None = None) -> int:
        """Series a retraining pass trains at once: ``asked`` (--workers), else ``retrain_workers``, else the cores."""
        return asked or self.retrain_workers or os.cpu_count() or 1

    @property
    def tracking_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{(self.data_dir / 'mlflow.db').resolve()}"

    @property
    def artifact_root(self) -> Path:
        return (self.data_dir / "mlartifacts").resolve()

    @property
    def series_store_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'series.db').resolve()}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
