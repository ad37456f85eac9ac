"""bench/levers.py: a row per run folder read from the files the run wrote, rows kept across
calls, the goals' verdicts and the plot."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import levers  # noqa: E402


def _run(root: Path, name: str, overrides: list[str], int8: float, drop_ci: list) -> Path:
    """A finished run's folder as `edgetransfer run` leaves it (the files levers reads)."""
    folder = root / name
    (folder / "student").mkdir(parents=True)
    (folder / "recipe.resolved.yaml").write_text(yaml.safe_dump({
        "recipe": "recipes/sst2-strong.yaml", "name": "sst2-strong",
        "overrides": ["data.dir=../d", f"output={folder}", *overrides]}))
    model = {"kind": "pytorch", "precision": "fp32", "drop_points": None, "drop_ci95": None}
    (folder / "report.json").write_text(json.dumps({
        "metric": "accuracy", "data": {"examples": 872},
        "steps": {"teacher": {"wall_time_s": 1.5}, "student": {"wall_time_s": 2400.0}},
        "models": [model | {"name": "teacher", "accuracy": 0.9, "p50_ms": 270.0},
                   model | {"name": "student", "accuracy": int8 + 0.004, "p50_ms": 20.0},
                   {"name": "onnx-int8", "kind": "onnx", "precision": "int8",
                    "accuracy": int8, "p50_ms": 7.5, "drop_points": round(100 * (0.9 - int8), 2),
                    "drop_ci95": drop_ci, "speedup": 36.0}],
        "verify": {"machine": {"cpu": "AMD EPYC", "logical_cpus": 2, "isa": ["avx2"]}},
        "bundle": {"archive_bytes": 13_400_000}}))
    (folder / "student" / "settings.json").write_text(json.dumps({
        "keep_layers": [0, 2, 5], "transfer_rows": {"labelled": 8000, "unlabelled": 66857,
                                                    "augmented": 14373}}))
    (folder / "student" / "metrics.json").write_text(json.dumps(
        {"validation": {"accuracy": 0.926}}))
    return folder


def test_a_row_per_run_read_from_its_files_and_kept_across_calls(tmp_path):
    first = levers.collect(_run(tmp_path, "L3", [], 0.878, [0.34, 4.59]))
    assert first["overrides"] == [] and first["layers"] == 3
    assert first["kept"] == pytest.approx(0.878 / 0.9) and first["bundle_mb"] == 13.4
    record = levers.merged(None, "t", "sst2", [first])
    long = levers.collect(_run(tmp_path, "long", ["distill.augment=long"], 0.885, [0.1, 3.2]))
    record = levers.merged(record, "t", "sst2", [long])
    assert [r["run"] for r in record["rows"]] == ["L3", "long"]
    text = levers.render(record)
    row = next(line for line in text.splitlines() if line.startswith("| long"))
    assert "`distill.augment=long`" in row and "**0.8850**" in row and "98.3%" in row
    assert "8,000 labelled + 66,857 unlabelled (of which 14,373 augmented)" in row
    assert "1.50 [0.10, 3.20]" in row and "36.0x (7.50 against 270.0)" in row
    assert "student 40.0" in row and "teacher" not in row.split("|")[-2]  # (reused: seconds)
    assert "int8 student >= 0.900: best 0.8850 (long), missed; kept >= 97%: best 98.3%, met" \
        in text
    # the same folder again replaces its row
    again = levers.merged(record, "t", "sst2", [levers.collect(tmp_path / "long") | {
        "int8": 0.9}])
    assert [r["int8"] for r in again["rows"]] == [0.878, 0.9]
    assert "best 0.9000 (long), met" in levers.render(again)
    levers.plot(again, tmp_path / "levers.png")
    assert (tmp_path / "levers.png").read_bytes()[:4] == b"\x89PNG"


def test_a_run_without_its_report_or_another_tasks_record_is_refused_with_the_fix(tmp_path):
    (tmp_path / "half").mkdir()
    with pytest.raises(SystemExit, match="half: no report.json; finish the run"):
        levers.collect(tmp_path / "half")
    record = levers.merged(None, "t", "sst2", [])
    with pytest.raises(SystemExit, match="levers-t: its record is of sst2, not conll2003"):
        levers.merged(record, "t", "conll2003", [])
    # (two folders of one name in one call: one row would silently replace the other)
    a = levers.collect(_run(tmp_path / "a", "L3", [], 0.878, [0.3, 4.5]))
    b = levers.collect(_run(tmp_path / "b", "L3", [], 0.871, [0.9, 5.1]))
    with pytest.raises(SystemExit, match="two run folders named L3: .* rename one"):
        levers.merged(None, "t", "sst2", [a, b])
