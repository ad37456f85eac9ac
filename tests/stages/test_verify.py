"""verify on tiny random models: each gate passes and fails on constructed cases; the
provider check; the baseline round trip and malformed baselines; the JSON output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import make_classifier, make_rows, write_jsonl

FAST = ["--iterations", "20", "--rounds", "2", "--latency-samples", "8", "--batch-sizes", "1,4"]


@pytest.fixture(scope="module")
def models(tiny_backbone, tmp_path_factory):
    """A reference checkpoint, another checkpoint, the reference's fp32 ONNX export, and
    eval data labelled with the reference's own predictions (so it scores 1.0)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from edgetransfer.cli import main

    root = tmp_path_factory.mktemp("verify")
    ref = make_classifier(tiny_backbone, root / "reference", seed=1)
    other = make_classifier(tiny_backbone, root / "other", seed=7)
    try:
        main(["-q", "export", "--model", str(ref), "--quantize", "none",
              "--out", str(root / "onnx")])
    except SystemExit as e:
        assert e.code in (0, None)
    rows = make_rows(40, seed=5)
    tok = AutoTokenizer.from_pretrained(ref)
    model = AutoModelForSequenceClassification.from_pretrained(ref).eval()
    with torch.inference_mode():
        logits = model(**tok([r["text"] for r in rows], padding=True, return_tensors="pt")).logits
    names = ["neg", "neu", "pos"]
    for r, p in zip(rows, logits.argmax(-1).tolist()):
        r["label"] = names[p]
    data = write_jsonl(root / "eval.jsonl", rows)
    return {"ref": ref, "other": other, "onnx": root / "onnx", "data": data, "root": root}


def _verify(cli, models, tmp_path, *extra):
    out = tmp_path / "verify.json"
    code, text = cli("-q", "verify", "--reference", models["ref"], "--data", models["data"],
                     "--out", out, *extra)
    report = json.loads(out.read_text()) if out.exists() else None
    return code, text, report


def test_all_gates_pass_and_every_figure_is_recorded(cli, models, tmp_path):
    code, text, report = _verify(cli, models, tmp_path, "--candidate", models["onnx"],
                                 "--candidate", f"twin={models['ref']}", *FAST)
    assert code == 0, text
    assert report["passed"] and report["failures"] == []
    assert [c["name"] for c in report["candidates"]] == ["onnx", "twin"]
    onnx, twin = report["candidates"]
    assert report["reference"]["metrics"]["accuracy"] == 1.0
    assert onnx["kind"] == "onnx" and onnx["precision"] == "fp32"
    assert onnx["accuracy_drop"]["accuracy"]["points"] == 0.0
    assert onnx["accuracy_drop"]["flip_rate"] == 0.0
    # parity is taken against the checkpoint the ONNX model was exported from
    assert onnx["parity"]["against"] == "reference" and onnx["parity"]["passed"]
    assert onnx["parity"]["outputs"]["logits"]["max_abs_diff"] < 1e-4
    assert onnx["parity"]["outputs"]["logits"]["examples"] >= 40
    assert twin["parity"]["applies"] is False
    for m in [report["reference"], onnx, twin]:
        assert set(m["latency"]) == {"batch1", "batch4"}
        b1 = m["latency"]["batch1"]
        assert b1["p50_ci_ms"][0] <= b1["p50_ms"] <= b1["p50_ci_ms"][1]
        assert b1["relative_p50"] > 0 and b1["iterations"] == 20
        assert b1["tokenize"]["p50_ms"] > 0
    assert report["workload"]["by_batch"]["batch1"]["p50_ms"] > 0
    assert report["env"]["threads"] == 1
    assert report["env"]["provider"] == "CPUExecutionProvider"
    assert "onnxruntime" in report["env"]["versions"]
    assert "all gates passed" in text and "drop pts" in text  # the terminal table


def test_the_processs_torch_threads_are_as_they_were_after_verify(cli, models, tmp_path):
    """verify times the PyTorch reference on --threads (1); whatever runs next in the same
    process (a recipe's next step, an API caller's training) gets its own count back."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        code, text, report = _verify(cli, models, tmp_path, "--candidate", models["onnx"],
                                     "--threads", "1", *FAST)
        assert code == 0, text
        assert report["env"]["threads"] == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_accuracy_gate_fails_with_exit_5(cli, models, tmp_path):
    code, text, report = _verify(cli, models, tmp_path, "--candidate", models["other"],
                                 "--no-latency", "--max-accuracy-drop", "5")
    assert code == 5, text
    drop = report["candidates"][0]["accuracy_drop"]
    assert drop["accuracy"]["points"] > 5
    assert drop["accuracy"]["ci95"][0] <= drop["accuracy"]["points"] <= drop["accuracy"]["ci95"][1]
    assert drop["flips"] > 0
    assert set(report["candidates"][0]["per_class_delta"]) == {"neg", "neu", "pos"}
    assert "error: accuracy gate failed: other: accuracy" in text
    assert report["failures"][0]["gate"] == "accuracy"
    assert "Traceback" not in text


def _edit_classifier_bias(folder: Path, change) -> None:
    """Shift the classifier bias inside model.onnx: a drift parity must catch."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(folder / "model.onnx"))
    for init in model.graph.initializer:
        if tuple(init.dims) == (3,):
            init.CopyFrom(numpy_helper.from_array(change(numpy_helper.to_array(init)),
                                                  init.name))
            break
    else:
        raise AssertionError("no classifier bias found")
    onnx.save(model, str(folder / "model.onnx"))


@pytest.mark.parametrize("change,words", [
    (lambda b: b + np.float32(0.01), "max |difference|"),
    (lambda b: np.full_like(b, np.nan), "NaN"),
])
def test_parity_gate_fails_with_exit_3(cli, models, tmp_path, change, words):
    drifted = tmp_path / "drifted"
    shutil.copytree(models["onnx"], drifted)
    _edit_classifier_bias(drifted, change)
    code, text, report = _verify(cli, models, tmp_path, "--candidate", drifted, "--no-latency",
                                 "--max-accuracy-drop", "100")
    assert code == 3, text
    assert words in text and "parity gate failed: drifted" in text
    assert report["candidates"][0]["passed"] is False


def test_baseline_round_trip_and_latency_gate(cli, models, tmp_path):
    base = tmp_path / "baseline.json"
    code, text, report = _verify(cli, models, tmp_path, "--candidate", models["onnx"], *FAST,
                                 "--update-baseline", base)
    assert code == 0, text
    written = json.loads(base.read_text())
    for entry in [report["reference"]] + report["candidates"]:
        for batch in ("batch1", "batch4"):
            assert written["models"][entry["name"]][batch] == {
                k: entry["latency"][batch][k] for k in ("p50_ms", "p90_ms", "relative_p50")}
    assert written["threads"] == 1 and written["machine"]["cpu"]
    from edgetransfer.measure import baseline

    assert baseline.read(base).models["onnx"]["batch4"].p50_ms > 0

    # a baseline that says the models were 1000x faster (relative to the workload): the gate
    # fails (a factor no noise on a shared machine comes near)
    faster = json.loads(base.read_text())
    for by_batch in faster["models"].values():
        for f in by_batch.values():
            f["relative_p50"] /= 1000
    (tmp_path / "faster.json").write_text(json.dumps(faster))
    code, text, report = _verify(cli, models, tmp_path, "--candidate", models["onnx"], *FAST,
                                 "--baseline", tmp_path / "faster.json")
    assert code == 6, text
    assert "latency gate failed" in text and "more than the 10% allowed" in text
    assert report["latency_gate"]["rows"] and not report["passed"]
    assert {f["gate"] for f in report["failures"]} == {"latency"}

    # one that says they were 1000x slower: passes, and --max-latency-regression is read
    slower = json.loads(base.read_text())
    for by_batch in slower["models"].values():
        for f in by_batch.values():
            f["relative_p50"] *= 1000
    (tmp_path / "slower.json").write_text(json.dumps(slower))
    code, text, report = _verify(cli, models, tmp_path, "--candidate", models["onnx"], *FAST,
                                 "--baseline", tmp_path / "slower.json",
                                 "--max-latency-regression", "5%")
    assert code == 0, text
    assert report["latency_gate"]["threshold"] == 0.05
    assert all(r["passed"] and r["change"] < 0 for r in report["latency_gate"]["rows"])


@pytest.mark.parametrize("content,words", [
    ("{not json", "not valid JSON (line 1"),
    ('{"format": "something-else"}', "format 'something-else' is not"),
    ("[1, 2]", "is not 'edgetransfer-latency-baseline/1'"),
    ('{"format": "edgetransfer-latency-baseline/1", "created": "x", "machine": {}, '
     '"threads": 1, "provider": "CPUExecutionProvider", "workload_p50_ms": 1.0, '
     '"models": {"onnx": {"batch1": {"p50_ms": -1, "p90_ms": 1, "relative_p50": 1}}}}',
     "field models.onnx.batch1.p50_ms"),
    ('{"format": "edgetransfer-latency-baseline/1", "created": "x", "machine": {}, '
     '"threads": 4, "provider": "CPUExecutionProvider", "workload_p50_ms": 1.0, "models": {}}',
     "taken with --threads 4, this run uses 1"),
    ('{"format": "edgetransfer-latency-baseline/1", "created": "x", "machine": {}, '
     '"threads": 1, "provider": "CPUExecutionProvider", "workload_p50_ms": 1.0, "models": {}, '
     '"extra": 1}', "field extra"),
])
def test_malformed_baseline_is_a_one_line_error(cli, models, tmp_path, content, words):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    code, text, report = _verify(cli, models, tmp_path, "--candidate", models["onnx"],
                                 "--baseline", bad)
    assert code == 2, text
    assert f"--baseline {bad}" in text and words in text
    assert "Traceback" not in text and report is None  # refused before any measuring


def test_missing_baseline_and_bad_threshold(cli, models, tmp_path):
    code, text, _ = _verify(cli, models, tmp_path, "--candidate", models["onnx"],
                            "--baseline", tmp_path / "nope.json")
    assert code == 2 and "no such file; write one with --update-baseline" in text
    code, text, _ = _verify(cli, models, tmp_path, "--candidate", models["onnx"],
                            "--max-latency-regression", "ten")
    assert code == 2 and "give a share like 10% or 0.1" in text


def test_absent_provider_is_an_environment_error(cli, models, tmp_path):
    code, text, _ = _verify(cli, models, tmp_path, "--candidate", models["onnx"],
                            "--provider", "CUDAExecutionProvider")
    assert code == 4, text
    assert "provider CUDAExecutionProvider is not available here" in text


def test_silent_provider_fallback_is_caught(models, monkeypatch):
    """onnxruntime given a provider it cannot load runs on the CPU without an error; the
    harness compares what ran with what was asked for."""
    import onnxruntime as ort

    from edgetransfer.errors import EnvironmentProblem
    from edgetransfer.measure import latency

    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    real = ort.InferenceSession

    def falls_back(path, options, providers):  # what a CUDA provider that fails to load does
        return real(path, options, providers=["CPUExecutionProvider"])

    monkeypatch.setattr(ort, "InferenceSession", falls_back)
    with pytest.raises(EnvironmentProblem, match="ran CPUExecutionProvider, not the "
                                                 "CUDAExecutionProvider asked for"):
        latency.ort_session(models["onnx"] / "model.onnx", 1, "CUDAExecutionProvider")


def test_json_flag_prints_only_json(models, tmp_path, capsys):
    from edgetransfer.cli import main

    main(["-q", "verify", "--reference", str(models["ref"]), "--candidate",
          str(models["onnx"]), "--data", str(models["data"]), "--no-latency", "--json",
          "--out", str(tmp_path / "v.json")])  # returns: exit 0
    out = capsys.readouterr().out
    assert json.loads(out)["candidates"][0]["name"] == "onnx"


def test_candidates_of_another_task_or_same_name_are_refused(cli, models, tmp_path,
                                                             tiny_classifier):
    code, text, _ = _verify(cli, models, tmp_path, "--candidate", tiny_classifier,
                            "--no-latency")
    assert code == 2 and "differ from the reference's" in text
    code, text, _ = _verify(cli, models, tmp_path, "--candidate", f"x={models['onnx']}",
                            "--candidate", f"x={models['other']}", "--no-latency")
    assert code == 2 and "two models are named 'x'" in text


def test_int8_models_are_scored_one_text_at_a_time(cli, models, tmp_path):
    """Dynamic int8 scores depend on the batch a text shares (one activation scale over
    the batch): verify scores them alone, as the bundle runs them."""
    import onnxruntime as ort
    from transformers import AutoTokenizer

    int8 = tmp_path / "int8"
    code, err = cli("-q", "export", "--model", models["ref"], "--quantize", "int8-dynamic",
                    "--out", int8)
    assert code == 0, err
    code, text, report = _verify(cli, models, tmp_path, "--candidate", f"int8={int8}",
                                 "--max-accuracy-drop", "100", *FAST)
    assert code == 0, text
    cand = report["candidates"][0]
    assert cand["precision"] == "int8" and cand["scored_at_batch_size"] == 1
    assert report["reference"]["scored_at_batch_size"] == 32
    # the accuracy is what one-at-a-time onnxruntime calls give
    rows = [json.loads(line) for line in Path(models["data"]).read_text().splitlines()]
    tok = AutoTokenizer.from_pretrained(int8)
    session = ort.InferenceSession(str(int8 / "model.onnx"), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    labels = json.loads((int8 / "config.json").read_text())["id2label"]
    right = 0
    for r in rows:
        feeds = {k: v for k, v in tok(r["text"], return_tensors="np").items() if k in names}
        right += labels[str(int(session.run(None, feeds)[0].argmax()))] == r["label"]
    assert cand["metrics"]["accuracy"] == pytest.approx(right / len(rows))


def test_junit_and_markdown_for_ci(cli, models, tmp_path):
    """The CI forms of the report: JUnit XML (a case per gate and model) and a Markdown
    summary, written when the gates pass and when one fails."""
    from xml.etree import ElementTree as ET

    base = tmp_path / "baseline.json"
    code, text, _ = _verify(cli, models, tmp_path, "--candidate", models["onnx"], *FAST,
                            "--update-baseline", base)
    assert code == 0, text
    faster = json.loads(base.read_text())
    for by_batch in faster["models"].values():
        for f in by_batch.values():
            f["relative_p50"] /= 1000
    (tmp_path / "faster.json").write_text(json.dumps(faster))
    junit, summary = tmp_path / "ci" / "verify.xml", tmp_path / "ci" / "summary.md"
    code, text, report = _verify(cli, models, tmp_path, "--candidate", models["onnx"], *FAST,
                                 "--baseline", tmp_path / "faster.json", "--junit", junit,
                                 "--summary", summary)
    assert code == 6
    root = ET.parse(junit).getroot()
    suites = {s.get("name"): s for s in root}
    assert set(suites) == {"verify.parity", "verify.accuracy", "verify.latency"}
    assert suites["verify.parity"].get("failures") == "0"
    latency = suites["verify.latency"]
    names = [c.get("name") for c in latency]
    assert {"onnx batch1", "onnx batch4", "reference batch1"} <= set(names)
    failed = [c for c in latency if c.find("failure") is not None]
    assert failed and all("more than the 10% allowed" in c.find("failure").get("message")
                          for c in failed)
    assert int(root.get("failures")) == len(failed) == len(report["failures"])
    md = summary.read_text()
    assert md.startswith("### edgetransfer verify: FAILED")
    assert "| onnx | fp32 |" in md and "**latency** `onnx`" in md

    code, text, _ = _verify(cli, models, tmp_path, "--candidate", models["onnx"], *FAST,
                            "--junit", junit, "--summary", summary)
    assert code == 0
    assert ET.parse(junit).getroot().get("failures") == "0"
    assert summary.read_text().startswith("### edgetransfer verify: passed")


def test_an_export_json_pointing_its_source_elsewhere_is_not_followed(cli, models, tmp_path):
    """export.json's "source" is followed only to the checkpoint whose fingerprint export
    recorded: a handed-over export folder cannot make verify load a folder nobody named."""
    onnx = tmp_path / "onnx"
    shutil.copytree(models["onnx"], onnx)
    record = json.loads((onnx / "export.json").read_text())
    # another checkpoint; the root of the disk (whose fingerprint would hash every file)
    for source in (models["other"], Path("/")):
        record |= {"source": str(source), "source_fingerprint": "0" * 64}
        (onnx / "export.json").write_text(json.dumps(record))
        code, text, report = _verify(cli, models, tmp_path, "--candidate", onnx, *FAST)
        assert code == 0, text
        (cand,) = report["candidates"]
        assert cand["parity"]["against"] == "reference"  # not the folder export.json named
        assert "not the ones exported" in text and "not loaded" in text


def test_a_models_outputs_are_computed_only_for_the_parity_that_reads_them(
        cli, models, tmp_path, monkeypatch):
    """The metrics come from the shipped predictions; a model's raw outputs over the data
    serve output parity alone. A reference no ONNX model was exported from is not run over
    the data a second time (a 12-layer teacher's pass is minutes on a small CPU); one that
    is an export's source is, once."""
    from edgetransfer.stages import verify

    seen = []
    real = verify._outputs

    def counted(model, *args):
        seen.append(model.name)
        return real(model, *args)

    monkeypatch.setattr(verify, "_outputs", counted)
    onnx_other = tmp_path / "onnx-other"
    code, err = cli("-q", "export", "--model", models["other"], "--quantize", "none",
                    "--out", onnx_other)
    assert code == 0, err
    code, text, report = _verify(cli, models, tmp_path, "--candidate", models["other"],
                                 "--candidate", onnx_other, "--max-accuracy-drop", "100",
                                 *FAST)
    assert code == 0, text
    assert report["candidates"][1]["parity"]["against"] == "other"
    assert report["candidates"][1]["parity"]["passed"]
    assert sorted(seen) == ["onnx-other", "other"]  # not the reference's

    seen.clear()
    code, text, report = _verify(cli, models, tmp_path, "--candidate", models["onnx"], *FAST)
    assert code == 0, text
    assert report["candidates"][0]["parity"]["against"] == "reference"
    assert sorted(seen) == ["onnx", "reference"]


def test_the_references_predictions_are_kept_and_read_back_while_nothing_bearing_changes(
        cli, models, tmp_path, monkeypatch):
    """--reference-cache: a second verify against the same reference and data scores only
    its candidates, with the reference's figures of the first; other data, another token
    limit or another reference's files score it again; a damaged file is scored again."""
    from edgetransfer.measure import shipped

    seen = []  # (the models verify reads as their bundles would answer)
    real = shipped.of_runner
    monkeypatch.setattr(shipped, "of_runner", lambda runner: (
        seen.append(runner.name) or real(runner)))
    ref = tmp_path / "ref"
    shutil.copytree(models["ref"], ref)
    cache = tmp_path / "cache"

    def verify(*extra, reference=ref, data=models["data"]):
        seen.clear()
        out = tmp_path / "verify.json"
        code, text = cli("verify", "--reference", reference, "--data", data, "--out", out,
                         "--reference-cache", cache, "--no-latency", "--max-accuracy-drop",
                         "100", *extra)
        assert code == 0, text
        return json.loads(out.read_text()), text

    first, _ = verify("--candidate", models["other"])
    assert seen == ["ref", "other"]
    kept = sorted(cache.iterdir())
    assert len(kept) == 1 and kept[0].name.startswith("reference-predictions-")
    assert "predictions_from" not in first["reference"]
    again, text = verify("--candidate", models["onnx"])
    assert seen == ["onnx"] and "the reference's predictions: reusing" in text
    assert again["reference"]["metrics"] == first["reference"]["metrics"]
    assert again["reference"]["predictions_from"] == str(kept[0])  # (the report says so)
    assert again["candidates"][0]["accuracy_drop"]["accuracy"]["points"] == 0.0
    # (settings that bear on no prediction of the reference keep the key)
    verify("--candidate", models["other"], "--seed", "3", "--threads", "2")
    assert seen == ["other"]

    rows = [json.loads(line) for line in models["data"].read_text().splitlines()]
    rows[0]["text"] += " again"
    verify("--candidate", models["other"], data=write_jsonl(tmp_path / "other.jsonl", rows))
    assert seen == ["ref", "other"]
    verify("--candidate", models["other"], "--max-length", "16")
    assert seen == ["ref", "other"]
    (ref / "tokenizer_config.json").write_text(
        (ref / "tokenizer_config.json").read_text().replace("{", '{"x_edited": 1, ', 1))
    verify("--candidate", models["other"])
    assert seen == ["ref", "other"] and len(list(cache.iterdir())) == 4

    for damaged in kept[0], *(p for p in cache.iterdir() if p != kept[0]):
        damaged.write_text('{"format": 1, "predictions": [0]}')  # (one for 40 examples)
    shutil.rmtree(ref)
    shutil.copytree(models["ref"], ref)
    back, text = verify("--candidate", models["other"])
    assert seen == ["ref", "other"] and "cannot be read back" in text
    assert back["reference"]["metrics"] == first["reference"]["metrics"]
    assert len(json.loads(kept[0].read_text())["predictions"]["values"]) == 40  # (anew)
    assert not list(cache.glob(".*"))  # (nothing half-written left)

    # (verify's own files beside a reference folder without a manifest are no part of it)
    beside = ref / "verify.json"
    for _ in range(2):
        seen.clear()
        code, text = cli("verify", "--reference", ref, "--data", models["data"], "--out",
                         beside, "--reference-cache", cache, "--no-latency",
                         "--candidate", models["other"], "--max-accuracy-drop", "100")
        assert code == 0, text
    assert seen == ["other"]
    # (a folder that cannot be made, under a file: the predictions are used, not kept)
    cache = tmp_path / "file" / "cache"
    cache.parent.write_text("x")
    _, text = verify("--candidate", models["other"])
    assert seen == ["ref", "other"] and "cannot keep the reference's predictions" in text


def test_a_reference_cache_that_is_a_file_or_inside_an_input_is_refused(cli, models,
                                                                        tmp_path):
    out = tmp_path / "verify.json"
    file = tmp_path / "file"
    file.write_text("x")
    for cache, words in [(file, "is a file; give a folder"),
                         (models["ref"] / "cache", "is inside a model verified here")]:
        code, text = cli("-q", "verify", "--reference", models["ref"], "--data",
                         models["data"], "--candidate", models["other"], "--out", out,
                         "--reference-cache", cache, "--no-latency")
        assert code == 2 and words in text and "Traceback" not in text, text
        assert not out.exists() and not (models["ref"] / "cache").exists()


def test_kept_predictions_of_a_tagger_and_of_heads_read_back_as_they_were(tmp_path):
    """The kept file holds a tagger's Tags with the spans that cut a word, and a multi-task
    model's answer per head, as they were (the entity figures count the cut spans)."""
    from edgetransfer.measure import reference_cache
    from edgetransfer.tasks.spans import Tags

    tags = np.array([0, 3, 4], dtype=np.int64).view(Tags)
    tags.cut = ("PER",)
    preds = [tags, {"intent": np.int64(2), "slots": tags}]
    assert reference_cache.kept(tmp_path, "k", 2, 5, lambda: preds) == (preds, None)
    back, read = reference_cache.kept(tmp_path, "k", 2, 5, lambda: pytest.fail("scored again"))
    assert read == tmp_path / "reference-predictions-k.json"
    assert isinstance(back[0], Tags) and back[0].tolist() == [0, 3, 4]
    assert back[0].cut == ("PER",) and back[0].dtype == np.int64
    assert back[1]["intent"] == 2 and back[1]["slots"].cut == ("PER",)
    stored = tmp_path / "reference-predictions-k.json"
    stored.write_text(stored.read_text().replace('"int64"', '"object"'))
    assert reference_cache.kept(tmp_path, "k", 2, 5, lambda: preds)[0] is preds  # (numbers)
    # (an id the reference has no label for: read as nothing, scored again)
    assert reference_cache.kept(tmp_path, "k", 2, 4, lambda: preds)[1] is None
    stored.write_text(stored.read_text().replace("[0, 3, 4]", "[0, -3, 4]", 1))
    assert reference_cache.kept(tmp_path, "k", 2, 5, lambda: preds)[1] is None
    # (a classifier's answers: one array, read back as one, of its dtype and shape)
    ids = np.array([[2, 0], [1, 1], [0, 2]], dtype=np.int32)
    reference_cache.kept(tmp_path, "ids", 3, 3, lambda: ids)
    back, _ = reference_cache.kept(tmp_path, "ids", 3, 3, lambda: pytest.fail("scored again"))
    assert back.dtype == np.int32 and np.array_equal(back, ids)
