"""A task with two named outputs on one encoder, added by this file alone.

The Task seam's proof for several heads (the multi-task issue builds on it): a text task
whose model answers a class per text (`logits`) and a strength score per text (`strength`)
from one BERT encoder, with a model class, an ONNX description and a distillation loss of
its own, taken through finetune -> distill -> export (fp32, int8) -> verify -> package ->
predict with no stage module or options.py knowing it. The first output is the task's
figure (accuracy, the gates' metric, the runtime's label); both are exported, quantized,
parity-checked, distilled and printed by the bundle.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import random
from pathlib import Path

import numpy as np
import pytest
from conftest import write_jsonl

NAME = "text-strength"
OUTPUTS = ("logits", "strength")
CLASS = "TwoHeadBert"
# a text is positive or negative; its strength is the share of its words of that polarity
POLAR = {"pos": ["great", "superb", "wonderful", "lovely"],
         "neg": ["awful", "terrible", "horrible", "dreadful"]}
FILLER = ["the", "it", "table", "window", "paper", "was"]
SEEN: list[tuple] = []  # what distill_loss was handed, for the test to see


def _rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label, k = rng.choice(list(POLAR)), rng.choice([2, 3, 4])
        words = rng.sample(POLAR[label], k) + rng.sample(FILLER, 5 - k)
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "label": label, "strength": k / 4})
    return rows


@functools.cache
def _model():
    """(the model class, its output record, its OnnxConfig): one encoder, two heads."""
    import torch
    from optimum.exporters.onnx.model_configs import BertOnnxConfig
    from transformers import BertModel, BertPreTrainedModel
    from transformers.utils import ModelOutput

    @dataclasses.dataclass
    class TwoHeadOutput(ModelOutput):  # (fields in Task.outputs' order after the loss)
        loss: torch.Tensor | None = None
        logits: torch.Tensor | None = None
        strength: torch.Tensor | None = None
        hidden_states: tuple | None = None
        attentions: tuple | None = None

    class TwoHeadBert(BertPreTrainedModel):
        def __init__(self, config):
            super().__init__(config)
            self.bert = BertModel(config)
            # under `classifier`, a head module name (modeling/heads.py): loading, --method
            # head and --new-head treat both heads as the head
            self.classifier = torch.nn.ModuleDict({
                "logits": torch.nn.Linear(config.hidden_size, config.num_labels),
                "strength": torch.nn.Linear(config.hidden_size, 1)})
            self.post_init()

        def forward(self, input_ids=None, attention_mask=None, token_type_ids=None,
                    labels=None, strength_labels=None, output_hidden_states=None,
                    output_attentions=None, return_dict=None):
            out = self.bert(input_ids, attention_mask=attention_mask,
                            token_type_ids=token_type_ids,
                            output_hidden_states=output_hidden_states,
                            output_attentions=output_attentions)
            logits = self.classifier["logits"](out.pooler_output)
            strength = self.classifier["strength"](out.pooler_output)
            loss = None
            if labels is not None:
                loss = torch.nn.functional.cross_entropy(logits, labels)
            if strength_labels is not None:
                loss = (0 if loss is None else loss) + torch.nn.functional.mse_loss(
                    strength[:, 0], strength_labels.float())
            return TwoHeadOutput(loss=loss, logits=logits, strength=strength,
                                 hidden_states=out.hidden_states, attentions=out.attentions)

    class TwoHeadOnnxConfig(BertOnnxConfig):
        @property
        def outputs(self):
            return {name: {0: "batch_size"} for name in OUTPUTS}

    return TwoHeadBert, TwoHeadOnnxConfig


def _task():
    """The whole task: a Task built from text-classification's plain functions, with what is
    its own (model, outputs, ONNX description, reader of two targets, loss)."""
    from edgetransfer import inputs
    from edgetransfer.data import labels as class_labels
    from edgetransfer.data.splits import read_splits
    from edgetransfer.tasks import TaskData, text
    from edgetransfer.tasks import text_classification as tc

    model_class, onnx_config = _model()

    def read(opts, model_labels=None):
        raw, specs = read_splits(opts.train, opts.validation, opts.test)
        names = model_labels or sorted(set(raw["train"]["label"]))
        splits = {}
        for name, ds in raw.items():
            text.check_texts(ds, ["text"], specs[name])
            ids = class_labels.encode(ds["label"], specs[name], names,
                                      fixed_by_model=bool(model_labels))
            splits[name] = (text.inputs_of(ds, "text", None).add_column("label", ids)
                            .add_column("strength_labels", [float(v) for v in ds["strength"]]))
        return TaskData(splits=splits, label_names=names,
                        columns={"text": "text", "label": "label", "strength": "strength"},
                        sources=specs)

    def distill_loss(student, teacher, labels, *, alpha, temperature):
        import torch.nn.functional as F

        from edgetransfer.train import losses

        SEEN.append((tuple(student), tuple(teacher), tuple(sorted(labels))))
        loss, parts = losses.combine(student["logits"], labels["labels"], teacher["logits"],
                                     alpha=alpha, temperature=temperature)
        strength = (alpha * F.mse_loss(student["strength"], teacher["strength"])
                    + (1 - alpha) * F.mse_loss(student["strength"][:, 0],
                                               labels["strength_labels"].float()))
        return loss + strength, parts | {"strength": strength}

    # (strengths lie in 0.5..1: int8 moves them by ~0.003 here, a broken head by ~0.5)
    strength_bars = {"fp32": (1e-4, None), "fp16": (5e-2, None), "int8": (0.1, None),
                     "int4": (0.1, None)}
    return dataclasses.replace(
        tc.TASK, name=NAME, summary="a label and a strength for each text",
        model_class=model_class, peft_task_type=None,
        claims=lambda config: CLASS in (config.get("architectures") or []),
        claims_data=lambda columns: False, read=read, read_unlabeled=None,
        prepare=lambda td, tok, opts: text.tokenize(td.splits, td.sources, tok,
                                                    opts.max_length),
        distill_loss=distill_loss, rewrites=frozenset(),
        runtime={"postprocess": "softmax-label"}, inputs=inputs.get("text"),
        outputs=OUTPUTS, onnx_config=lambda config: onnx_config(
            config, task="text-classification"),
        output_parity={"strength": (None, strength_bars)})


@pytest.fixture()
def strength_task():
    from edgetransfer import tasks

    task = tasks.register(_task())
    yield task
    tasks.unregister(NAME)


def _graph_outputs(folder: Path) -> list[str]:
    import onnx

    return [o.name for o in onnx.load(str(folder / "model.onnx")).graph.output]


def _torch_answers(folder: Path, texts: list[str]) -> tuple[list[str], np.ndarray]:
    """(labels, strengths) of a checkpoint of the task, run by PyTorch."""
    import torch
    from transformers import AutoTokenizer

    model = _model()[0].from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    with torch.inference_mode():
        out = model(**tok(texts, padding=True, return_tensors="pt"))
    return ([model.config.id2label[i] for i in out.logits.argmax(-1).tolist()],
            out.strength[:, 0].numpy())


def test_a_two_output_task_runs_every_stage(strength_task, cli, tiny_backbone, tmp_path):
    data = tmp_path / "data"
    for split, n, seed in (("train", 160, 1), ("validation", 40, 2), ("test", 40, 3)):
        write_jsonl(data / f"{split}.jsonl", _rows(n, seed))
    splits = ("--train", data / "train.jsonl", "--validation", data / "validation.jsonl",
              "--test", data / "test.jsonl")

    teacher = tmp_path / "teacher"
    code, out = cli("-q", "finetune", "--task", NAME, "--model", tiny_backbone, *splits,
                    "--out", teacher, "--epochs", "8", "--batch-size", "8", "--lr", "3e-3",
                    "--patience", "0")
    assert code == 0, out
    config = json.loads((teacher / "config.json").read_text())
    assert config["architectures"] == [CLASS] and config["id2label"] == {"0": "neg",
                                                                         "1": "pos"}
    assert json.loads((teacher / "metrics.json").read_text())["test"]["accuracy"] >= 0.9

    student = tmp_path / "student"
    code, out = cli("-q", "distill", "--teacher", teacher, "--student-layers", "1", *splits,
                    "--out", student, "--epochs", "8", "--batch-size", "8", "--lr", "3e-3",
                    "--patience", "0")
    assert code == 0, out
    # distillation handed the loss both heads, of the student and of the teacher, and both
    # gold targets
    assert SEEN and set(SEEN) == {(OUTPUTS, OUTPUTS, ("labels", "strength_labels"))}
    assert json.loads((student / "config.json").read_text())["num_hidden_layers"] == 1
    assert json.loads((student / "metrics.json").read_text())["test"]["accuracy"] >= 0.8

    onnx = {}
    for mode in ("none", "int8-dynamic"):
        onnx[mode] = tmp_path / f"onnx-{mode}"
        code, out = cli("-q", "export", "--model", student, "--out", onnx[mode], "--quantize",
                        mode, "--eval-data", data / "test.jsonl", "--max-accuracy-drop", "10")
        assert code == 0, out
        assert _graph_outputs(onnx[mode]) == list(OUTPUTS)  # both heads in the graph
        record = json.loads((onnx[mode] / "export.json").read_text())
        assert record["task"] == NAME and record["accuracy"] >= 0.8
        assert set(record["parity"]["final"]["outputs"]) == set(OUTPUTS)
        assert {g["output"] for g in record["gates"] if g["gate"].startswith("parity")} == set(
            OUTPUTS)
    strength_gate = json.loads((onnx["int8-dynamic"] / "export.json").read_text())[
        "parity"]["final"]["outputs"]["strength"]
    # the strength head is judged by its own bar (a distance: it has no class to agree on)
    assert strength_gate["top1_agreement"] is None and strength_gate["atol"] == 0.1

    report = tmp_path / "verify.json"
    code, out = cli("verify", "--reference", student, "--candidate",
                    f"int8={onnx['int8-dynamic']}", "--data", data / "test.jsonl", "--out",
                    report, "--no-latency", "--max-accuracy-drop", "10")
    assert code == 0, out
    verified = json.loads(report.read_text())
    assert verified["task"] == NAME and verified["passed"]
    assert set(verified["candidates"][0]["parity"]["outputs"]) == set(OUTPUTS)

    bundle = tmp_path / "bundle"
    code, out = cli("-q", "package", "--model", onnx["int8-dynamic"], "--verify-report",
                    report, "--out", bundle, "--no-measure")
    assert code == 0, out
    spec = json.loads((bundle / "input_spec.json").read_text())
    assert spec["output"] == "logits" and spec["also"] == ["strength"]

    texts = ["great superb wonderful the", "awful the it table", "lovely it table paper"]
    code, out = cli("predict", "--bundle", tmp_path / "bundle.tar.gz", *texts)
    assert code == 0, out
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [set(r) for r in rows] == [{"text", "label", "score", "scores", "outputs"}] * 3
    labels, strengths = _torch_answers(student, texts)
    # the bundle's label is the primary head's, its strength the second head's: the int8
    # model's answers against the PyTorch student's
    assert [r["label"] for r in rows] == labels == ["pos", "neg", "pos"]
    printed = np.array([r["outputs"]["strength"] for r in rows])
    assert np.abs(printed - strengths).max() < 0.1


def test_no_stage_and_no_option_knows_the_task():
    """Adding the task above needed no edit where the stages and options live: none of them
    names it, its model class or its outputs beyond the first."""
    package = Path(__file__).resolve().parents[1] / "edgetransfer"
    files = sorted((package / "stages").glob("*.py")) + [package / "options.py"]
    for module in files:
        source = module.read_text()
        for word in (NAME, CLASS, "strength", "TwoHead"):
            assert word not in source, f"{module.name} names {word}"


@pytest.mark.parametrize("also, postprocess, says", [
    ("strength", "softmax-label", "also: expected a list of output names besides 'logits'"),
    (["logits"], "softmax-label", "also: expected a list of output names besides 'logits'"),
    (["strength"], "entities", "further outputs print beside softmax-label, values only"),
])
def test_the_runtime_refuses_further_outputs_it_cannot_print(also, postprocess, says):
    """input_spec.json "also" (a hand-edited or hostile bundle): one line, not a traceback."""
    from edgetransfer.bundle.runtime.predict import BundleError, check_spec

    spec = {"model": "model.onnx", "labels": "labels.json", "output": "logits", "also": also,
            "inputs": [{"name": "input_ids", "type": "tensor(int64)"}], "threads": 1,
            "tokenizer": "tokenizer.json", "max_length": 16, "pad_token": "[PAD]",
            "pad_id": 0, "pad_type_id": 0, "task": {"postprocess": postprocess}}
    with pytest.raises(BundleError, match=says.replace("(", r"\(")):
        check_spec(spec)
    assert check_spec(spec | {"also": ["strength"], "task": {"postprocess": "values"}})
