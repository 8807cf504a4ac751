"""The page at ``/`` (static files under ``service/static/``, no templating, no build step) and the one JSON
endpoint it needs beyond the REST contract: ``GET /v1/models/{name}/scores``, each version's test score (backtest
MASE for a forecaster, test accuracy for a classifier) beside the baselines' on the same backtest, read from the
registry and the versions' runs. Read-only: like every registry read here it runs on the cache's registry pool.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from mlflow.exceptions import MlflowException
from pydantic import BaseModel, Field

from pipelines.tracking.tags import FORECASTER, PANEL_FORECASTER, SCORES, model_kind
from service.cache import ModelCache
from service.deps import CacheDep
from service.errors import MODEL_RESPONSES
from service.routes.models import _detail

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
STATIC = StaticFiles(directory=STATIC_DIR)  # mounted at /static by create_app


router = APIRouter(tags=["models"])


class VersionScores(BaseModel):
    version: str
    aliases: list[str]
    created_at: str | None = None
    run_id: str | None = None
    variant: str | None = Field(default=None, description="the network the version holds (its 'variant' tag)")
    horizon: int | None = Field(
        default=None, description="the horizon a forecaster was trained for: its intervals are calibrated up to it"
    )
    score: float | None = Field(
        default=None, description="the run's test_<metric>; null when the run logged none (or not a finite one)"
    )
    baselines: dict[str, float | None] = Field(
        default_factory=dict, description="baseline (naive, seasonal_naive, drift) -> its <metric> on the same backtest"
    )
    decision: str | None = Field(
        default=None,
        description="the champion rule's words when it was registered: promoted, kept champion, below baseline, ...",
    )


class ModelScores(BaseModel):
    name: str
    kind: str | None = Field(default=None, description="forecaster or classifier; null when no run logged a score")
    metric: str | None = Field(default=None, description="mase (lower is better) or accuracy (higher is better)")
    higher_is_better: bool | None = None
    aliases: dict[str, str] = Field(description="alias -> version, e.g. champion -> 3")
    versions: list[VersionScores] = Field(
        description="newest first: the newest `limit`, and every version an alias names"
    )


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _run_data(cache: ModelCache, run_id: str | None) -> tuple[dict[str, float], dict[str, str], dict[str, str]]:
    """The run's metrics, parameters and tags; none for a version without a run (or whose run is gone)."""
    if not run_id:
        return {}, {}, {}
    try:
        data = cache.client.get_run(run_id).data
    except MlflowException:
        return {}, {}, {}
    return dict(data.metrics), dict(data.params), dict(data.tags)


def _scores(cache: ModelCache, name: str, limit: int) -> dict:
    detail = _detail(cache, name)  # 404 for an unknown name; versions newest first
    versions = [v for i, v in enumerate(detail["versions"]) if i < limit or v["aliases"]]
    runs = {v["run_id"]: _run_data(cache, v["run_id"]) for v in versions}
    # the score each kind's pipeline logs on the run as test_<metric> (and baseline_<name>_<metric>)
    kinds = (model_kind(v["tags"], runs[v["run_id"]][2]) for v in versions)
    kind = next((k for k in kinds if k is not None), None)
    metric, higher = SCORES[kind] if kind else (None, None)
    kind = FORECASTER if kind == PANEL_FORECASTER else kind  # scored as any forecaster
    prefix, suffix = "baseline_", f"_{metric}"  # baseline_seasonal_naive_mase -> seasonal_naive
    out = []
    for v in versions:
        metrics, params, _ = runs[v["run_id"]]
        baselines = {
            key[len(prefix) : -len(suffix)]: _finite(value)
            for key, value in sorted(metrics.items())
            if metric and key.startswith(prefix) and key.endswith(suffix)
        }
        out.append(
            {
                **{k: v[k] for k in ("version", "aliases", "created_at", "run_id")},
                "variant": v["tags"].get("variant"),
                "horizon": int(params["horizon"]) if params.get("horizon", "").isdigit() else None,
                "score": _finite(metrics.get(f"test_{metric}")),
                "baselines": baselines,
                "decision": v["tags"].get("decision"),
            }
        )
    return {
        "name": name,
        "kind": kind,
        "metric": metric,
        "higher_is_better": higher,
        "aliases": detail["aliases"],
        "versions": out,
    }


@router.get(
    "/v1/models/{name}/scores",
    response_model=ModelScores,
    responses=MODEL_RESPONSES,
    summary="Each version's test score (backtest MASE or test accuracy) beside the baselines' on the same backtest",
)
async def model_scores(
    name: str,
    cache: CacheDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="how many of the newest versions")] = 20,
) -> dict:
    return await cache.call(_scores, cache, name, limit)


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html")
