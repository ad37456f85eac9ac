"""export says what each gate compared: rows, the figure, the bar and where the bar came
from, on the terminal and in export.json "gates" (issue 27)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import make_classifier, make_rows, write_jsonl


@pytest.fixture(scope="module")
def model(tiny_backbone, tmp_path_factory) -> Path:
    return make_classifier(tiny_backbone, tmp_path_factory.mktemp("gates") / "m", seed=1)


@pytest.fixture(scope="module")
def eval_file(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("gates-data") / "val.jsonl",
                       make_rows(30, seed=2))


def _gates(folder: Path) -> dict:
    return {g["gate"]: g for g in json.loads((folder / "export.json").read_text())["gates"]}


def test_without_eval_data_the_probe_bar_is_named_and_warned_about(cli, model, tmp_path):
    out = tmp_path / "onnx"
    code, text = cli("export", "--model", model, "--out", out, "--quantize", "int8-dynamic")
    assert code == 0, text
    gates = _gates(out)
    assert set(gates) == {"parity export", "parity fused", "parity final"}
    final = gates["parity final"]
    assert final["precision"] == "int8"
    assert (final["rows"], final["probe_rows"], final["eval_rows"]) == (8, 8, 0)
    assert final["min_agreement"] == 0.75
    assert final["min_agreement_from"] == "probe rows without --eval-data"
    assert final["atol"] is None  # int8 logits move by design: agreement alone
    fp32 = gates["parity export"]
    assert fp32["atol"] == 1e-4 and fp32["atol_from"] == "the fp32 default 1e-04"
    assert fp32["min_agreement_from"] == "the fp32 default 1"
    # the terminal says the same, and warns that the documented 95% needs --eval-data
    assert "parity final (int8): 8 rows (8 probe); agreement" in text
    assert ">= 0.75 (probe rows without --eval-data): passed" in text
    assert "max |diff|" in text and "(the fp32 default 1e-04)" in text
    assert "warning: int8 agreement was judged on 8 probe rows only, at least 0.75" in text
    assert "--eval-data holds int8 to 0.95 agreement" in text


def test_with_eval_data_the_default_bars_and_the_metric_gate(cli, model, eval_file, tmp_path):
    out = tmp_path / "onnx"
    code, text = cli("export", "--model", model, "--out", out, "--quantize", "int8-dynamic",
                     "--eval-data", eval_file, "--max-accuracy-drop", "100")
    assert code == 0, text
    gates = _gates(out)
    final = gates["parity final"]
    assert (final["rows"], final["probe_rows"], final["eval_rows"],
            final["calibration_rows"]) == (38, 8, 30, 0)
    assert final["min_agreement"] == 0.95
    assert final["min_agreement_from"] == "the int8 default 0.95"
    accuracy = gates["accuracy"]
    assert accuracy["rows"] == 30 and accuracy["data"] == str(eval_file)
    assert accuracy["max_drop"] == 100 and accuracy["max_drop_from"] == "--max-accuracy-drop"
    # accuracy is judged in points
    assert accuracy["drop"] == pytest.approx(100 * (accuracy["against_value"]
                                                    - accuracy["value"]), abs=1e-3)
    assert accuracy["passed"] is True
    assert "parity final (int8): 38 rows (8 probe, 30 --eval-data)" in text
    assert "(the int8 default 0.95): passed" in text
    assert f"accuracy: 30 rows of {eval_file}" in text
    assert "(--max-accuracy-drop): passed" in text
    assert "judged on 8 probe rows only" not in text


def test_without_eval_data_the_calibration_sample_holds_int8_to_its_default_bar(
        cli, model, eval_file, tmp_path):
    out = tmp_path / "onnx"
    code, text = cli("export", "--model", model, "--out", out, "--quantize", "int8-static",
                     "--calibration-data", eval_file, "--calibration-samples", "20")
    assert code == 0, text
    gates = _gates(out)
    final = gates["parity final"]
    assert (final["rows"], final["probe_rows"], final["eval_rows"],
            final["calibration_rows"]) == (28, 8, 0, 20)
    assert final["min_agreement"] == 0.95
    assert final["min_agreement_from"] == "the int8 default 0.95"
    assert "accuracy" not in gates  # no labels read: no metric gate
    assert "parity final (int8): 28 rows (8 probe, 20 calibration)" in text
    assert "judged on 8 probe rows only" not in text


def test_a_given_bar_is_named_by_its_flag(cli, model, eval_file, tmp_path):
    out = tmp_path / "onnx"
    code, text = cli("-q", "export", "--model", model, "--out", out, "--quantize", "fp16",
                     "--eval-data", eval_file, "--min-agreement", "0.5", "--atol", "1")
    assert code == 0, text
    final = _gates(out)["parity final"]
    assert (final["min_agreement"], final["min_agreement_from"]) == (0.5, "--min-agreement")
    assert (final["atol"], final["atol_from"]) == (1.0, "--atol")
    assert _gates(out)["accuracy"]["max_drop_from"] == "the --max-accuracy-drop default 0.5"


def test_a_failed_gate_names_its_bar_and_rows():
    import numpy as np

    from edgetransfer.measure import parity

    ref = np.eye(3)[[0, 1, 2, 0, 1, 2, 0, 1]]
    flipped = ref.copy()
    flipped[:3] = np.eye(3)[[1, 2, 0]]
    rep = parity.compare([ref], [flipped], "int8", min_agreement=0.75, name="logits",
                         min_agreement_from="probe rows without --eval-data")
    assert rep.failures == [("logits: top-1 agreement 0.625 < 0.75 (int8, probe rows without "
                             "--eval-data) over 8 outputs")]
    stats = rep.outputs["logits"]
    assert stats["min_agreement_from"] == "probe rows without --eval-data"


def test_the_lines_say_outputs_compared_where_they_are_not_rows_and_the_pruning_bar():
    from edgetransfer.measure.gates import gate_lines

    word = {"gate": "parity final", "precision": "int8", "output": "logits", "rows": 8,
            "probe_rows": 8, "eval_rows": 0, "outputs_compared": 331, "max_abs_diff": 0.3,
            "atol": None, "atol_from": None, "agreement": 0.991, "min_agreement": 0.75,
            "min_agreement_from": "probe rows without --eval-data", "passed": True}
    pruned = {"gate": "vocabulary pruning", "rows": 30, "data": "val.jsonl", "agreement": 0.97,
              "against": "the unpruned model", "min_agreement": 0.95,
              "min_agreement_from": "the pruning default 0.95", "passed": True}
    assert gate_lines([word, pruned]) == [
        ("parity final (int8): 8 rows (8 probe; 331 outputs compared); agreement 0.991 >= 0.75 "
         "(probe rows without --eval-data): passed"),
        ("vocabulary pruning: 30 rows of val.jsonl; label agreement with the unpruned model "
         "0.970 >= 0.95 (the pruning default 0.95): passed")]
