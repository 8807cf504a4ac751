"""``GET /v1/models``, ``GET /v1/models/{name}``, ``GET /v1/models/{name}/scores`` and
``POST /v1/models/{name}/reload`` (API key).

``GET /v1/models/{name}`` of a panel model (its ``@champion`` version tagged ``seqcast.panel`` by the panel
pipeline) also lists the champion's series and what serves each, read from the loaded model (loading it if
this process has not yet). ``/scores`` (what the page at ``/`` draws): each version's test score (backtest MASE
for a forecaster, test accuracy for a classifier) beside the baselines' on the same backtest, read from the
registry and the versions' runs.

Every registry read goes through the cache's :class:`service.registry.RegistryReader`, on its registry pool
(``cache.call``): a slow registry answers 503 after the timeout and never holds the threads other requests need.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from pipelines.forecasting.pyfunc import PANEL_ARTIFACT
from pipelines.tracking.registry import CHAMPION, LAST_RETRAIN_TAG
from pipelines.tracking.tags import FORECASTER, PANEL_FORECASTER, SCORES, model_kind
from service.cache import ModelCache, ModelLoadError
from service.deps import ApiKeyDep, CacheDep
from service.errors import AUTH_RESPONSES, MODEL_RESPONSES
from service.registry import RegistryReader

router = APIRouter(prefix="/v1/models", tags=["models"])


class LoadedEntry(BaseModel):
    ref: str
    version: str
    kind: str
    loaded_at: float


class LoadError(BaseModel):
    version: str | None = Field(default=None, description="the version that could not be served")
    error: str


class ModelSummary(BaseModel):
    name: str
    description: str | None = None
    aliases: dict[str, str]
    latest_version: str | None = None
    loaded: list[LoadedEntry]
    errors: dict[str, LoadError] = Field(
        default_factory=dict, description="ref (e.g. @champion) -> why the version it names is not served"
    )


class VersionInfo(BaseModel):
    version: str
    aliases: list[str]
    created_at: str | None = None
    run_id: str | None = None
    status: str | None = None
    tags: dict[str, str]


class RetrainDecision(BaseModel):
    """The latest retraining pass's word on this model (``seqcast retrain`` / ``seqcast scheduler``)."""

    at: str = Field(description="when the decision was made (UTC)")
    pass_run_id: str = Field(description="the pass's MLflow run; each series is a child run under it")
    status: str = Field(description="promoted | kept | skipped | failed")
    decision: str = Field(description="in words, e.g. 'kept champion' or 'skipped: 0 new observations ...'")
    series: str | None = None
    version: str | None = Field(default=None, description="the challenger's registered version")
    champion_version: str | None = None
    challenger_mase: float | None = None
    champion_mase: float | None = None
    new_points: int | None = None
    champion_seen_test_points: int | None = None
    data_window: dict[str, str | int] = Field(default_factory=dict, description="first, last, count")
    seconds: float | None = None


class PanelSeries(BaseModel):
    name: str
    winner: str = Field(description="what serves it: network, naive, seasonal_naive or drift (its backtest winner)")
    mase: float | None = Field(default=None, description="the winner's backtest MASE on this series")


class ModelDetail(ModelSummary):
    versions: list[VersionInfo]
    last_retrain: RetrainDecision | None = None
    series: list[PanelSeries] | None = Field(
        default=None,
        description="a panel model: the series its @champion was trained on, in training order (null otherwise, "
        "or while the champion cannot be loaded: see errors)",
    )


class ModelList(BaseModel):
    models: list[ModelSummary]


class AliasChange(BaseModel):
    ref: str
    version: str | None = None
    previous: str | None = None
    changed: bool
    error: str | None = Field(default=None, description="why the version the ref names could not be served")


class ReloadResult(BaseModel):
    name: str
    changes: list[AliasChange]


def _loaded(cache: ModelCache, name: str) -> list[dict]:
    return [{k: v for k, v in entry.items() if k != "model"} for entry in cache.loaded(name)]


def _summary(cache: ModelCache, registered) -> dict:
    versions = [int(v.version) for v in registered.latest_versions or []]
    prefix = len(registered.name)
    return {
        "name": registered.name,
        "description": registered.description or None,
        "aliases": {alias: str(version) for alias, version in (registered.aliases or {}).items()},
        "latest_version": str(max(versions)) if versions else None,
        "loaded": _loaded(cache, registered.name),
        "errors": {key[prefix:]: entry for key, entry in cache.errors(registered.name).items()},
    }


def _detail(cache: ModelCache, name: str) -> dict:
    registered = cache.registry.model(name)
    versions = cache.registry.versions(name)
    by_version: dict[str, list[str]] = {}
    for alias, version in (registered.aliases or {}).items():
        by_version.setdefault(str(version), []).append(alias)
    last_retrain = (registered.tags or {}).get(LAST_RETRAIN_TAG)
    return {
        **_summary(cache, registered),
        "last_retrain": json.loads(last_retrain) if last_retrain else None,
        "versions": [
            {
                "version": str(v.version),
                "aliases": sorted(by_version.get(str(v.version), [])),
                "created_at": datetime.fromtimestamp(v.creation_timestamp / 1000, UTC).isoformat()
                if v.creation_timestamp
                else None,
                "run_id": v.run_id,
                "status": v.status,
                "tags": dict(v.tags or {}),
            }
            for v in sorted(versions, key=lambda v: int(v.version), reverse=True)
        ],
    }


@router.get("", response_model=ModelList, summary="Registered models, their aliases and what this process has loaded")
async def list_models(cache: CacheDep) -> dict:
    registered = await cache.call(cache.registry.models)
    return {"models": [_summary(cache, r) for r in sorted(registered, key=lambda r: r.name)]}


@router.get(
    "/{name}", response_model=ModelDetail, responses=MODEL_RESPONSES, summary="One model's versions and aliases"
)
async def get_model(name: str, cache: CacheDep) -> dict:
    detail = await cache.call(_detail, cache, name)
    champion = detail["aliases"].get(CHAMPION)
    tags: dict[str, str] = next((v["tags"] for v in detail["versions"] if v["version"] == champion), {})
    if model_kind(tags) == PANEL_FORECASTER:
        detail["series"] = await _panel_series(cache, name)
        detail["errors"] = {key[len(name) :]: entry for key, entry in cache.errors(name).items()}
    return detail


async def _panel_series(cache: ModelCache, name: str) -> list[dict] | None:
    """The series of ``name``'s served ``@champion`` panel model, each with its winner and that winner's MASE."""
    try:
        loaded = await cache.aget(name)
    except ModelLoadError:  # said under errors
        return None
    if loaded.kind != PANEL_ARTIFACT:
        return None
    out = []
    for series, facts in loaded.model.series.items():
        mase = facts.mase.get(facts.winner)
        out.append(
            {"name": series, "winner": facts.winner, "mase": mase if mase is not None and math.isfinite(mase) else None}
        )
    return out


def _reload(cache: ModelCache, name: str) -> dict:
    cache.registry.model(name)  # 404 for an unknown name
    return {"name": name, "changes": cache.reload(name)}


@router.post(
    "/{name}/reload",
    response_model=ReloadResult,
    responses={**MODEL_RESPONSES, **AUTH_RESPONSES},
    response_model_exclude_unset=True,  # "error" only on the changes that failed
    summary="Resolve this model's aliases again now and hot-swap what moved; each change says if it failed (API key)",
)
async def reload_model(name: str, cache: CacheDep, _: ApiKeyDep) -> dict:
    return await cache.call(_reload, cache, name)


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


def _scores(cache: ModelCache, name: str, limit: int) -> dict:
    detail = _detail(cache, name)  # 404 for an unknown name; versions newest first
    registry: RegistryReader = cache.registry
    versions = [v for i, v in enumerate(detail["versions"]) if i < limit or v["aliases"]]
    runs = {v["run_id"]: registry.run_data(v["run_id"]) for v in versions}
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
    "/{name}/scores",
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
