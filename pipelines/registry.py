"""The MLflow Model Registry side: load a version or alias, and move ``@champion`` only to a better model."""

from __future__ import annotations

import math
from pathlib import Path

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipelines.forecaster import Forecaster
from pipelines.pyfunc_model import FORECASTER_ARTIFACT

CHAMPION = "champion"


def version_by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def model_uri(name: str, *, alias: str | None = None, version: int | str | None = None) -> str:
    return f"models:/{name}/{version}" if version is not None else f"models:/{name}@{alias or CHAMPION}"


def download(uri: str, dst: str | Path | None = None) -> Path:
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst) if dst else None))


def load_forecaster(uri: str, dst: str | Path | None = None) -> Forecaster:
    """A registered forecaster, read from its saved Keras file and JSON config (safe_mode, no pickles)."""
    return Forecaster.load(download(uri, dst) / "artifacts" / FORECASTER_ARTIFACT)


def promote_if_better(
    client: MlflowClient,
    name: str,
    version: str,
    challenger: float,
    champion: float | None,
    *,
    metric: str = "mase",
    higher_is_better: bool = False,
) -> bool:
    """Point ``@champion`` at ``version`` if there is no champion or the challenger's score is strictly better.

    Both scores and the decision are tagged on the new version.
    """
    if champion is None or not math.isfinite(champion):
        promoted = True
    elif higher_is_better:
        promoted = challenger > champion
    else:
        promoted = challenger < champion
    client.set_model_version_tag(name, version, f"challenger_{metric}", f"{challenger:.6g}")
    client.set_model_version_tag(name, version, f"champion_{metric}", "none" if champion is None else f"{champion:.6g}")
    client.set_model_version_tag(name, version, "decision", "promoted" if promoted else "kept champion")
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, version)
    return promoted
