"""The one place that names a model's facts (pipelines/tracking/tags.py): what each kind of version says, how a
version registered before the facts is still read, and where a forecaster's stored series is named."""

import pytest

from pipelines.tracking import tags
from pipelines.tracking.tags import (
    CLASSIFIER,
    FORECASTER,
    PANEL_FORECASTER,
    ModelFacts,
    model_kind,
    store_source,
    stored_name,
    trained_series,
)


@pytest.mark.parametrize(
    "facts, kind",
    [
        (ModelFacts(tags.FORECAST, "gru", series="tiny", recipe={"variant": "gru"}), FORECASTER),
        (ModelFacts(tags.FORECAST, "panel:auto", series="store:sku-*", stored=True, panel=5), PANEL_FORECASTER),
        (ModelFacts(tags.CLASSIFY, "cnn"), CLASSIFIER),
    ],
)
def test_a_versions_kind_is_its_task_fact(facts, kind):
    assert facts.kind == kind
    assert model_kind(facts.version_tags()) == kind
    assert model_kind({}, facts.tags()) == kind  # a version without tags (copied), its run's facts
    assert model_kind({tags.TASK: tags.CLASSIFY}, facts.tags()) == CLASSIFIER  # the version's own first


def test_facts_as_tags():
    facts = ModelFacts(tags.FORECAST, "gru", series="sales", stored=True, recipe={"variant": "auto", "horizon": 6})
    assert facts.tags() == {
        "seqcast.task": "forecast",
        "seqcast.variant": "gru",
        "seqcast.series": "sales",
        "seqcast.stored": "true",
        "seqcast.recipe": '{"variant": "auto", "horizon": 6}',
    }
    assert facts.version_tags() == {**facts.tags(), "task": "forecast", "variant": "gru"}
    assert ModelFacts(tags.CLASSIFY, "cnn").tags() == {"seqcast.task": "classify", "seqcast.variant": "cnn"}


@pytest.mark.parametrize(
    "version_tags, kind",
    [
        ({"task": "classify", "variant": "cnn"}, CLASSIFIER),  # what the image pipeline tagged before the facts
        ({"seqcast.panel": "5", "winners": "{}"}, PANEL_FORECASTER),
        ({"window_config": "{}", "variant": "gru"}, FORECASTER),
        ({"variant": "gru"}, None),
        ({}, None),
    ],
)
def test_versions_registered_before_the_facts(version_tags, kind):
    assert model_kind(version_tags) == kind


def test_a_version_without_any_tag_is_known_by_its_bundles_folder(tmp_path):
    assert model_kind({}, {}, tmp_path) is None
    (tmp_path / "classifier").mkdir()
    assert model_kind({}, {}, tmp_path) == CLASSIFIER
    assert model_kind({"window_config": "{}"}, {}, tmp_path) == FORECASTER  # tags first


def test_the_stored_series_a_forecaster_trained_on():
    assert store_source("sales-1") == "series store: sales-1" and stored_name(store_source("sales-1")) == "sales-1"
    assert stored_name("/data/wineind.csv") is None
    assert trained_series(ModelFacts(tags.FORECAST, "gru", series="s", stored=True).tags(), {}) == "s"
    assert trained_series(ModelFacts(tags.FORECAST, "gru", series="wineind").tags(), {}) is None
    # runs logged before the facts: their data_source parameter
    assert trained_series({}, {"data_source": "series store: old"}) == "old"
    assert trained_series({}, {"data_source": "/data/wineind.csv"}) is None
