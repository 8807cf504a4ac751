"""The one place that names a model's facts: the tag names every registered version and its training run carry
(written by :func:`pipelines.tracking.registry.record`), what kind of model a version is (:func:`model_kind`), and
where a forecaster's series came from (:func:`trained_series`). Every reader asks here; only here are the
conventions of versions logged before the facts read.

Imports nothing of the project: the series store names its source with :func:`store_source` too."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# --- tag names (on a training run and on the version it registered) -------------------------------------------
TASK = "seqcast.task"  # FORECAST or CLASSIFY
VARIANT = "seqcast.variant"  # the network (or the panel's "panel:<variant>")
SERIES = "seqcast.series"  # forecasting: the series it trained on (a panel: its source)
STORED = "seqcast.stored"  # forecasting: "true" when that series was read from the series store
RECIPE = "seqcast.recipe"  # forecasting: the resolved config as asked (variant "auto" too), what retraining reruns
PANEL = "seqcast.panel"  # a panel model: its series count
DECISION = "seqcast.decision"  # on the run: the champion rule's words (see registry.decide)
PROMOTED_TAG = "seqcast.promoted"  # on the run: "True" or "False"
# on a version: the short names the registry's UI shows beside the facts
VERSION_TASK = "task"
VERSION_VARIANT = "variant"
VERSION_DECISION = "decision"
LAST_RETRAIN = "seqcast.last_retrain"  # on a registered model: its latest retraining decision (JSON)

FORECAST, CLASSIFY = "forecast", "classify"

# --- kinds: each is also the artifact folder its versions' bundle is logged under --------------------------------
FORECASTER = "forecaster"
PANEL_FORECASTER = "panel_forecaster"
CLASSIFIER = "classifier"
KINDS = (FORECASTER, PANEL_FORECASTER, CLASSIFIER)
# kind -> (the metric its champion rule compares as test_<metric>, whether higher is better)
SCORES = {FORECASTER: ("mase", False), PANEL_FORECASTER: ("mase", False), CLASSIFIER: ("accuracy", True)}

STORE_SOURCE = "series store: "  # a series read from the series store names its source so (Series.source)


@dataclass(frozen=True)
class ModelFacts:
    """What a training run and the version it registers say about themselves (tagged on both)."""

    task: str  # FORECAST or CLASSIFY
    variant: str
    series: str | None = None
    stored: bool = False  # the series came from the series store (retraining reads it there again)
    recipe: dict | None = None
    panel: int | None = None  # a panel model's series count

    @property
    def kind(self) -> str:
        if self.task == CLASSIFY:
            return CLASSIFIER
        return PANEL_FORECASTER if self.panel is not None else FORECASTER

    def tags(self) -> dict[str, str]:
        tags = {TASK: self.task, VARIANT: self.variant}
        if self.series is not None:
            tags.update({SERIES: self.series, STORED: str(self.stored).lower()})
        if self.recipe is not None:
            tags[RECIPE] = json.dumps(self.recipe)
        if self.panel is not None:
            tags[PANEL] = str(self.panel)
        return tags

    def version_tags(self) -> dict[str, str]:
        return {**self.tags(), VERSION_TASK: self.task, VERSION_VARIANT: self.variant}


def _kind_from_facts(tags: Mapping[str, str]) -> str | None:
    task = tags.get(TASK)
    if task == CLASSIFY:
        return CLASSIFIER
    if task == FORECAST:
        return PANEL_FORECASTER if PANEL in tags else FORECASTER
    return None


def model_kind(
    version_tags: Mapping[str, str], run_tags: Mapping[str, str] | None = None, artifacts: Path | None = None
) -> str | None:
    """A registered version's kind (FORECASTER, PANEL_FORECASTER or CLASSIFIER; None: not a seqcast model): its
    task fact, else its run's. Versions registered before the facts: the tags their pipelines wrote then (a
    classifier's ``task``, a panel's count, a forecaster's ``window_config``), else the folder their bundle was
    logged under (``artifacts``: the downloaded ``artifacts/`` folder, when the reader has it)."""
    kind = _kind_from_facts(version_tags) or _kind_from_facts(run_tags or {})
    if kind is not None:
        return kind
    if version_tags.get(VERSION_TASK) == CLASSIFY or "classifier_config" in version_tags:
        return CLASSIFIER
    if PANEL in version_tags:
        return PANEL_FORECASTER
    if "window_config" in version_tags:
        return FORECASTER
    if artifacts is not None:
        return next((k for k in KINDS if (artifacts / k).is_dir()), None)
    return None


def store_source(name: str) -> str:
    """The source of the stored series ``name`` (what the series store gives its Series)."""
    return f"{STORE_SOURCE}{name}"


def stored_name(source: str) -> str | None:
    """The stored series a source names (:func:`store_source`); None for a file or built-in data."""
    return source.removeprefix(STORE_SOURCE) if source.startswith(STORE_SOURCE) else None


def trained_series(run_tags: Mapping[str, str], params: Mapping[str, str]) -> str | None:
    """The stored series a forecaster's run trained on; None when it trained on a file or built-in data. Runs
    logged before the facts: their ``data_source`` parameter."""
    if STORED in run_tags:
        return run_tags.get(SERIES) if run_tags[STORED] == "true" else None
    return stored_name(params.get("data_source", ""))
