"""Shared fixtures: a tiny random BERT built from a config, small data files, a CLI runner."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from edgetransfer.modeling.backbones import builtin_path

WORDS = {
    "pos": ["great", "lovely", "superb", "fine", "excellent", "wonderful", "good", "nice"],
    "neg": ["awful", "bad", "terrible", "poor", "boring", "dull", "horrible", "weak"],
    "neu": ["table", "window", "river", "paper", "seven", "garden", "yellow", "engine"],
}


def make_rows(n: int, seed: int = 0, classes=("pos", "neg", "neu")) -> list[dict]:
    """Texts whose class is given by its words: a tiny model learns it in a few epochs."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = classes[i % len(classes)]
        words = rng.sample(WORDS[label], 3) + rng.sample(["the", "a", "it", "was", "so"], 2)
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "label": label})
    return rows


def write_jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide random BERT encoder (no head) with the real MiniLM tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    tok = AutoTokenizer.from_pretrained(builtin_path("minilm-l6"))
    config = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=128)
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


def make_classifier(backbone: Path, folder: Path, seed: int,
                    labels=("neg", "neu", "pos")) -> Path:
    """The tiny backbone with a seeded random head over `labels`, saved with its tokenizer."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        backbone, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)})
    model.save_pretrained(folder, safe_serialization=True)
    AutoTokenizer.from_pretrained(backbone).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_classifier(tiny_backbone, tmp_path_factory) -> Path:
    """The tiny BERT with a 2-class head (negative, positive) already attached."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = tmp_path_factory.mktemp("tiny-clf")
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_backbone, num_labels=2, id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1})
    model.save_pretrained(folder, safe_serialization=True)
    AutoTokenizer.from_pretrained(tiny_backbone).save_pretrained(folder)
    return folder


@pytest.fixture()
def copy_of(tmp_path):
    def _copy(src: Path, name: str = "model") -> Path:
        dst = tmp_path / name
        shutil.copytree(src, dst)
        return dst
    return _copy


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    write_jsonl(folder / "train.jsonl", make_rows(60, seed=1))
    write_jsonl(folder / "validation.jsonl", make_rows(24, seed=2))
    write_jsonl(folder / "test.jsonl", make_rows(24, seed=3))
    return folder


@pytest.fixture()
def cli(capsys):
    """Run the CLI in-process: returns (exit code, stderr)."""
    from edgetransfer.cli import main

    def run(*args: str):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        captured = capsys.readouterr()
        return code, captured.err + captured.out
    return run


def tiny_args(backbone: Path, data: Path, out: Path, *extra: str) -> list[str]:
    """Arguments for a fast finetune of the tiny model."""
    return ["-q", "finetune", "--model", backbone, "--train", data / "train.jsonl",
            "--validation", data / "validation.jsonl", "--out", out, "--epochs", "4",
            "--batch-size", "4", "--lr", "2e-3", "--patience", "0", *extra]
