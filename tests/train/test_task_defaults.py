"""Learning rates by task (Task.learning_rates): the default a run takes unless --lr is
given, and the figures --help names. Measured in bench/small_data.py (bench/RESULTS.md
"Small data")."""

from __future__ import annotations

import re

import pytest

from edgetransfer import tasks
from edgetransfer.stages import distill, finetune

TASKS = ("text-classification", "token-classification", "image-classification")


@pytest.mark.parametrize("name", TASKS)
@pytest.mark.parametrize("method", list(finetune.DEFAULT_LR))
def test_finetune_takes_the_task_s_rate_then_the_method_s(name, method):
    task = tasks.get(name)
    cfg = finetune.FinetuneConfig(train="t.jsonl", out="o", method=method)
    expected = task.learning_rates.get(method, finetune.DEFAULT_LR[method])
    assert finetune.learning_rate_for(cfg, task) == expected
    given = finetune.FinetuneConfig(train="t.jsonl", out="o", method=method, lr=2e-5)
    assert finetune.learning_rate_for(given, task) == 2e-5


def test_a_cnn_and_a_tagger_train_faster_than_a_sentence_classifier():
    full = {name: finetune.learning_rate_for(
        finetune.FinetuneConfig(train="t", out="o"), tasks.get(name)) for name in TASKS}
    assert full["text-classification"] == finetune.DEFAULT_LR["full"]
    assert full["image-classification"] > full["token-classification"] > \
        full["text-classification"]


@pytest.mark.parametrize("name", TASKS)
def test_distill_takes_the_task_s_rate(name):
    task = tasks.get(name)
    cfg = distill.DistillConfig(teacher="t", train="t.jsonl", out="o")
    assert distill.learning_rate_for(cfg, task) == task.learning_rates.get(
        "distill", distill.DEFAULT_LR)


def _named(text: str, key: str) -> float:
    match = re.search(rf"{re.escape(key)} (\d[\d.e+-]*)", text)
    assert match, f"{key!r} has no number in: {text}"
    return float(match.group(1).rstrip(".]"))


def test_help_names_each_task_s_rates():
    finetune_help = finetune.FinetuneConfig.model_fields["lr"].description
    distill_help = distill.DistillConfig.model_fields["lr"].description
    for name in TASKS:
        rates = tasks.get(name).learning_rates
        for method, lr in rates.items():
            if method == "distill":
                assert _named(distill_help, name) == lr
            else:
                assert _named(finetune_help, f"{name} {method}") == lr
    assert _named(distill_help, "default") == distill.DEFAULT_LR
