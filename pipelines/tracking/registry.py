"""The MLflow Model Registry side, for any task: the one train-and-register sequence (:func:`register_run`),
registration, and the champion rule (``@champion`` moves only to a better model)."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipelines.settings import Settings
from pipelines.tracking.experiments import open_experiment

CHAMPION = "champion"
BELOW_BASELINE = "below baseline"  # the decision for a model that loses to a free forecast on its own backtest
# a model that is a free forecast (auto serves one where no network beats it) scores it up to float32 rounding
FLOOR_TOLERANCE = 1e-6
LAST_RETRAIN_TAG = "seqcast.last_retrain"  # on a registered model: its latest retraining decision (JSON)
# on a training run: the resolved config as asked (variant "auto" too), what retraining reruns
RECIPE_TAG = "seqcast.recipe"


def version_by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def model_uri(name: str, *, alias: str | None = None, version: int | str | None = None) -> str:
    return f"models:/{name}/{version}" if version is not None else f"models:/{name}@{alias or CHAMPION}"


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
    """Point ``@champion`` at ``version`` if its score :func:`beats` the champion's, is no worse than ``floor`` (the
    best free forecast's score on the same backtest, for a task that has free forecasts) and ``verify(version)``
    (the registered artifact loaded back as the service loads it) finds nothing wrong; returns the decision:
    ``promoted``, ``kept champion``, ``below baseline`` or ``refused: <why>``. ``promote_anyway`` skips the
    comparisons (not the checks): for a user who insists.

    The scores, the margin and the decision are tagged on the new version.
    """
    if not math.isfinite(challenger):
        decision = f"refused: its backtest {metric} is {challenger}"
    elif floor is not None and not promote_anyway and loses_to(challenger, floor, higher_is_better):
        decision = BELOW_BASELINE
    elif promote_anyway or beats(challenger, champion, margin=margin, higher_is_better=higher_is_better):
        problem = verify(version) if verify is not None else None
        decision = "promoted" if problem is None else f"refused: {problem}"
    else:
        decision = "kept champion"
    client.set_model_version_tag(name, version, f"challenger_{metric}", f"{challenger:.6g}")
    client.set_model_version_tag(name, version, f"champion_{metric}", "none" if champion is None else f"{champion:.6g}")
    if floor is not None:
        client.set_model_version_tag(name, version, f"baseline_{metric}", f"{floor:.6g}")
    if margin:
        client.set_model_version_tag(name, version, "margin", f"{margin:g}")
    client.set_model_version_tag(name, version, "decision", decision)
    if decision == "promoted":
        client.set_registered_model_alias(name, CHAMPION, version)
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
    decision: str  # see promote_if_better
    champion_score: float | None

    @property
    def promoted(self) -> bool:
        return self.decision == "promoted"


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
    decision: str = ""  # see promote_if_better
    test_start: int | None = None  # forecasting: index of the first backtest origin in the training series


def register_challenger(
    client: MlflowClient,
    name: str,
    score: float,
    *,
    score_champion: Callable[[str], float],
    log_model: Callable[[], str],
    metric: str = "mase",
    higher_is_better: bool = False,
    margin: float = 0.0,
    verify: Callable[[str], str | None] | None = None,
    floor: float | None = None,
    promote_anyway: bool = False,
) -> Registration:
    """The champion comparison every pipeline ends with, inside its MLflow run.

    Scores the current ``@champion`` (if any) with ``score_champion(uri)`` on the challenger's own test data,
    registers the challenger (``log_model()`` -> version), moves ``@champion`` only as :func:`promote_if_better`
    decides, and records ``champion_<metric>`` and the decision on the run.
    """
    champion = version_by_alias(client, name, CHAMPION)
    champion_score = score_champion(model_uri(name, version=champion.version)) if champion else None
    version = log_model()
    decision = promote_if_better(
        client,
        name,
        version,
        score,
        champion_score,
        metric=metric,
        higher_is_better=higher_is_better,
        margin=margin,
        verify=verify,
        floor=floor,
        promote_anyway=promote_anyway,
    )
    if champion_score is not None:  # no champion: no metric (a NaN would read as a failed score)
        mlflow.log_metric(f"champion_{metric}", champion_score)
    mlflow.set_tags({"seqcast.promoted": str(decision == "promoted"), "seqcast.decision": decision})
    return Registration(version, decision, champion_score)


@dataclass
class Challenger:
    """What a task's training hands :func:`register_run`: its best candidate, already logged on the run."""

    variant: str
    metrics: dict[str, float]  # logged on the run; ``test_<metric>`` is the score the champion rule compares
    score_champion: Callable[[str], float]  # the registered model at this URI on the challenger's own test data
    log_model: Callable[[], str]  # log and register the challenger; returns its version
    # the registered version loaded back as the service loads it; returns why it must not serve, or None
    verify: Callable[[str], str | None] | None = None
    test_start: int | None = None
    # the best free forecast's score on the same test data (forecasting): a challenger worse than it never serves
    floor: float | None = None
    version_tags: dict[str, str] = field(default_factory=dict)
    run_tags: dict[str, str] = field(default_factory=dict)
    grid: list[dict] = field(default_factory=list)


def register_run(
    name: str,
    run_name: str,
    train: Callable[[str], Challenger],
    *,
    metric: str,
    higher_is_better: bool,
    settings: Settings | None = None,
    margin: float = 0.0,
    promote_anyway: bool = False,
) -> TrainOutcome:
    """The sequence every task's training ends with: open NAME's experiment, start a run, ``train(experiment_id)``
    (which logs its candidate on the run), score the champion on the same test data, register the challenger,
    move ``@champion`` only if it is better by more than ``margin`` (relative), no worse than the challenger's
    ``floor`` (its best free forecast) and its registered artifact verifies, and tag the run and the new version.
    ``promote_anyway``: promote whatever the scores (the artifact must still verify)."""
    client, experiment_id = open_experiment(name, settings)
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        challenger = train(experiment_id)
        mlflow.set_tags({"seqcast.variant": challenger.variant, **challenger.run_tags})
        registration = register_challenger(
            client,
            name,
            challenger.metrics[f"test_{metric}"],
            score_champion=challenger.score_champion,
            log_model=challenger.log_model,
            metric=metric,
            higher_is_better=higher_is_better,
            margin=margin,
            verify=challenger.verify,
            floor=challenger.floor,
            promote_anyway=promote_anyway,
        )
        for key, value in {"variant": challenger.variant, **challenger.version_tags}.items():
            client.set_model_version_tag(name, registration.version, key, value)
        return TrainOutcome(
            name,
            run.info.run_id,
            registration.version,
            registration.promoted,
            challenger.metrics,
            registration.champion_score,
            challenger.variant,
            challenger.grid,
            registration.decision,
            challenger.test_start,
        )
