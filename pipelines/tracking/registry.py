"""The MLflow Model Registry side, for any task: the steps every train-and-register pipeline takes in order
inside its run (find the champion, log and register the challenger, :func:`decide`, :func:`record`), and the
champion rule (``@champion`` moves only to a better model)."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipelines.tracking import tags as facts_tags
from pipelines.tracking.tags import LAST_RETRAIN, RECIPE, ModelFacts

CHAMPION = "champion"
PROMOTED = "promoted"
KEPT = "kept champion"
BELOW_BASELINE = "below baseline"  # the decision for a model that loses to a free forecast on its own backtest
# a model that is a free forecast (auto serves one where no network beats it) scores it up to float32 rounding
FLOOR_TOLERANCE = 1e-6
LAST_RETRAIN_TAG = LAST_RETRAIN  # the names readers have imported from here
RECIPE_TAG = RECIPE


PAGE_SIZE = 1000  # MLflow's largest page for registered models


def all_pages(search: Callable[..., Any], *args: Any, page_size: int = PAGE_SIZE, **kwargs: Any) -> Iterator[Any]:
    """Every result of an MLflow ``search_*`` call, page by page (one page holds at most ``page_size``)."""
    token = None
    while True:
        page = search(*args, max_results=page_size, page_token=token, **kwargs)
        yield from page
        token = page.token
        if not token:
            return


def version_by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def model_uri(name: str, *, alias: str | None = None, version: int | str | None = None) -> str:
    return f"models:/{name}/{version}" if version is not None else f"models:/{name}@{alias or CHAMPION}"


def champion_uri(client: MlflowClient, name: str) -> str | None:
    """The URI of NAME's current ``@champion`` version (by number: it stays put while the alias moves); None when
    there is none."""
    champion = version_by_alias(client, name, CHAMPION)
    return model_uri(name, version=champion.version) if champion is not None else None


def download(uri: str, dst: str | Path | None = None) -> Path:
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst) if dst else None))


def beats(challenger: float, champion: float | None, *, margin: float = 0.0, higher_is_better: bool = False) -> bool:
    """The champion rule: a finite challenger score better than the champion's by more than ``margin`` (relative;
    0 = strictly better). No champion, or one that cannot be scored on this data (inf/NaN), is beaten by any
    finite score."""
    if not math.isfinite(challenger):
        return False
    if champion is None or not math.isfinite(champion):
        return True
    if higher_is_better:
        return challenger > champion * (1 + margin)
    return challenger < champion * (1 - margin)


def loses_to(score: float, floor: float, higher_is_better: bool = False) -> bool:
    """Whether ``score`` is worse than a free forecast's ``floor`` beyond float rounding (``FLOOR_TOLERANCE``)."""
    if higher_is_better:
        return score < floor * (1 - FLOOR_TOLERANCE)
    return score > floor * (1 + FLOOR_TOLERANCE)


@dataclass(frozen=True)
class Scores:
    """What the champion rule compares: the challenger's test score, the champion's on the same test data (None:
    no champion), the best free forecast's there (``floor``; None for a task without free forecasts) and the
    relative margin the challenger must win by."""

    challenger: float
    champion: float | None = None
    floor: float | None = None
    margin: float = 0.0
    metric: str = "mase"
    higher_is_better: bool = False


def decide(scores: Scores, *, promote_anyway: bool = False) -> str:
    """The champion rule's decision: ``promoted`` (pending the registered artifact's check: :func:`refused`),
    ``kept champion``, ``below baseline`` or ``refused: <why>``. ``promote_anyway`` skips the comparisons (not the
    checks): for a user who insists."""
    if not math.isfinite(scores.challenger):
        return f"refused: its backtest {scores.metric} is {scores.challenger}"
    if (
        scores.floor is not None
        and not promote_anyway
        and loses_to(scores.challenger, scores.floor, scores.higher_is_better)
    ):
        return BELOW_BASELINE
    if promote_anyway or beats(
        scores.challenger, scores.champion, margin=scores.margin, higher_is_better=scores.higher_is_better
    ):
        return PROMOTED
    return KEPT


def refused(problem: str) -> str:
    """The decision for a version whose registered artifact must not serve (``problem`` says why)."""
    return f"refused: {problem}"


def tag_decision(client: MlflowClient, name: str, version: str, scores: Scores, decision: str) -> None:
    """The scores, the margin and the decision on the version; ``@champion`` moves to it when promoted."""
    metric = scores.metric
    client.set_model_version_tag(name, version, f"challenger_{metric}", f"{scores.challenger:.6g}")
    champion = "none" if scores.champion is None else f"{scores.champion:.6g}"
    client.set_model_version_tag(name, version, f"champion_{metric}", champion)
    if scores.floor is not None:
        client.set_model_version_tag(name, version, f"baseline_{metric}", f"{scores.floor:.6g}")
    if scores.margin:
        client.set_model_version_tag(name, version, "margin", f"{scores.margin:g}")
    client.set_model_version_tag(name, version, facts_tags.VERSION_DECISION, decision)
    if decision == PROMOTED:
        client.set_registered_model_alias(name, CHAMPION, version)


def promote_if_better(
    client: MlflowClient,
    name: str,
    version: str,
    challenger: float,
    champion: float | None,
    *,
    metric: str = "mase",
    higher_is_better: bool = False,
    margin: float = 0.0,
    verify: Callable[[str], str | None] | None = None,
    floor: float | None = None,
    promote_anyway: bool = False,
) -> str:
    """:func:`decide`, check the version with ``verify`` (why it must not serve, or None) when it would be
    promoted, and :func:`tag_decision`; returns the decision."""
    scores = Scores(challenger, champion, floor, margin, metric, higher_is_better)
    decision = decide(scores, promote_anyway=promote_anyway)
    if decision == PROMOTED and verify is not None and (problem := verify(version)) is not None:
        decision = refused(problem)
    tag_decision(client, name, version, scores, decision)
    return decision


def log_pyfunc_model(
    name: str,
    entry: Path,
    artifact: str,
    save: Callable[[Path], Path],
    *,
    signature=None,
    input_example=None,
) -> str:
    """Log a models-from-code pyfunc (``entry`` + the folder ``save`` writes under ``artifact``) in the active run
    and register it as a new version of ``name``; returns the version. Nothing is pickled."""
    with tempfile.TemporaryDirectory() as tmp:
        path = save(Path(tmp) / artifact)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(entry),
            artifacts={artifact: str(path)},
            signature=signature,
            input_example=input_example,
            pip_requirements=["seqcast"],
            registered_model_name=name,
        )
    return str(info.registered_model_version)


@dataclass(frozen=True)
class Registration:
    version: str
    decision: str  # see decide
    champion_score: float | None

    @property
    def promoted(self) -> bool:
        return self.decision == PROMOTED


def record(
    client: MlflowClient,
    name: str,
    version: str,
    facts: ModelFacts,
    scores: Scores,
    decision: str,
    version_tags: dict[str, str] | None = None,
) -> Registration:
    """The one register step's record, in the active run: the decision (:func:`tag_decision`, ``@champion``
    moved when promoted), the model's facts on the version and the run, ``champion_<metric>`` on the run."""
    tag_decision(client, name, version, scores, decision)
    for key, value in {**facts.version_tags(), **(version_tags or {})}.items():
        client.set_model_version_tag(name, version, key, value)
    if scores.champion is not None:  # no champion: no metric (a NaN would read as a failed score)
        mlflow.log_metric(f"champion_{scores.metric}", scores.champion)
    mlflow.set_tags({**facts.tags(), facts_tags.PROMOTED_TAG: str(decision == PROMOTED), facts_tags.DECISION: decision})
    return Registration(version, decision, scores.champion)


@dataclass
class TrainOutcome:
    """What a training command reports: the run, the registered version and the champion decision."""

    name: str
    run_id: str
    version: str
    promoted: bool
    metrics: dict[str, float]
    champion_score: float | None
    variant: str
    grid: list[dict] = field(default_factory=list)  # one entry per cell when train-images --grid was given
    decision: str = ""  # see decide
    test_start: int | None = None  # forecasting: index of the first backtest origin in the training series

    @classmethod
    def of(
        cls, run_id: str, name: str, facts: ModelFacts, registration: Registration, metrics: dict[str, float], **more
    ) -> TrainOutcome:
        return cls(
            name,
            run_id,
            registration.version,
            registration.promoted,
            metrics,
            registration.champion_score,
            facts.variant,
            decision=registration.decision,
            **more,
        )
