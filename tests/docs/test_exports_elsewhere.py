"""docs/exports-elsewhere.md, run: each Python block of the page, on a tiny export of its
task (the block's `folder = ...` pointed at it), and what they give checked against each
other and against the bundle made of the same export."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from codeblocks import blocks, section
from conftest import IMAGE_CLASSES

from edgetransfer import tasks

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "exports-elsewhere.md"


def page_block(marker: str) -> str:
    """The page's one Python block that uses `marker`."""
    found = [b.code for b in blocks(PAGE.read_text(encoding="utf-8"), "python")
             if marker in b.code]
    assert len(found) == 1, marker
    return found[0]


def run_block(code: str, folder: Path, capsys, **paths: Path) -> tuple[dict, str]:
    """Run a block with its folder (and any other "models/..." path it names) replaced;
    its names and what it printed."""
    code, n = re.subn(r'^folder = "[^"]*"', f"folder = {str(folder)!r}", code, flags=re.M)
    assert n == 1, "the block names its export folder as `folder = ...`"
    for old, new in paths.items():
        code = code.replace(old, str(new))
    assert '"models/' not in code
    names: dict = {}
    exec(compile(code, str(PAGE), "exec"), names)
    return names, capsys.readouterr().out


def test_the_table_names_each_task_s_class_and_pipeline():
    table = section(PAGE.read_text(encoding="utf-8"), "Using the exports elsewhere")
    rows = re.findall(r"^\| `([\w-]+)` \| `(\w+)` \| `\"([\w-]+)\"` \|", table, re.M)
    assert rows
    for name, ort_class, pipeline_task in rows:
        task = tasks.get(name)
        assert ort_class == "ORT" + task.model_class.removeprefix("Auto")
        assert pipeline_task == task.name
        import optimum.onnxruntime

        assert hasattr(optimum.onnxruntime, ort_class)


def test_text_classification_in_optimum_a_pipeline_and_onnxruntime_agree_with_the_bundle(
        exported, built, capsys):
    from edgetransfer.bundle.runtime.predict import Predictor

    optimum, printed = run_block(page_block("ORTModelForSequenceClassification"), exported,
                                 capsys)
    text = "turn the kitchen lights off"
    (best,) = optimum["classify"](text)
    assert f"'label': '{best['label']}'" in printed
    plain, printed = run_block(page_block("onnxruntime as ort"), exported, capsys)
    assert printed.strip() == best["label"]

    import torch

    with torch.inference_mode():
        logits = optimum["model"](**optimum["tokenizer"](text, return_tensors="pt")).logits
    np.testing.assert_allclose(logits.numpy(), plain["logits"], atol=1e-5)
    (row,) = Predictor(built).iter_predict([text])
    assert row["label"] == best["label"]
    assert row["score"] == pytest.approx(best["score"], abs=1e-5)


def test_named_entities_in_optimum_and_a_pipeline(tiny_tagger, tmp_path, capsys):
    from edgetransfer.stages import export

    folder = tmp_path / "onnx"
    export.run(export.ExportConfig(model=str(tiny_tagger), out=folder, quantize="none"))
    names, printed = run_block(page_block("ORTModelForTokenClassification"), folder, capsys)
    text = "Anna Berg flew from Paris to Lagos on Monday."
    entities = names["tag"](text)
    assert printed.strip() == str(entities)
    for entity in entities:
        assert entity["entity_group"] in {"PER", "LOC"}
        assert text[entity["start"]:entity["end"]].lower() == entity["word"]


def test_images_in_optimum_and_a_pipeline(image_int8, image_data, capsys):
    picture = image_data / "test" / "circle" / "0.png"
    names, printed = run_block(page_block("ORTModelForImageClassification"), image_int8,
                               capsys, **{"models/shapes/data/test/circle/000.png": picture})
    scores = names["see"](str(picture))
    assert {s["label"] for s in scores} == set(IMAGE_CLASSES)
    assert sum(s["score"] for s in scores) == pytest.approx(1, abs=1e-4)
    assert printed.strip() == str(scores)
