"""The real bundled MiniLM on the project's intent data (slow: minutes on a 2-core CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / "recipes/data/intents"


def test_the_bundled_backbone_loads_offline(monkeypatch):
    from edgetransfer.modeling import backbones

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    b = backbones.resolve("minilm-l6")
    assert b.local and b.config["hidden_size"] == 384 and b.config["num_hidden_layers"] == 6
    from edgetransfer import tasks

    model, new = backbones.load_model(b, tasks.get("text-classification"), ["a", "b"])
    assert new == ["classifier"]  # the encoder and the pooler come from the checkpoint


def test_intent_data_is_well_formed():
    from edgetransfer.tasks.text_classification import load as load_task

    task = load_task(str(DATA / "train.jsonl"), str(DATA / "validation.jsonl"),
                     str(DATA / "test.jsonl"))
    assert task.num_labels == 10
    assert sum(len(s) for s in task.splits.values()) >= 1200
    train = {t.lower() for t in task.splits["train"]["text"]}
    assert not train & {t.lower() for t in task.splits["test"]["text"]}


@pytest.mark.slow
def test_lora_on_intents_reaches_90_percent(cli, tmp_path):
    out = tmp_path / "teacher"
    code, err = cli("-q", "finetune", "--model", "minilm-l6", "--method", "lora",
                    "--train", DATA / "train.jsonl", "--validation", DATA / "validation.jsonl",
                    "--test", DATA / "test.jsonl", "--out", out)
    assert code == 0, err
    assert json.loads((out / "metrics.json").read_text())["test"]["accuracy"] >= 0.9
