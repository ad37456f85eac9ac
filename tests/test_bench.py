"""bench/run_all.py's bookkeeping: the data it derives, the ratios it reports, the section it
writes into RESULTS.md. (The measurements themselves are the benchmark's, not the tests'.)"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
run_all = pytest.importorskip("run_all")
from finetune_methods import sst2_files  # noqa: E402


@pytest.fixture
def sst2(tmp_path):
    d = tmp_path / "sst2"
    d.mkdir()
    (d / "train.tsv").write_text(
        "sentence\tlabel\n" + "".join(f"train {i}\t{i % 2}\n" for i in range(50)))
    (d / "dev.tsv").write_text(
        "sentence\tlabel\n" + "".join(f"dev {i}\t{i % 2}\n" for i in range(880)))
    (d / "validation.tsv").write_text("sentence\tlabel\nscored\t1\n")
    return d


def test_unlabeled_text_never_overlaps_training_selection_or_scoring(sst2, tmp_path):
    work = tmp_path / "work"
    files = sst2_files(sst2, 20, 13, work, unlabeled=12)
    path = files["unlabeled"]
    lines = path.read_text().splitlines()
    assert lines[0] == "sentence" and len(lines) == 13
    texts = set(lines[1:])
    labelled = {line.split("\t")[0] for line in files["train"].read_text().splitlines()[1:]}
    selection = {line.split("\t")[0] for line in files["validation"].read_text().splitlines()[1:]}
    assert not texts & labelled and not texts & selection and "scored" not in texts
    # dev.tsv beyond the 872 selection rows first (7 of them), then train rows
    assert [t for t in lines[1:8]] == [f"dev {i}" for i in range(872, 879)]
    assert all(t.startswith("train ") for t in lines[9:])
    assert all("\t" not in t for t in texts)  # labels dropped


def _model(name, p50, ci, acc):
    return {"name": name, "p50_ms": p50, "p50_ci_ms": ci, "p90_ms": p50 * 1.5,
            "p90_ci_ms": [c * 1.5 for c in ci], "accuracy": acc}


def test_speedup_ratio_bounds_and_kept_accuracy():
    models = [_model("teacher", 16.0, [15.0, 17.0], 0.86),
              _model("onnx-int8", 1.0, [0.9, 1.1], 0.84)]
    s = run_all.speedup(models, "teacher", "onnx-int8")
    assert s["p50"]["ratio"] == 16.0
    assert s["p50"]["bounds"] == [round(15 / 1.1, 2), round(17 / 0.9, 2)]
    assert s["kept"] == round(0.84 / 0.86, 4)
    assert run_all.speedup(models, "teacher", "missing") is None

    met = run_all.goals({"speedup": s})
    assert met["speedup"]["met"] == "**yes**"  # 16x >= 12x
    assert met["kept"]["met"] == "**yes**"  # 97.7% >= 97%
    slow = run_all.speedup([models[0], _model("onnx-int8", 2.0, [1.9, 2.1], 0.80)],
                           "teacher", "onnx-int8")
    met = run_all.goals({"speedup": slow})
    assert met["speedup"]["met"] == "no" and met["kept"]["met"] == "no"


def test_a_run_replaces_only_the_section_of_its_own_mode(tmp_path):
    md = tmp_path / "RESULTS.md"
    md.write_text("# Benchmark results\n\n## older notes\n\nkept\n")
    run_all.write_section(md, "full one\n", "full")
    run_all.write_section(md, "quick one\n", "quick")
    run_all.write_section(md, "full two\n", "full")
    text = md.read_text()
    assert "full one" not in text and text.count("full two") == 1
    assert text.count("quick one") == 1 and text.endswith("kept\n")
    assert text.index("full two") < text.index("quick one") < text.index("older notes")


def test_models_from_verify_reads_the_record(tmp_path):
    """The bench reads verify.json as edgetransfer does (records.VerifyReport)."""
    import json

    def entry(name, value, p50):
        return {"name": name, "kind": "onnx", "precision": "int8", "size_bytes": 2**20,
                "metrics": {"accuracy": value}, "passed": True,
                "latency": {"batch1": {"p50_ms": p50, "p90_ms": p50, "p50_ci_ms": [p50, p50],
                                       "p90_ci_ms": [p50, p50], "throughput_per_s": 1e3 / p50}}}
    (tmp_path / "verify.json").write_text(json.dumps({
        "passed": True, "failures": [], "reference": entry("teacher", 0.9, 10.0),
        "candidates": [entry("onnx-int8", 0.88, 1.0) | {"accuracy_drop": {
            "accuracy": {"points": 2.0, "ci95": [1.0, 3.0]}}}]}))
    rows = run_all.models_from_verify(run_all.verify_report(tmp_path / "verify.json"))
    assert [(r["name"], r["accuracy"], r["drop_points"], r["p50_ms"]) for r in rows] == [
        ("teacher", 0.9, None, 10.0), ("onnx-int8", 0.88, 2.0, 1.0)]
    assert run_all.speedup(rows, "teacher", "onnx-int8")["p50"]["ratio"] == 10.0
    assert run_all.verify_report(tmp_path / "missing.json") is None
