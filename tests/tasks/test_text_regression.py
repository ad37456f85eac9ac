"""A task the package does not ship, added by this file alone: text regression.

The Task seam's proof: a one-output head with mean absolute error as its metric, on data
this test writes, taken through finetune -> export -> verify -> package -> predict with no
change to any stage module. Everything task-specific is below; the rest is edgetransfer's.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from conftest import write_jsonl

NAME = "text-regression"
WORDS = {1.0: ["awful", "terrible", "horrible"], 3.0: ["table", "window", "paper"],
         5.0: ["great", "superb", "wonderful"]}


def _rows(n: int, seed: int) -> list[dict]:
    """Texts whose score is the mean of their words' scores."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        scores = [rng.choice(list(WORDS)) for _ in range(3)]
        words = [rng.choice(WORDS[s]) for s in scores] + ["the", "it"]
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "score": float(np.mean(scores))})
    return rows


def _task():
    """The whole task: plain functions in a Task, the text parts borrowed from tasks.text."""
    from edgetransfer import inputs
    from edgetransfer.data.splits import pick_column, read_splits, sample_and_carve
    from edgetransfer.errors import DataError
    from edgetransfer.modeling import backbones
    from edgetransfer.tasks import Task, TaskData, text

    def claims(config):
        return config.get("problem_type") == "regression"

    def head_config(names):
        return dict(num_labels=1, problem_type="regression", id2label={0: names[0]},
                    label2id={names[0]: 0})

    def targets(ds, spec, column):
        column = pick_column(list(ds.column_names), column, ("score", "label"), "target",
                             spec, "--label-column")
        values = ds[column]
        bad = next((i for i, v in enumerate(values) if not isinstance(v, (int, float))), None)
        if bad is not None:
            raise DataError(f"{spec}: row {bad}: {column!r} is {values[bad]!r}, not a number")
        return [float(v) for v in values], column

    def read(opts, model_labels=None):
        raw, specs = read_splits(opts.train, opts.validation, opts.test)
        splits = {}
        for name, ds in raw.items():
            col, _ = text.text_columns(list(ds.column_names), specs[name], opts.text_column,
                                       None)
            text.check_texts(ds, [col], specs[name])
            values, label = targets(ds, specs[name], opts.label_column)
            splits[name] = text.inputs_of(ds, col, None).add_column("label", values)
        notes = sample_and_carve(splits, train_sample=opts.train_sample,
                                 validation_fraction=opts.validation_fraction, seed=opts.seed)
        return TaskData(splits=splits, label_names=model_labels or ["score"],
                        columns={"text": col, "label": label}, sources=specs, notes=notes)

    def read_eval(spec, label_names, opts=None):
        rows, raw = text.read_texts(spec, getattr(opts, "text_column", None))
        if label_names is None:
            return rows
        return rows.add_column("label", targets(raw, spec, getattr(opts, "label_column",
                                                                   None))[0])

    def metrics(labels, predictions, names):
        err = np.abs(np.asarray(predictions, float) - np.asarray(labels, float))
        return {"mae": round(float(err.mean()), 6), "n": int(len(err))}

    def compare(labels, reference, candidate, names, seed=0):
        ref, cand = metrics(labels, reference, names), metrics(labels, candidate, names)
        worse = cand["mae"] - ref["mae"]
        return {"n": ref["n"], "mae": {"points": round(worse, 6), "ci95": [worse, worse]},
                "flips": 0, "flip_rate": 0.0}

    def distill_loss(student, teacher, labels, *, alpha, temperature):
        import torch.nn.functional as F

        soft = F.mse_loss(student, teacher)
        return alpha * soft + (1 - alpha) * F.mse_loss(student[..., 0], labels), {"soft": soft}

    return Task(
        name=NAME, summary="a number for each text",
        model_class="AutoModelForSequenceClassification", optimum_task="text-classification",
        peft_task_type="SEQ_CLS", claims=claims, head_config=head_config,
        read=read, read_eval=read_eval, claims_data=lambda columns: False,
        load_preprocessor=backbones.load_tokenizer,
        prepare=lambda td, tok, opts: text.tokenize(td.splits, td.sources, tok, opts.max_length),
        encode=text.encode_arrays, per_example=lambda values, index: values, index_columns=(),
        collator=text.collator, read_unlabeled=None,
        predictions=lambda logits: np.asarray(logits)[..., 0], metrics=metrics, render=None,
        primary="mae", greater_is_better=False, compare=compare,
        drop=lambda reference, candidate: candidate - reference, per_label_delta=None,
        distill_loss=distill_loss, agreement=None,
        # no prediction to agree on: every precision is judged by the output's distance
        tolerances={"fp32": (1e-4, None), "fp16": (5e-2, None), "int8": (0.25, None)},
        probe_rows=text.PROBE_ROWS, rewrites=frozenset(),
        runtime={"postprocess": "values"}, inputs=inputs.get("text"),
    )


@pytest.fixture()
def regression():
    from edgetransfer import tasks

    task = tasks.register(_task())
    yield task
    tasks.unregister(NAME)


def test_a_task_registered_by_a_test_runs_every_stage(regression, cli, tiny_backbone, tmp_path):
    data = tmp_path / "data"
    write_jsonl(data / "train.jsonl", _rows(120, 1))
    write_jsonl(data / "validation.jsonl", _rows(30, 2))
    write_jsonl(data / "test.jsonl", _rows(30, 3))

    teacher = tmp_path / "teacher"
    code, out = cli("-q", "finetune", "--task", NAME, "--model", tiny_backbone,
                    "--train", data / "train.jsonl", "--validation", data / "validation.jsonl",
                    "--test", data / "test.jsonl", "--out", teacher, "--epochs", "6",
                    "--batch-size", "8", "--lr", "3e-3", "--patience", "0")
    assert code == 0, out
    config = json.loads((teacher / "config.json").read_text())
    assert config["problem_type"] == "regression" and config["id2label"] == {"0": "score"}
    manifest = json.loads((teacher / "artifact.json").read_text())
    assert manifest["task"] == NAME and "validation_mae" in manifest["metrics"]
    metrics = json.loads((teacher / "metrics.json").read_text())
    history = json.loads((teacher / "history.json").read_text())
    assert metrics["training"]["best_validation_mae"] == min(
        h["eval_mae"] for h in history if "eval_mae" in h)  # lower is better: the least kept
    assert metrics["test"]["mae"] < 0.9  # learnt something: the targets' spread is ~0.9

    onnx = tmp_path / "onnx"
    code, out = cli("-q", "export", "--model", teacher, "--out", onnx, "--quantize", "none",
                    "--eval-data", data / "test.jsonl")
    assert code == 0, out
    record = json.loads((onnx / "export.json").read_text())
    assert record["task"] == NAME and record["metric"] == "mae"
    assert abs(record["mae"] - metrics["test"]["mae"]) < 1e-3
    assert "first_token_last_layer" not in record  # the task allows no rewrite
    assert record["parity"]["final"]["outputs"]["logits"]["top1_agreement"] is None

    report = tmp_path / "verify.json"
    code, out = cli("verify", "--reference", teacher, "--candidate", f"int8={onnx}",
                    "--data", data / "test.jsonl", "--out", report, "--no-latency")
    assert code == 0, out
    verified = json.loads(report.read_text())
    assert verified["task"] == NAME and verified["passed"]
    assert verified["candidates"][0]["accuracy_drop"]["mae"]["points"] < 1e-3
    assert "mae" in out  # the terminal table names the task's metric

    bundle = tmp_path / "bundle"
    code, out = cli("-q", "package", "--model", onnx, "--verify-report", report,
                    "--out", bundle, "--no-measure")
    assert code == 0, out
    spec = json.loads((bundle / "input_spec.json").read_text())
    assert spec["task"] == {"name": NAME, "inputs": "text", "postprocess": "values"}
    assert json.loads((bundle / "manifest.json").read_text())["task"] == NAME
    assert NAME in (bundle / "README.md").read_text()

    code, out = cli("predict", "--bundle", tmp_path / "bundle.tar.gz", "great superb the it",
                    "awful terrible the it")
    assert code == 0, out
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [set(r) for r in rows] == [{"text", "value", "values"}] * 2
    assert rows[0]["value"] > rows[1]["value"]  # a good text scores above a bad one
    assert rows[0]["values"] == {"score": rows[0]["value"]}


def test_a_head_of_another_task_is_refused(regression, cli, tiny_classifier, data_dir,
                                            tmp_path):
    """A classifier given to a regression run (and the reverse): one line, exit 2."""
    code, out = cli("export", "--task", NAME, "--model", tiny_classifier,
                    "--out", tmp_path / "onnx")
    assert code == 2
    assert "its head is text-classification, not text-regression" in out
    assert not (tmp_path / "onnx").exists()


def test_the_stage_modules_know_no_task_by_name():
    """Stages ask their task; none names one (the toy task above needed no stage edit)."""
    stages = Path(__file__).resolve().parents[2] / "edgetransfer" / "stages"
    for module in stages.glob("*.py"):
        text = module.read_text()
        for name in ("text-classification", "ForSequenceClassification", "SEQ_CLS"):
            assert name not in text, f"{module.name} names {name}"
