"""report.collect and its renderings, from artifact folders written by hand."""

from __future__ import annotations

import json

import pytest

from edgetransfer import report


def _model(name, kind, precision, acc, p50, *, drop=None, passed=True):
    m = {"name": name, "kind": kind, "precision": precision, "size_bytes": 4 * 2**20,
         "metrics": {"accuracy": acc, "macro_f1": acc - 0.01}, "passed": passed,
         "latency": {"batch1": {"p50_ms": p50, "p90_ms": p50 * 1.5},
                     "batch32": {"p50_ms": p50 * 10, "throughput_per_s": 3200 / p50}}}
    if drop is not None:
        m["accuracy_drop"] = {"accuracy": {"points": drop, "ci95": [drop - 1, drop + 1]}}
    return m


def _write(path, doc):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


@pytest.fixture()
def root(tmp_path):
    _write(tmp_path / "pipeline.json", {"steps": {
        "teacher": {"step": "finetune", "status": "done", "wall_time_s": 60.0},
        "verify": {"step": "verify", "status": "failed", "wall_time_s": 20.5}}})
    _write(tmp_path / "verify" / "verify.json", {
        "passed": False, "task": "text-classification", "metric": "accuracy",
        "failures": [{"gate": "accuracy", "model": "onnx-int8", "message": "too low"}],
        "reference": _model("teacher-folder", "pytorch", "fp32", 0.90, 20.0),
        "candidates": [_model("onnx-int8", "onnx", "int8", 0.85, 2.0, drop=5.0, passed=False)],
        "data": {"path": "test.jsonl", "examples": 100},
        "env": {"machine": {"cpu": "Test CPU"}, "threads": 1}})
    _write(tmp_path / "bundle" / "artifact.json", {"metrics": {"archive_bytes": 1234}})
    return tmp_path


def test_collect_reads_what_the_stages_recorded(root):
    rep = report.collect(root)
    assert rep["task"] == "text-classification" and rep["metric"] == "accuracy"
    assert [m["name"] for m in rep["models"]] == ["teacher", "onnx-int8"]
    teacher, onnx = rep["models"]
    assert teacher["accuracy"] == 0.90 and onnx["accuracy"] == 0.85
    assert onnx["speedup"] == 10.0 and teacher["speedup"] == 1.0
    assert onnx["drop_points"] == 5.0 and onnx["drop_ci95"] == [4.0, 6.0]
    assert onnx["batch"] == 32 and onnx["passed"] is False
    assert rep["total_wall_time_s"] == 80.5
    assert rep["verify"]["failures"][0]["message"] == "too low"
    assert rep["bundle"] == {"archive_bytes": 1234}


def test_without_verify_the_exports_own_figures_are_shown(tmp_path):
    _write(tmp_path / "onnx-int8" / "export.json", {
        "metric": "accuracy", "accuracy": 0.8, "size_bytes": 2**20,
        "quantization": {"mode": "int8-dynamic"},
        "latency_batch1": {"p50_ms": 1.5, "p90_ms": 2.0}})
    rep = report.collect(tmp_path)
    assert rep["models"] == [{"name": "onnx-int8", "kind": "onnx", "precision": "int8-dynamic",
                              "size_mb": 1.0, "accuracy": 0.8, "second": None,
                              "p50_ms": 1.5, "p90_ms": 2.0}]
    assert rep["verify"] is None and rep["steps"] == {}


def test_write_renders_markdown_json_and_a_plot(root):
    report.write(root)
    text = (root / "report.md").read_text()
    assert "| teacher | pytorch | fp32 | 4.0 | 0.9000 |" in text
    assert "| onnx-int8 | onnx | int8 |" in text and "| 10.0x |" in text and "FAIL" in text
    assert "- accuracy: too low" in text and "![accuracy against latency](report.png)" in text
    assert (root / "report.png").stat().st_size > 1000
    assert json.loads((root / "report.json").read_text())["models"][1]["accuracy"] == 0.85


def test_the_second_figure_is_the_tasks(tmp_path):
    """A tagger's verify.json names its own second figure; the table shows it, not macro-F1."""
    ref = _model("teacher", "pytorch", "fp32", 0.9, 20.0)
    ref["metrics"] = {"entity_f1": 0.88, "token_micro_f1": 0.975}
    _write(tmp_path / "verify" / "verify.json", {
        "passed": True, "task": "token-classification", "metric": "entity_f1",
        "secondary": "token_micro_f1", "failures": [], "reference": ref, "candidates": [],
        "data": {"path": "test.txt", "examples": 3}, "env": {"machine": {"cpu": "C"},
                                                               "threads": 1}})
    rep = report.collect(tmp_path)
    assert rep["models"][0]["second"] == 0.975
    text = report.markdown(rep)
    assert "| entity-f1 | token-micro-f1 |" in text and "macro-F1" not in text
