"""Which task a run is: given, recorded, read off the head, or told by the data's columns."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from edgetransfer import tasks
from edgetransfer.errors import ConfigError, ModelError

CLS = {"architectures": ["BertForSequenceClassification"], "id2label": {"0": "a", "1": "b"}}
BARE = {"architectures": ["BertModel"]}


@pytest.fixture()
def twin():
    """A second task that also reads text columns (so the data alone is ambiguous)."""
    base = tasks.get("text-classification")
    task = tasks.register(replace(base, name="text-twin", claims=lambda c: False))
    yield task
    tasks.unregister("text-twin")


def test_given_task_wins_and_must_fit_the_head():
    assert tasks.resolve("text-classification", config=CLS).name == "text-classification"
    with pytest.raises(ConfigError, match="--task nope: no such task; the tasks are"):
        tasks.resolve("nope")


def test_a_head_of_another_task_is_refused(twin):
    with pytest.raises(ModelError, match="its head is text-classification, not text-twin"):
        tasks.resolve("text-twin", config=CLS)
    assert tasks.resolve("text-twin", config=BARE).name == "text-twin"  # a bare encoder


def test_the_head_tells_the_task():
    assert tasks.resolve(None, config=CLS).name == "text-classification"
    regression = dict(CLS, problem_type="regression")
    assert tasks.of_config(regression) == []  # a regression head is not a classifier


def test_an_artifact_records_its_task(tmp_path, twin):
    (tmp_path / "artifact.json").write_text(json.dumps({"task": "text-twin"}))
    assert tasks.resolve(None, config=BARE, folder=tmp_path).name == "text-twin"


def test_the_data_tells_the_task_when_one_fits(twin):
    columns = ["sentence", "label"]
    with pytest.raises(ConfigError, match="fit several tasks .*pass --task"):
        tasks.resolve(None, config=BARE, columns=columns)
    tasks.unregister("text-twin")
    assert tasks.resolve(None, config=BARE, columns=lambda: columns).name == \
        "text-classification"


def test_columns_are_read_only_when_needed():
    def never():
        raise AssertionError("the data was read although the head said")

    assert tasks.resolve(None, config=CLS, columns=never).name == "text-classification"


def test_nothing_fits_falls_back_to_the_default_task():
    assert tasks.resolve(None, config=BARE, columns=["foo"]).name == tasks.DEFAULT
