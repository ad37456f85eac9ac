"""bench/npu_exports.py: the goal verdicts read from export.json records."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import npu_exports  # noqa: E402


def _record(agreement: float, value: float, coverage: dict, simulator: dict | None = None):
    record = {"metric": "accuracy", "accuracy": value, "fp32_onnx_accuracy": 0.90,
              "size_bytes": 2**20, "opset": 17,
              "quantization": {"activation_type": "QUInt8"},
              "parity": {"final": {"outputs": {"logits": {"top1_agreement": agreement}}}},
              "accelerator": {"sequence_length": 64, "coverage": coverage}}
    if simulator:
        record["accelerator"]["simulator"] = simulator
        record["parity"]["qnn_simulator"] = {"outputs": {"logits": {"top1_agreement": 0.98}}}
    return record


def test_goals_are_judged_from_the_records():
    mobile = {"largest_partition_share": 0.985, "partitions": 2, "refused_ops": ["ai.onnx:Erf"]}
    htp = {"htp_nodes": 10, "nodes": 10, "htp_share": 1.0, "context_written": True,
           "context_bytes": 2**20}
    rows = [npu_exports.figures("nnapi", _record(0.995, 0.895, mobile)),
            npu_exports.figures("qnn", _record(0.999, 0.90, htp, {
                "accuracy": 0.87, "fp32_onnx_accuracy": 0.90, "rows": 200}))]
    text = npu_exports.render({"date": "2026-12-02", "note": "n", "cases": {
        "sst2": {"student": "s", "rows": rows, "latency": {"nnapi": {"p50_ms": 1.0}}}}})
    assert "| sst2 | nnapi | one partition >= 99% of nodes | 98.5% | no |" in text
    assert "| sst2 | nnapi | CPU QDQ vs fp32: agreement >= 99%, metric within 1 pt | " \
           "0.995, -0.50 pt | **yes** |" in text
    assert "| sst2 | qnn | every node on HTP, context written | 10/10 | **yes** |" in text
    assert "HTP simulator vs fp32: agreement >= 99%, metric within 1 pt | 0.980, -3.00 pt " \
           "| no |" in text
    assert "| nnapi | QUInt8 | 98.5% | 2 | Erf |" in text


def test_readme_table_goes_between_its_markers(tmp_path):
    htp = {"htp_nodes": 10, "nodes": 10, "htp_share": 1.0, "context_written": True,
           "context_bytes": 2**20}
    rows = [npu_exports.figures("qnn", _record(0.999, 0.89, htp, {
        "accuracy": 0.87, "fp32_onnx_accuracy": 0.90, "rows": 200}))]
    result = {"date": "2026-12-02", "cases": {"sst2": {"student": "s", "rows": rows, "latency": {
        "cpu (fused int8-dynamic)": {"p50_ms": 1.5}, "qnn": {"p50_ms": 20.0}}}}}
    page = tmp_path / "README.md"
    page.write_text("# T\n\n<!-- npu_exports -->\nold\n<!-- /npu_exports -->\n\nafter\n")
    npu_exports.replace_between(page, npu_exports.readme_table(result), "npu_exports")
    text = page.read_text()
    assert "old" not in text and text.endswith("<!-- /npu_exports -->\n\nafter\n")
    assert "| sst2 | qnn | 10/10 | 0.999 | -1.00 pt | 0.980, -3.00 pt | 20.00 ms (1.50) |" in text
