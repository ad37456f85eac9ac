"""export.json and verify.json as typed records: written and read by one function each,
with a schema version (edgetransfer/records)."""

from __future__ import annotations

import json

import pytest
from conftest import write_report

from edgetransfer.errors import ConfigError, ModelError
from edgetransfer.records import BY_FILE, ExportReport, VerifyReport

# an export.json as export writes it (the metric under its own name, and its companions)
EXPORT = {
    "task": "token-classification", "metric": "entity_f1", "opset": 18,
    "source": "models/x/student", "source_fingerprint": None,
    "parity": {"export": {"precision": "fp32", "passed": True, "failures": [],
                          "outputs": {"logits": {"max_abs_diff": 1e-6}}}},
    "torch_entity_f1": 0.86, "fp32_onnx_entity_f1": 0.86, "entity_f1": 0.853,
    "quantization": {"mode": "int8-dynamic", "per_channel": False},
    "entity_f1_batch_size": 1,
    "latency_batch1": {"p50_ms": 1.25, "p90_ms": 1.5, "threads": 1},
    "host": {"cpu": "Test CPU", "arch": "x86_64", "isa": ["avx2"]},
    "size_bytes": 23_000_000, "gates": [{"gate": "parity export", "passed": True}],
    "versions": {"onnxruntime": "1.20.0"}, "wall_time_s": 12.5}


def _entry(name, kind, value, **more):
    return {"name": name, "kind": kind, "precision": "fp32", "size_bytes": 4 * 2**20,
            "sha256": "a" * 64, "metrics": {"accuracy": value, "macro_f1": value - 0.01},
            "latency": {"batch1": {"p50_ms": 2.0, "p90_ms": 3.0, "p50_ci_ms": [1.9, 2.1]}},
            "passed": True} | more


VERIFY = {
    "passed": False,
    "failures": [{"gate": "accuracy", "model": "onnx-int8", "message": "too low"}],
    "reference": _entry("teacher", "pytorch", 0.9),
    "candidates": [_entry("onnx-int8", "onnx", 0.85, passed=False, accuracy_drop={
        "accuracy": {"points": 5.0, "ci95": [4.0, 6.0]}, "flip_rate": 0.05},
        parity={"applies": True, "against": "teacher", "passed": True, "outputs": {},
                "failures": []})],
    "latency_gate": None, "task": "text-classification", "metric": "accuracy",
    "secondary": "macro_f1", "data": {"path": "test.jsonl", "examples": 100},
    "env": {"machine": {"cpu": "Test CPU"}, "threads": 1, "provider": "CPUExecutionProvider",
            "versions": {"onnxruntime": "1.20.0"}},
    "wall_time_s": 3.5}


def _file(path, doc):
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


@pytest.mark.parametrize("kind,doc", [(ExportReport, EXPORT), (VerifyReport, VERIFY)],
                         ids=["export", "verify"])
def test_a_record_round_trips_with_the_same_keys_and_its_version(tmp_path, kind, doc):
    written = tmp_path / "written" / kind.FILE
    kind.model_validate(doc).write(written)  # (the folder is made)
    on_disk = json.loads(written.read_text())
    assert on_disk == {"schema_version": kind.SCHEMA_VERSION} | json.loads(json.dumps(doc))
    assert kind.read(written).dump() == on_disk
    assert BY_FILE[kind.FILE] is kind


def test_a_record_writes_only_the_keys_it_was_given(tmp_path):
    """No key of its own: an export without eval data writes no metric, no vocab, no null."""
    bare = {"latency_batch1": {"p50_ms": 1.0, "p90_ms": 2.0}, "size_bytes": 10}
    ExportReport(**bare).write(tmp_path / "export.json")
    assert json.loads((tmp_path / "export.json").read_text()) == \
        {"schema_version": ExportReport.SCHEMA_VERSION} | bare


def test_the_task_metric_is_read_through_one_accessor(tmp_path):
    rec = ExportReport.read(_file(tmp_path / "export.json", EXPORT))
    assert rec.metric == "entity_f1" and rec.score() == 0.853
    assert rec.score("torch_entity_f1") == 0.86 and rec.precision == "int8"
    rep = VerifyReport.read(_file(tmp_path / "verify.json", VERIFY))
    int8 = rep.candidates[0]
    assert rep.score(int8) == 0.85 and rep.score(int8, rep.secondary) == 0.84
    assert rep.drop(int8).points == 5.0 and rep.drop(rep.reference) is None
    assert rep.covering("a" * 64) is int8 and rep.covering("b" * 64) is None
    assert [f.message for f in rep.failures_of(int8)] == ["too low"]
    assert rep.env.onnxruntime == "1.20.0"


def test_a_record_reads_as_the_json_it_is_too(tmp_path):
    """Code that read export.json and verify.json as dicts (edgetransfer.api returned them
    so) keeps working on the records."""
    rec = ExportReport.read(_file(tmp_path / "export.json", EXPORT))
    assert rec["entity_f1"] == 0.853 and rec["latency_batch1"]["p50_ms"] == 1.25
    assert rec.get("vocab") is None and rec.get("vocab", {}) == {}
    with pytest.raises(KeyError):
        rec["no such key"]
    rep = VerifyReport.read(_file(tmp_path / "verify.json", VERIFY))
    assert rep["reference"]["metrics"]["accuracy"] == 0.9
    assert rep["candidates"][0]["accuracy_drop"]["accuracy"]["points"] == 5.0


def test_a_file_written_before_versions_is_read_as_version_1(tmp_path):
    """Files edgetransfer wrote before records had a schema_version have the same keys; one
    from before tasks has no metric either (its figure was accuracy)."""
    old = {k: v for k, v in VERIFY.items() if k not in ("metric", "secondary", "task")}
    rep = VerifyReport.read(_file(tmp_path / "verify.json", old))
    assert rep.schema_version == 1 and rep.metric == "accuracy" and rep.secondary == "macro_f1"
    assert rep.score(rep.reference) == 0.9
    rec = ExportReport.read(_file(tmp_path / "export.json", {
        "accuracy": 0.8, "size_bytes": 10, "latency_batch1": {"p50_ms": 1.0, "p90_ms": 2.0}}))
    assert rec.schema_version == 1 and rec.score() == 0.8


@pytest.mark.parametrize("kind,doc", [(ExportReport, EXPORT), (VerifyReport, VERIFY)],
                         ids=["export", "verify"])
def test_a_newer_version_is_refused_in_one_line(tmp_path, kind, doc):
    path = _file(tmp_path / kind.FILE, doc | {"schema_version": 99})
    with pytest.raises(ConfigError) as e:
        kind.read(path)
    message = str(e.value)
    assert message.startswith(f"{path}: schema_version 99 is newer than this edgetransfer")
    assert "a newer edgetransfer wrote it; upgrade edgetransfer" in message
    assert "\n" not in message


@pytest.mark.parametrize("doc,words", [
    (VERIFY | {"schema_version": "2"},
     "the field 'schema_version' is '2', not a whole number from 1"),
    ({k: v for k, v in VERIFY.items() if k != "reference"}, "the field 'reference' is missing"),
    (VERIFY | {"reference": _entry("t", "pytorch", 0.9, size_bytes="big")},
     "the field 'reference.size_bytes' is a string ('big'), not an integer"),
    (VERIFY | {"reference": _entry("t", "pytorch", 0.9, metrics={"accuracy": "high"})},
     "the field 'reference.metrics.accuracy' is a string ('high'), not a number"),
    (VERIFY | {"candidates": [_entry("c", "onnx", 0.8, accuracy_drop={"accuracy": {
        "points": [1]}})]},
     "the field 'candidates.0.accuracy_drop.accuracy.points' is an array ([1]), not a number"),
    (VERIFY | {"failures": [{"gate": "accuracy"}]}, "the field 'failures.0.model' is missing"),
], ids=["version", "missing", "size", "metric", "drop", "failure"])
def test_a_damaged_verify_report_is_refused_naming_the_field(tmp_path, doc, words):
    path = _file(tmp_path / "verify.json", doc)
    with pytest.raises(ConfigError) as e:
        VerifyReport.read(path)
    assert str(e.value) == f"{path}: {words}; {VerifyReport.FIX}"


def test_a_damaged_export_report_is_refused_naming_the_field(tmp_path):
    path = _file(tmp_path / "export.json", EXPORT | {"entity_f1": "0.85?"})
    with pytest.raises(ModelError) as e:  # (the reader's own error class and words)
        ExportReport.read(path, label="--model x/export.json", error=ModelError)
    assert str(e.value) == ("--model x/export.json: the field 'entity_f1' is a string "
                            "('0.85?'), not a number; export the model again")


def test_report_refuses_a_newer_verify_report_in_one_line(cli, tmp_path):
    (tmp_path / "verify").mkdir()
    _file(tmp_path / "pipeline.json", {"steps": {}})
    _file(tmp_path / "verify" / "verify.json", VERIFY | {"schema_version": 99})
    code, out = cli("report", tmp_path)
    assert code == 2 and "Traceback" not in out
    assert out.strip().splitlines() == [out.strip()]
    assert "verify.json: schema_version 99 is newer than this edgetransfer" in out


def test_package_refuses_a_newer_verify_report_in_one_line(exported, cli, tmp_path):
    report = write_report(tmp_path / "verify.json", exported)
    _file(report, json.loads(report.read_text()) | {"schema_version": 99})
    code, out = cli("-q", "package", "--model", exported, "--verify-report", report, "--out",
                    tmp_path / "bundle", "--no-measure", "--no-check-target")
    assert code == 2 and "Traceback" not in out, out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), out
    assert f"--verify-report {report}: schema_version 99 is newer than this edgetransfer" \
        in lines[0] and "upgrade edgetransfer" in lines[0]
    assert not (tmp_path / "bundle").exists()
