"""The one place that reads the environment (prefix ``SEQCAST_``; ``MLFLOW_TRACKING_URI`` as MLflow defines it)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

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
    preload_models: str = "*"  # served at startup: comma-separated names, "*" = every @champion, "" = none
    retrain_cron: str = "0 3 * * *"

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
