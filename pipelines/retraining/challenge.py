"""One series' retraining: a challenger trained with the champion's recipe on the stored series, scored against
the champion on the same latest backtest folds, promoted only by the pipeline's gate (see
:func:`pipelines.forecasting.pipeline.train_and_register`), which writes the version's decision (once). A pass's
:class:`Challenger` is the task its workers run (process pool or Ray task): it takes and returns plain data, never
raises, and logs each series' child run under the pass's parent run.

TensorFlow is loaded only when a series is retrained (:meth:`Challenger.challenge`): the process that runs a pass
on a pool or on Ray builds the task and never loads it."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from pipelines import tracking
from pipelines.forecasting.data import DataError, Series
from pipelines.forecasting.pyfunc import PANEL_ARTIFACT
from pipelines.process import import_tensorflow_quietly
from pipelines.retraining.facts import PASS_TAG
from pipelines.settings import Settings
from pipelines.store import SeriesNotFound, SeriesStore
from pipelines.tracking.registry import (
    CHAMPION,
    LAST_RETRAIN_TAG,
    RECIPE_TAG,
    TrainOutcome,
    download,
    model_uri,
    version_by_alias,
)
from pipelines.tracking.tags import FORECASTER, PANEL_FORECASTER, model_kind, trained_series

if TYPE_CHECKING:
    from pipelines.forecasting.training import TrainConfig

log = logging.getLogger(__name__)

STORE_PATTERNS = "store:"  # the data_source of a panel trained on stored series: store:PATTERN,PATTERN


@dataclass
class SeriesResult:
    """What a pass learns about one series (also the child run's content)."""

    name: str
    status: str  # promoted | kept | skipped | failed
    decision: str  # the words: "promoted", "kept champion", "refused: ...", "skipped: ...", "failed: ..."
    seconds: float = 0.0
    series: str | None = None
    version: str | None = None  # the challenger's registered version
    champion_version: str | None = None
    challenger_mase: float | None = None
    champion_mase: float | None = None
    new_points: int | None = None
    champion_seen_test_points: int | None = None  # test-fold points inside the champion's own data window
    training_run_id: str | None = None
    data_window: dict = field(default_factory=dict)  # first, last, count

    @property
    def relative_change(self) -> float | None:
        if self.challenger_mase is None or not self.champion_mase:
            return None
        return self.challenger_mase / self.champion_mase - 1


def recipe_of(tags: dict[str, str], params: dict[str, str]) -> TrainConfig | None:
    """The TrainConfig a champion was trained with: its recipe tag, else (runs logged before the tag) its
    parameters; None when the run is not a forecasting run."""
    from pipelines.forecasting.training import TrainConfig

    known = {f.name: f for f in fields(TrainConfig)}
    if RECIPE_TAG in tags:
        return TrainConfig(**{k: v for k, v in json.loads(tags[RECIPE_TAG]).items() if k in known})
    if "lookback" not in params or "variant" not in params:
        return None
    values: dict = {}
    for name, f in known.items():
        raw = params.get(name)
        if raw is None:
            continue
        kind = str(f.type)
        values[name] = (
            None if raw == "None" else int(raw) if kind.startswith("int") else float(raw) if "float" in kind else raw
        )
    return TrainConfig(**values)


def _timestamp(text: str, like: pd.DatetimeIndex) -> pd.Timestamp:
    """``text`` as a timestamp comparable with ``like`` (naive and zoned times compared in UTC)."""
    t = pd.Timestamp(text)
    if like.tz is not None and t.tz is None:
        return t.tz_localize("UTC")
    if like.tz is None and t.tz is not None:
        return t.tz_convert("UTC").tz_localize(None)
    return t


def points_after(series: Series, last: str | None) -> int:
    """How many of the series' observations come after ``last`` (all of them when it is unknown)."""
    if last is None or series.timestamps is None:
        return len(series)
    index = pd.DatetimeIndex(series.timestamps)
    return int((index > _timestamp(last, index)).sum())


def seen_in_test(series: Series, test_start: int | None, champion_last: str | None) -> int:
    """Test-fold observations (from ``test_start`` on) that were inside the champion's data window."""
    if test_start is None or champion_last is None or series.timestamps is None:
        return 0
    index = pd.DatetimeIndex(series.timestamps)[test_start:]
    return int((index <= _timestamp(champion_last, index)).sum())


def _challenge(
    client: MlflowClient, name: str, settings: Settings, min_new_points: int, variant: str | None, pass_run_id: str
) -> SeriesResult:
    champion = version_by_alias(client, name, CHAMPION)
    if champion is None:
        return SeriesResult(name, "skipped", f"skipped: {name!r} has no @{CHAMPION} to challenge")
    current = str(champion.version)
    run = client.get_run(str(champion.run_id))
    params, recipe = run.data.params, recipe_of(run.data.tags, run.data.params)
    kind = model_kind(champion.tags, run.data.tags)
    if kind not in (FORECASTER, PANEL_FORECASTER) or recipe is None:
        return SeriesResult(name, "skipped", "skipped: not a forecasting model", champion_version=current)
    config = recipe if variant is None else replace(recipe, variant=variant)
    if kind == PANEL_FORECASTER:
        return _challenge_panel(
            name, current, params.get("data_source", ""), config, settings, min_new_points, pass_run_id
        )
    series_name = trained_series(run.data.tags, params) or name
    store = SeriesStore.from_settings(settings, upgrade=False)
    try:
        series = store.series(series_name)
    except SeriesNotFound:
        return SeriesResult(
            name,
            "skipped",
            f"skipped: no stored series {series_name!r} to retrain on",
            series=series_name,
            champion_version=current,
        )
    finally:
        store.close()
    window = series.meta["window"]
    champion_last = params.get("data_last")
    new = points_after(series, champion_last)
    result = SeriesResult(
        name,
        "skipped",
        "",
        series=series_name,
        champion_version=current,
        new_points=new,
        data_window=dict(window),
    )
    if new < min_new_points:
        result.decision = (
            f"skipped: {new} new observations of {series_name!r} since the champion's data (to {champion_last}); "
            f"at least {min_new_points} needed"
        )
        return result
    from pipelines.forecasting.pipeline import train_and_register

    outcome = train_and_register(
        series,
        config,
        name,
        settings=settings,
        margin=settings.retrain_margin,
        run_tags={PASS_TAG: pass_run_id},
    )
    _took(result, outcome)
    seen = seen_in_test(series, outcome.test_start, champion_last)
    result.champion_seen_test_points = seen
    if seen:
        # the champion has trained on part of the test folds: the comparison favours it (conservative). Said in the
        # pass's record and in a tag of its own: the version's decision is the gate's, written once
        result.decision += (
            f"; the champion's data covered {seen} of the test folds' points, so this comparison favours it"
        )
        client.set_model_version_tag(name, outcome.version, "champion_seen_test_points", str(seen))
    return result


def trained_lengths(name: str, version: str) -> dict[str, int]:
    """A registered panel version's series, in its order, each with its length when the panel trained: read from
    the version's saved config (``panel.json``; one file, not the networks)."""
    from pipelines.forecasting.panel import CONFIG_FILE

    path = download(f"{model_uri(name, version=version)}/artifacts/{PANEL_ARTIFACT}/{CONFIG_FILE}")
    config = json.loads(path.read_text())
    return dict(zip(config["series"]["names"], config["series"]["lengths"], strict=True))


def _panel_names(store: SeriesStore, source: str, trained: dict[str, int]) -> tuple[list[str], str | None]:
    """The panel's current series and, when there are none, why: for a ``store:PATTERNS`` source every stored
    series matching a pattern now (series stored since are in, a pattern that matches nothing is left out); for a
    file, the stored series named like the champion's."""
    if source.startswith(STORE_PATTERNS):
        patterns = [p for p in source.removeprefix(STORE_PATTERNS).split(",") if p]
        names: set[str] = set()
        for pattern in patterns:
            try:
                names.update(store.names([pattern]))
            except DataError:
                log.warning("no stored series matches %r (panel source %s)", pattern, source)
        if not names:
            return [], f"no stored series matches {', '.join(map(repr, patterns))} (the panel's source, {source})"
        return sorted(names), None
    try:
        stored = set(store.names(["*"]))
    except DataError:
        stored = set()
    names_ = [n for n in trained if n in stored]
    if not names_:
        return [], (
            f"none of the panel's {len(trained)} series (trained from {source}) is stored; "
            "ingest them (seqcast ingest) to retrain it"
        )
    return names_, None


def _challenge_panel(
    name: str,
    current: str,
    source: str,
    config: TrainConfig,
    settings: Settings,
    min_new_points: int,
    pass_run_id: str,
) -> SeriesResult:
    """A panel model challenged as one unit: a challenger trained with its recipe on the panel's current stored
    series (:func:`_panel_names`), promoted only by the panel pipeline's gate (pooled MASE on the same per-series
    folds, ``settings.retrain_margin``). New points are summed over the series: each series' values beyond its
    length when the champion trained, all of a series new to the panel."""
    result = SeriesResult(name, "skipped", "", series=source, champion_version=current)
    trained = trained_lengths(name, current)
    store = SeriesStore.from_settings(settings, upgrade=False)
    try:
        names, why = _panel_names(store, source, trained)
        if why is not None:
            result.decision = f"skipped: {why}"
            return result
        panel = list(store.panel(names))
    finally:
        store.close()
    windows = [s.meta["window"] for s in panel]
    result.data_window = {
        "series": len(panel),
        "first": min(w["first"] for w in windows),
        "last": max(w["last"] for w in windows),
        "count": sum(int(w["count"]) for w in windows),
    }
    result.new_points = sum(max(0, len(s) - trained.get(s.name, 0)) for s in panel)
    added = sum(s.name not in trained for s in panel)
    if result.new_points < min_new_points:
        result.decision = (
            f"skipped: {result.new_points} new observations over the panel's {len(panel)} series ({source}) since "
            f"the champion's data; at least {min_new_points} needed"
        )
        return result
    from pipelines.forecasting.pipeline import train_panel_and_register

    log.info("panel %s: %d series (%d new to it), %d new observations", name, len(panel), added, result.new_points)
    outcome = train_panel_and_register(
        panel,
        config,
        name,
        source=source,
        settings=settings,
        margin=settings.retrain_margin,
        run_tags={PASS_TAG: pass_run_id},
    )
    _took(result, outcome)
    return result


def _took(result: SeriesResult, outcome: TrainOutcome) -> None:
    """What the challenger's training and the gate decided, into the pass's result."""
    result.version, result.training_run_id = outcome.version, outcome.run_id
    result.challenger_mase, result.champion_mase = outcome.metrics["test_mase"], outcome.champion_score
    result.status = "promoted" if outcome.promoted else "kept"
    result.decision = outcome.decision


def _finite(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _log_child(client: MlflowClient, experiment_id: str, pass_run_id: str, result: SeriesResult, margin: float):
    """The series' child run under the pass: both scores, margin, decision, data window, new points."""
    run = client.create_run(
        experiment_id,
        run_name=result.name,
        tags={
            "mlflow.parentRunId": pass_run_id,
            "status": result.status,
            "decision": result.decision[:5000],
            **{
                k: str(v)
                for k, v in (
                    ("version", result.version),
                    ("champion_version", result.champion_version),
                    ("training_run_id", result.training_run_id),
                )
                if v is not None
            },
        },
    )
    now = int(time.time() * 1000)
    params = {"model": result.name, "series": result.series, "margin": margin}
    params.update({f"data_{k}": v for k, v in result.data_window.items()})
    metrics = {
        "challenger_mase": _finite(result.challenger_mase),
        "champion_mase": _finite(result.champion_mase),
        "relative_change": _finite(result.relative_change),
        "new_points": _finite(result.new_points),
        "champion_seen_test_points": _finite(result.champion_seen_test_points),
        "seconds": result.seconds,
    }
    client.log_batch(
        run.info.run_id,
        metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
        params=[Param(k, str(v)) for k, v in params.items() if v is not None],
        tags=[RunTag("seqcast.series", result.series or "")],
    )
    client.set_terminated(run.info.run_id, "FAILED" if result.status == "failed" else "FINISHED")


@dataclass(frozen=True)
class Challenger:
    """A pass's challenge of each champion, the task its workers run (pickled to a pool worker or a Ray task, so
    plain data only): :meth:`challenge` one model, :meth:`crashed` for one whose worker died, each recorded
    (:meth:`record`) as a child run of the pass and as the model's last decision."""

    settings: Settings
    pass_run_id: str
    pass_experiment_id: str
    min_new_points: int
    variant: str | None = None  # None: each champion's own recipe

    def challenge(self, name: str) -> SeriesResult:
        """Challenge NAME's champion; never raises (one series failing never stops the others)."""
        import_tensorflow_quietly()  # in a worker: loaded before its first series (not its seconds), with its threads
        start = time.monotonic()
        client = tracking.configure(self.settings)
        try:
            result = _challenge(client, name, self.settings, self.min_new_points, self.variant, self.pass_run_id)
        except Exception as exc:
            log.exception("retraining %s failed", name)
            result = SeriesResult(name, "failed", f"failed: {type(exc).__name__}: {exc}")
        result.seconds = round(time.monotonic() - start, 3)
        self.record(result)
        return result

    def crashed(self, name: str, exc: BaseException) -> SeriesResult:
        """NAME's result when its worker died under it (the pass's process records it)."""
        result = SeriesResult(
            name, "failed", f"failed: its worker stopped (killed, out of memory, or a worker beside it was): {exc}"
        )
        self.record(result)
        return result

    def record(self, result: SeriesResult) -> None:
        """The series' child run under the pass, and its registered model's last-decision tag (read by the
        service)."""
        client = tracking.configure(self.settings)
        try:
            _log_child(client, self.pass_experiment_id, self.pass_run_id, result, self.settings.retrain_margin)
            if result.status != "skipped" or result.champion_version is not None:  # the registered model exists
                entry = {**asdict(result), "pass_run_id": self.pass_run_id, "at": datetime.now(UTC).isoformat()}
                client.set_registered_model_tag(result.name, LAST_RETRAIN_TAG, json.dumps(_plain(entry)))
        except Exception:
            log.exception("could not record the retraining decision for %s", result.name)


def _plain(value):
    """JSON-ready: numpy scalars as Python numbers, inf/NaN as null (what a JSON reader can take)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
