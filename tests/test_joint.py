"""A joint model (task multi-task): one encoder, an intent head and a slot head, through
every stage on a tiny random BERT, and the bad inputs that stop it before any work."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import BLOCK_TORCH, char_student, predictions, write_jsonl
from joint_data import rows

HEADS = ("--task", "multi-task", "--head", "intent=text-classification",
         "--head", "slots=token-classification")
TRAIN = ("--epochs", "6", "--batch-size", "8", "--lr", "3e-3", "--patience", "0")
TEXTS = ["play some abba now", "weather in paris", "book a table at zuni"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("snips-like")
    for split, n, seed in (("train", 120, 1), ("validation", 30, 2), ("test", 30, 3)):
        write_jsonl(folder / f"{split}.jsonl", rows(n, seed))
    return folder


def _splits(data: Path) -> tuple:
    return ("--train", data / "train.jsonl", "--validation", data / "validation.jsonl",
            "--test", data / "test.jsonl")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_backbone, data):
    """(teacher, 1-layer student) of the joint task."""
    from edgetransfer.cli import main

    def run(*args):
        try:
            main([str(a) for a in args])
        except SystemExit as e:
            assert not e.code, e.code
    root = tmp_path_factory.mktemp("joint")
    run("-q", "finetune", *HEADS, "--model", tiny_backbone, *_splits(data), "--out",
        root / "teacher", *TRAIN)
    run("-q", "distill", "--teacher", root / "teacher", "--student-layers", "1",
        *_splits(data), "--out", root / "student", *TRAIN)
    return root / "teacher", root / "student"


def test_two_heads_train_and_each_is_scored(trained):
    teacher, student = trained
    config = json.loads((teacher / "config.json").read_text())
    assert config["architectures"] == ["BertJointModel"]
    assert [h["name"] for h in config["task_heads"]] == ["intent", "slots"]
    assert config["task_heads"][0]["labels"] == ["BookRestaurant", "GetWeather", "PlayMusic"]
    assert config["task_heads"][1]["labels"][0] == "O"
    test = json.loads((teacher / "metrics.json").read_text())["test"]
    # every head's figures, the combined one (their mean) and the sentence exact match
    assert test["intent_accuracy"] >= 0.9 and test["slots_entity_f1"] >= 0.9
    assert test["combined"] == pytest.approx((test["intent_accuracy"]
                                              + test["slots_entity_f1"]) / 2)
    assert 0 < test["exact_match"] <= min(test["intent_accuracy"], test["slots_entity_f1"])
    assert set(test["heads"]) == {"intent", "slots"}
    assert test["heads"]["slots"]["per_type"]["city"]["support"] > 0
    student_metrics = json.loads((student / "metrics.json").read_text())
    assert json.loads((student / "config.json").read_text())["num_hidden_layers"] == 1
    assert student_metrics["test"]["combined"] >= 0.85


def test_every_stage_after_training_keeps_both_heads(trained, data, cli, tmp_path):
    import onnx

    _, student = trained
    onnx_dir = tmp_path / "int8"
    code, out = cli("-q", "export", "--model", student, "--out", onnx_dir, "--quantize",
                    "int8-dynamic", "--eval-data", data / "test.jsonl",
                    "--max-accuracy-drop", "10")
    assert code == 0, out
    graph = onnx.load(str(onnx_dir / "model.onnx")).graph
    assert [o.name for o in graph.output] == ["intent", "slots"]
    record = json.loads((onnx_dir / "export.json").read_text())
    gates = {(g["gate"], g.get("output")) for g in record["gates"]}
    # parity per head, and the accuracy gate on each head beside the combined figure
    assert {("parity final", "intent"), ("parity final", "slots")} <= gates
    assert {("combined", None), ("intent_accuracy", None), ("slots_entity_f1", None)} <= gates

    report = tmp_path / "verify.json"
    code, out = cli("verify", "--reference", student, "--candidate", f"int8={onnx_dir}",
                    "--data", data / "test.jsonl", "--out", report, "--no-latency",
                    "--max-accuracy-drop", "10")
    assert code == 0, out
    verified = json.loads(report.read_text())
    assert verified["gated"] == ["intent_accuracy", "slots_entity_f1"]
    drops = verified["candidates"][0]["accuracy_drop"]
    for key in ("combined", "intent_accuracy", "slots_entity_f1"):
        assert set(drops[key]) >= {"points", "ci95"}
    assert set(verified["candidates"][0]["parity"]["outputs"]) == {"intent", "slots"}
    assert "intent-accuracy" in out and "slots-entity-f1" in out

    code, out = cli("-q", "package", "--model", onnx_dir, "--verify-report", report, "--out",
                    tmp_path / "bundle", "--no-measure")
    assert code == 0, out
    spec = json.loads((tmp_path / "bundle" / "input_spec.json").read_text())
    assert spec["task"]["heads"] == [{"name": "intent", "postprocess": "softmax-label"},
                                     {"name": "slots", "postprocess": "entities"}]
    assert "Heads (one call answers each): intent" in (tmp_path / "bundle/README.md").read_text()

    code, out = cli("predict", "--bundle", tmp_path / "bundle.tar.gz", *TEXTS)
    assert code == 0, out
    got = predictions(out)
    assert [set(r) for r in got] == [{"text", "intent", "slots"}] * 3
    assert [r["intent"]["label"] for r in got] == ["PlayMusic", "GetWeather",
                                                   "BookRestaurant"]
    assert [[s["type"] for s in r["slots"]] for r in got] == [["artist"], ["city"],
                                                              ["restaurant"]]
    for r in got:  # each slot's offsets give its text exactly
        assert all(r["text"][s["start"]:s["end"]] == s["text"] for s in r["slots"])
        assert 0 < r["intent"]["score"] <= 1

    # the same answers from the bundle alone, torch and transformers unimportable
    proc = subprocess.run([sys.executable, "-I", "-c", BLOCK_TORCH, *TEXTS],
                          cwd=tmp_path / "bundle", capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert predictions(proc.stdout) == got


def test_a_row_without_a_heads_label_adds_nothing_to_its_loss(tiny_backbone):
    """The model's loss over a batch where one row lacks its intent equals the loss over
    the rows that have it (the intent head's part), and the slot head's part is unchanged."""
    import torch

    from edgetransfer.tasks.joint import compose
    from edgetransfer.tasks.joint.heads import Head
    from edgetransfer.tasks.joint.model import JointModel

    task = compose([Head("intent", "text-classification"),
                    Head("slots", "token-classification", weight=0.0)])
    names = ["intent:a", "intent:b", "slots:O", "slots:B-x"]
    torch.manual_seed(0)
    model = JointModel.from_pretrained(tiny_backbone, **task.head_config(names)).eval()
    ids = torch.tensor([[101, 2054, 2003, 102], [101, 2129, 2024, 102], [101, 7592, 2088, 102]])
    gold = torch.tensor([1, -100, 0])
    with torch.no_grad():
        out = model(input_ids=ids, labels={"intent": gold})
        kept = torch.tensor([0, 2])
        only = torch.nn.functional.cross_entropy(out.intent[kept], gold[kept])
    assert out.loss.item() == pytest.approx(only.item(), rel=1e-6)
    with torch.no_grad():  # a batch with no intent label at all: a zero loss, not NaN
        none = model(input_ids=ids, labels={"intent": torch.full((3,), -100)})
    assert none.loss.item() == 0.0


def test_rows_lacking_a_label_are_masked_and_still_train(tiny_backbone, tmp_path, cli):
    train = rows(120, 1)
    for r in train[::3]:
        r["intent"] = None  # a third of the rows: slots only
    for r in train[1::5]:
        r.pop("slots")  # some: intent only
    write_jsonl(tmp_path / "train.jsonl", train)
    write_jsonl(tmp_path / "validation.jsonl", rows(30, 2))
    code, out = cli("finetune", *HEADS, "--model", tiny_backbone, "--train",
                    tmp_path / "train.jsonl", "--validation", tmp_path / "validation.jsonl",
                    "--out", tmp_path / "m", *TRAIN)
    assert code == 0, out
    assert "head intent: 40 train row(s) have no label; they are masked out of its loss" in out
    report = json.loads((tmp_path / "m" / "metrics.json").read_text())["validation"]
    assert report["intent_accuracy"] >= 0.9 and report["slots_entity_f1"] >= 0.9


def test_lora_trains_both_heads(tiny_backbone, data, cli, tmp_path):
    code, out = cli("-q", "finetune", *HEADS, "--model", tiny_backbone, *_splits(data),
                    "--out", tmp_path / "m", "--method", "lora", "--epochs", "1",
                    "--batch-size", "8", "--patience", "0")
    assert code == 0, out
    from safetensors.numpy import load_file

    weights = load_file(str(tmp_path / "m" / "model.safetensors"))
    # the heads are saved whole (peft's modules_to_save), not as adapters, after merging
    assert {"classifier.intent.weight", "classifier.slots.weight"} <= set(weights)
    assert not any("lora" in k for k in weights)


@pytest.mark.parametrize("args, says", [
    (("--head", "intent=text-classification", "--head", "intent=token-classification:slots"),
     "--head: the head name 'intent' is used twice; give each head its own name"),
    (("--head", "intent=image-magic"),
     "--head intent=image-magic: kind 'image-magic' is not a task that can be a head; the "
     "kinds are text-classification, token-classification"),
    (("--head", "intent"), "--head intent: write NAME=KIND[:COLUMN[:WEIGHT]]"),
    (("--head", "Intent=text-classification"), "head name 'Intent' must be lower-case"),
    (("--head", "text=text-classification"), "head name 'text' is reserved"),
    (("--head", "intent=text-classification:intent:heavy"), "weight 'heavy' is not a number"),
    (("--head", "intent=text-classification:mood"),
     "no column 'mood' for the head 'intent'"),
])
def test_bad_heads_are_one_line_and_write_nothing(args, says, tiny_backbone, data, cli,
                                                   tmp_path):
    out_dir = tmp_path / "m"
    code, out = cli("finetune", "--task", "multi-task", *args, "--head",
                    "slots=token-classification", "--model", tiny_backbone, *_splits(data),
                    "--out", out_dir)
    assert code == 2, out
    assert says in out and "Traceback" not in out
    assert len(out.strip().splitlines()) == 1
    assert not out_dir.exists()


@pytest.mark.parametrize("change, says", [
    (lambda rs: [r | {"intent": None} for r in rs],
     "the column 'intent' (head 'intent') is empty in every row"),
    (lambda rs: rs[:4] + [rs[4] | {"slots": rs[4]["slots"][:-1]}] + rs[5:],
     "line 5: {n} words but {m} slots tags; give one tag per word"),
])
def test_bad_data_is_one_line_naming_the_row(change, says, tiny_backbone, data, cli,
                                             tmp_path):
    train = change(rows(40, 1))
    n = len(train[4]["tokens"])
    write_jsonl(tmp_path / "train.jsonl", train)
    code, out = cli("finetune", *HEADS, "--model", tiny_backbone, "--train",
                    tmp_path / "train.jsonl", "--out", tmp_path / "m")
    assert code == 2, out
    assert says.format(n=n, m=n - 1) in out and "Traceback" not in out
    assert not (tmp_path / "m").exists()


def test_an_intent_training_never_saw_is_refused_at_evaluation(trained, cli, tmp_path):
    _, student = trained
    test = rows(10, 9)
    test[3] = test[3] | {"intent": "SetAlarm"}
    write_jsonl(tmp_path / "test.jsonl", test)
    code, out = cli("export", "--model", student, "--out", tmp_path / "int8", "--eval-data",
                    tmp_path / "test.jsonl")
    assert code == 2, out
    assert ("line 4: intent label 'SetAlarm' is not one of the 3 the head knows "
            "(BookRestaurant, GetWeather, PlayMusic); the model has these" in out)
    assert not (tmp_path / "int8").exists()
    code, out = cli("verify", "--reference", student, "--candidate", f"again={student}",
                    "--data", tmp_path / "test.jsonl",
                    "--out", tmp_path / "v.json", "--no-latency")
    assert code == 2 and "'SetAlarm' is not one of the 3" in out
    assert not (tmp_path / "v.json").exists()


def test_the_runtime_refuses_a_joint_spec_it_cannot_read():
    from edgetransfer.bundle.runtime.predict import BundleError, check_spec

    spec = {"model": "model.onnx", "labels": "labels.json", "output": "intent",
            "also": ["slots"], "inputs": [{"name": "input_ids", "type": "tensor(int64)"}],
            "threads": 1, "tokenizer": "tokenizer.json", "max_length": 16,
            "pad_token": "[PAD]", "pad_id": 0, "pad_type_id": 0,
            "task": {"postprocess": "heads",
                     "heads": [{"name": "intent", "postprocess": "softmax-label"},
                               {"name": "slots", "postprocess": "entities"}]}}
    assert check_spec(json.loads(json.dumps(spec)))
    for heads, says in (([{"name": "slots", "postprocess": "entities"},
                          {"name": "intent", "postprocess": "softmax-label"}],
                         "their names must be the outputs in order"),
                        ([{"name": "intent", "postprocess": "exec"},
                          {"name": "slots", "postprocess": "entities"}],
                         "postprocess softmax-label or entities")):
        with pytest.raises(BundleError, match=says):
            check_spec(json.loads(json.dumps(spec)) | {"task": {"postprocess": "heads",
                                                                 "heads": heads}})


def test_the_runtime_reads_labels_by_head():
    from edgetransfer.bundle.runtime.predict import BundleError, head_labels

    task = {"postprocess": "heads", "heads": [{"name": "a"}, {"name": "b"}]}
    assert head_labels(["a:x", "a:y", "b:O", "b:B-t"], task, "labels.json") == {
        "a": ["x", "y"], "b": ["O", "B-t"]}
    with pytest.raises(BundleError, match="label 'c:z' names no head"):
        head_labels(["a:x", "c:z", "b:O"], task, "labels.json")
    with pytest.raises(BundleError, match="no labels for the head 'b'"):
        head_labels(["a:x"], task, "labels.json")


def test_a_recipe_names_its_heads(tmp_path):
    from edgetransfer.errors import ConfigError
    from edgetransfer.recipe import load

    base = ("name: j\ntask: multi-task\nmodel: minilm-l6\ndata: {train: t.jsonl}\n"
            "finetune: {epochs: 1}\n")
    good = tmp_path / "good.yaml"
    good.write_text(base + "tasks:\n  intent: {kind: text-classification}\n"
                    "  slots: {kind: token-classification, label_column: slots, weight: 2}\n")
    assert load(good)[0].tasks["slots"]["weight"] == 2
    for body, says in (("", "task: multi-task needs a tasks: section"),
                       ("tasks:\n  intent: {kind: nope}\n", "kind 'nope' is not a task"),
                       ("tasks:\n  intent: {kind: text-classification, colour: red}\n",
                        "unknown key 'colour'")):
        bad = tmp_path / "bad.yaml"
        bad.write_text(base + body)
        with pytest.raises(ConfigError, match=says):
            load(bad)


def test_the_snips_recipe_plans_a_joint_teacher():
    from edgetransfer import pipeline
    from edgetransfer.recipe import load

    path = Path(__file__).resolve().parents[1] / "recipes/snips.yaml"
    recipe, _ = load(path)
    steps = pipeline.plan(recipe, path, Path("/tmp/never-written"))
    assert steps[0].config.head == ["intent=text-classification:intent:1",
                               "slots=token-classification:slots:1"]


def test_per_example_takes_windows_back_to_examples():
    """A long sentence's windows: the sentence head answers from its first window, the word
    head from each word's own window."""
    from edgetransfer.tasks.joint import compose
    from edgetransfer.tasks.joint.heads import Head

    task = compose([Head("intent", "text-classification"),
                    Head("slots", "token-classification")])
    index = {"word_index": [[-1, 0, 1, -1], [-1, 2, -1, -1], [-1, 0, -1, -1]],
             "example": [0, 0, 1]}
    intent = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    slots = np.arange(3 * 4 * 2, dtype=float).reshape(3, 4, 2)
    got = task.per_example({"intent": intent, "slots": slots}, index)
    assert len(got) == 2
    assert got[0]["intent"].tolist() == [1.0, 0.0]  # the first window's
    assert got[0]["slots"].tolist() == [slots[0, 1].tolist(), slots[0, 2].tolist(),
                                        slots[1, 1].tolist()]
    assert [p["intent"] for p in task.predictions(got)] == [0, 0]


def test_a_head_may_learn_from_its_own_file_mixed_by_temperature(tiny_backbone, tmp_path,
                                                                 cli):
    """Several datasets, one per head: intents as text (no slots), slots as words (no
    intent); drawn by temperature, the smaller file is drawn again to even them out."""
    train = rows(100, 1)
    write_jsonl(tmp_path / "intents.jsonl", [{"text": " ".join(r["tokens"]),
                                             "intent": r["intent"]} for r in train])
    write_jsonl(tmp_path / "slots.jsonl", [{"tokens": r["tokens"], "slots": r["slots"]}
                                           for r in train[:30]])
    write_jsonl(tmp_path / "validation.jsonl", rows(30, 2))
    code, out = cli("finetune", *HEADS, "--head-data", f"slots:train={tmp_path / 'slots.jsonl'}",
                    "--sampling", "temperature", "--model", tiny_backbone, "--train",
                    tmp_path / "intents.jsonl", "--validation", tmp_path / "validation.jsonl",
                    "--out", tmp_path / "m", *TRAIN)
    assert code == 0, out
    # shares n^(1/2): 100 -> 10, 30 -> 5.5 of 130 rows: 84 and 46
    assert (f"intents.jsonl 84 of 100 rows, {tmp_path / 'slots.jsonl'} 46 of 30 rows"
            in out)
    assert "head intent: 46 train row(s) have no label" in out
    report = json.loads((tmp_path / "m" / "metrics.json").read_text())["validation"]
    assert report["intent_accuracy"] >= 0.9 and report["slots_entity_f1"] >= 0.9
    code, out = cli("finetune", *HEADS, "--head-data", "moods:train=x.jsonl", "--model",
                    tiny_backbone, "--train", tmp_path / "intents.jsonl", "--out",
                    tmp_path / "n")
    assert code == 2 and "--head-data moods:train=x.jsonl: no head 'moods'" in out


def test_a_static_int8_export_gates_each_head(trained, data, cli, tmp_path):
    import onnx

    _, student = trained
    code, out = cli("-q", "export", "--model", student, "--out", tmp_path / "s", "--quantize",
                    "int8-static", "--calibration-data", data / "train.jsonl", "--eval-data",
                    data / "test.jsonl", "--max-accuracy-drop", "10")
    assert code == 0, out
    graph = onnx.load(str(tmp_path / "s" / "model.onnx")).graph
    assert [o.name for o in graph.output] == ["intent", "slots"]
    assert any(n.op_type == "QuantizeLinear" for n in graph.node)
    gates = json.loads((tmp_path / "s" / "export.json").read_text())["gates"]
    assert {g["output"] for g in gates if g["gate"] == "parity final"} == {"intent", "slots"}


def test_a_joint_student_with_another_tokenizer_is_refused(trained, data, cli, tmp_path):
    teacher, _ = trained
    code, err = cli("-q", "distill", "--teacher", teacher, "--student",
                    char_student(tmp_path / "chars"), *_splits(data), "--out", tmp_path / "s")
    assert code == 2, err
    assert "its tokenizer differs from the teacher's, and multi-task distils " \
        "only between models that tokenize alike" in err
    assert not (tmp_path / "s").exists()
