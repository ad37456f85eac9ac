"""The floor under every model (edgetransfer/measure/floor.py): a model at chance after
training is warned about with its likely cause, recorded as degenerate, and refused by
export, verify and package unless --allow-degenerate; a real model is not flagged. Per task,
on the tiny models of conftest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import image_args, make_sentences, tiny_args, token_args, write_conll, write_jsonl
from PIL import Image

from edgetransfer.measure import floor

NAMES = ["neg", "pos"]


def verdict(labels, predictions, names=NAMES) -> dict:
    return floor.judge(floor.classes(labels, predictions, names))


# --- the rule ----------------------------------------------------------------------------------

def test_one_class_for_everything_is_degenerate_when_it_cannot_be_luck():
    balanced = [0] * 15 + [1] * 15
    v = verdict(balanced, [1] * 30)
    assert v["verdict"] == "degenerate" and v["single_class"] == "pos"
    assert "predicts 'pos' for every one of its rows" in v["why"]
    # three rows all called "pos" are no evidence: a model predicting as often as the labels
    # does that 1/4 of the time
    assert verdict([0, 1, 1], [1, 1, 1])["verdict"] == "unclear"


def test_chance_accuracy_on_many_rows_is_degenerate_and_on_few_only_unclear():
    rng = np.random.default_rng(0)
    y, coin = rng.integers(0, 2, 872), rng.integers(0, 2, 872)
    v = verdict(y, coin)  # a coin on SST-2's 872 validation rows
    assert v["verdict"] == "degenerate" and v["interval"][1] < v["bar"]
    assert v["baseline"]["model"] in ("always 'neg'", "always 'pos'")
    # a coin's luck on 20 balanced rows (8 right): 20 rows cannot tell it from a model
    few = verdict([0, 1] * 10, [0, 1] * 4 + [1, 0] * 6)
    assert few["verdict"] == "unclear" and few["interval"][1] >= few["bar"]


def test_a_real_model_on_a_small_validation_set_is_not_condemned():
    y = np.array([0] * 15 + [1] * 15)
    good = y.copy()
    good[[0, 20]] = 1 - good[[0, 20]]  # 28 of 30
    assert verdict(y, good)["verdict"] == "ok"
    modest = y.copy()
    modest[:9] = 1  # 21 of 30 = 0.70: above the majority's 0.5, but 30 rows cannot prove it
    v = verdict(y, modest)
    assert v["verdict"] == "unclear" and "give more --validation rows" in v["why"]


def test_the_bar_follows_the_label_distribution():
    y = [0] * 27 + [1] * 3  # 90% one class: always 'neg' scores 0.9
    v = verdict(y, [0] * 25 + [1] * 2 + [1] * 3)
    assert v["baseline"]["value"] == 0.9 and v["bar"] == pytest.approx(0.91)


def test_entity_f1_interval_bounds_what_precision_and_recall_allow():
    lo, hi = floor.f1_interval(0, 400, 120)  # many entities predicted, none right
    assert lo == 0 and hi < floor.LIFT
    lo, hi = floor.f1_interval(90, 110, 120)
    assert 0.6 < lo < 2 * 90 / 230 < hi < 1


def test_causes_come_from_the_run_s_own_figures():
    few = floor.causes(steps=17, examples=270, epochs=1, batch_size=16, lr=1e-4,
                       losses=(2.1, 1.9))
    assert len(few) == 1 and "17 optimizer steps" in few[0] and "--epochs" in few[0]
    assert "--lr" in few[0]
    rose = floor.causes(steps=500, examples=8000, epochs=1, batch_size=16, lr=1e-2,
                        losses=(0.7, 3.0))
    assert "rose" in rose[0] and "lower --lr" in rose[0]
    head = floor.causes(steps=500, examples=8000, epochs=1, batch_size=16, lr=3e-3,
                        losses=(0.7, 0.2), method="head")
    assert "--method full" in head[0] and "validation did not follow" in head[1]


# --- per task: warned, recorded, refused downstream, let through with the flag ------------------

def _trained(cli, args: list, out: Path) -> tuple[dict, str]:
    code, log = cli(*[a for a in args if a != "-q"])
    assert code == 0, log
    metrics = json.loads((out / "metrics.json").read_text())
    manifest = json.loads((out / "artifact.json").read_text())
    assert manifest["metrics"]["floor"] == metrics["floor"]
    return metrics["floor"], log


def _refused(cli, out: str, *args) -> None:
    code, said = cli(*args)
    lines = [line for line in said.splitlines() if line.strip()]
    assert code == 2, said
    assert "a degenerate model" in lines[-1] and "--allow-degenerate" in lines[-1]
    assert out in lines[-1] and "Traceback" not in said


def _check_degenerate(cli, tmp_path, model: Path, floor_record: dict, log: str,
                      export_extra=()):
    assert floor_record["verdict"] == "degenerate", floor_record
    assert "a degenerate model" in log and "likely cause" in log and "--epochs" in log
    assert floor_record["causes"] and "optimizer steps" in floor_record["causes"][0]
    onnx = tmp_path / "onnx"
    _refused(cli, str(model), "-q", "export", "--model", model, "--out", onnx,
             "--quantize", "none", *export_extra)
    assert not onnx.exists()
    code, said = cli("-q", "export", "--model", model, "--out", onnx, "--quantize", "none",
                     "--allow-degenerate", *export_extra)
    assert code == 0, said
    carried = json.loads((onnx / "artifact.json").read_text())["metrics"]["floor"]
    assert carried["verdict"] == "degenerate"
    _refused(cli, str(onnx), "-q", "package", "--model", onnx, "--out", tmp_path / "bundle",
             "--unverified", "--no-measure", "--no-check-target")
    assert not (tmp_path / "bundle").exists()
    code, said = cli("-q", "package", "--model", onnx, "--out", tmp_path / "bundle",
                     "--unverified", "--no-measure", "--no-check-target",
                     "--allow-degenerate")
    assert code == 0, said
    # the bundle says what it carries: the verdict, and that it was let through
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert manifest["model"]["floor"]["verdict"] == "degenerate"
    assert manifest["settings"]["allow_degenerate"] is True
    return onnx


def test_text_classification_at_chance_is_refused_downstream(cli, tmp_path, tiny_backbone,
                                                             data_dir):
    out = tmp_path / "model"
    # validation texts alike (filler words only): whatever it learnt, a model answers them
    # all with one class, and with 24 rows of three classes that is no luck
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text((data_dir / "train.jsonl").read_text())
    write_jsonl(data / "validation.jsonl", [{"text": "it was so", "label": label}
                                            for label in ("neg", "neu", "pos") * 8])
    # the story too: a learning rate far too small for the steps run
    args = tiny_args(tiny_backbone, data, out, "--epochs", "1") + ["--lr", "1e-7"]
    record, log = _trained(cli, args, out)
    onnx = _check_degenerate(cli, tmp_path, out, record, log)
    verify = ["-q", "verify", "--reference", out, "--candidate", onnx, "--data",
              data_dir / "test.jsonl", "--no-latency", "--out", tmp_path / "verify.json"]
    _refused(cli, str(out), *verify)
    assert not (tmp_path / "verify.json").exists()
    code, said = cli(*verify, "--allow-degenerate")
    assert code == 0, said
    # distilled, its student is judged the same way, and the teacher named as the cause
    student = tmp_path / "student"
    code, said = cli("distill", "--teacher", out, "--train", data / "train.jsonl",
                     "--validation", data / "validation.jsonl", "--student-layers", "1",
                     "--epochs", "1", "--batch-size", "4", "--lr", "1e-7", "--out", student)
    assert code == 0, said
    assert f"--teacher {out}: a degenerate model" in said
    record = json.loads((student / "metrics.json").read_text())["floor"]
    assert record["verdict"] == "degenerate"
    assert record["causes"][0].startswith("the teacher is itself degenerate")
    assert json.loads((student / "artifact.json").read_text())["metrics"]["floor"] == record


def test_a_real_text_classifier_is_not_flagged(cli, tmp_path, tiny_backbone, data_dir):
    out = tmp_path / "model"
    record, log = _trained(cli, tiny_args(tiny_backbone, data_dir, out), out)
    assert record["verdict"] == "ok", record
    assert "degenerate" not in log
    code, said = cli("-q", "export", "--model", out, "--out", tmp_path / "onnx", "--quantize",
                     "none")
    assert code == 0, said
    assert json.loads((tmp_path / "onnx/artifact.json").read_text())["metrics"]["floor"][
        "verdict"] == "ok"


def test_named_entities_at_chance_are_refused_downstream(cli, tmp_path, tiny_backbone,
                                                         token_data):
    out = tmp_path / "tagger"
    # 60 validation sentences (120 entities): enough to tell an untrained tagger from one
    data = tmp_path / "conll"
    (data / "train.txt").parent.mkdir()
    (data / "train.txt").write_text((token_data / "train.txt").read_text())
    write_conll(data / "validation.txt", make_sentences(60, seed=7))
    args = token_args(tiny_backbone, data, out, "--epochs", "1") + ["--lr", "1e-7"]
    record, log = _trained(cli, args, out)
    assert record["metric"] == "entity_f1" and record["baseline"]["value"] == 0
    _check_degenerate(cli, tmp_path, out, record, log)


def test_a_real_tagger_is_not_flagged(tiny_tagger):
    record = json.loads((tiny_tagger / "metrics.json").read_text())["floor"]
    assert record["verdict"] == "ok" and record["metric"] == "entity_f1", record


def test_images_at_chance_are_refused_downstream(cli, tmp_path, tiny_effnet, image_data):
    out = tmp_path / "images"
    # validation images alike (one grey picture under each class): one answer for all 16
    data = tmp_path / "pictures"
    shutil.copytree(image_data, data)
    for image in (data / "validation").glob("*/*.png"):
        Image.new("L", (40, 40), 30).save(image)
    args = image_args(tiny_effnet, data, out, "--epochs", "1") + ["--lr", "1e-7"]
    record, log = _trained(cli, args, out)
    _check_degenerate(cli, tmp_path, out, record, log)


def test_a_real_image_classifier_is_not_flagged(image_teacher):
    record = json.loads((image_teacher / "metrics.json").read_text())["floor"]
    # (8 validation images: all right is "ok"; one wrong is more than 8 images can prove)
    assert record["verdict"] in ("ok", "unclear"), record


def test_recipes_take_the_flag_in_each_refusing_step():
    from edgetransfer import recipe, registry

    for step in ("export", "verify", "package"):
        section = recipe.section(registry.get(step))
        assert section(allow_degenerate=True).allow_degenerate is True, step
    assert "allow_degenerate" not in recipe.section(registry.get("finetune")).model_fields


def test_under_run_the_refusal_names_the_recipe_key(tmp_path):
    """A recipe's step that refuses a degenerate model says which recipe key lets it
    through, not the command line's flag."""
    from edgetransfer import pipeline, registry
    from edgetransfer.measure.floor import DegenerateModel, check

    model = tmp_path / "onnx"
    model.mkdir()
    (model / "artifact.json").write_text(json.dumps({"metrics": {"floor": {
        "verdict": "degenerate", "why": "accuracy 0.33 at chance"}}}))
    recipe_file = tmp_path / "r.yaml"
    with pytest.raises(DegenerateModel) as refused:
        with pipeline._recipe_names(registry.get("package"), recipe_file):
            check(model, False, "package")
    said = str(refused.value)
    assert f"set package.allow_degenerate: true in {recipe_file}" in said, said
    assert "--allow-degenerate" not in said
    with pytest.raises(DegenerateModel) as refused:  # (the command line keeps its flag)
        check(model, False, "package")
    assert "pass --allow-degenerate" in str(refused.value)
