"""baseline.gate: workload-relative p50s against the stored baseline; thresholds."""

from __future__ import annotations

import pytest

from edgetransfer.errors import ConfigError
from edgetransfer.measure import baseline


def _stored(tmp_path, models):
    path = tmp_path / "baseline.json"
    baseline.write(path, machine={"cpu": "test"}, threads=1, provider="CPUExecutionProvider",
                   workload_p50_ms=2.0, models=models)
    return baseline.read(path)


def _figures(p50, relative):
    return {"p50_ms": p50, "p90_ms": p50 * 1.2, "relative_p50": relative}


def test_gate_passes_within_the_threshold_and_fails_beyond(tmp_path):
    base = _stored(tmp_path, {"int8": {"batch1": _figures(1.0, 0.5)},
                              "fp32": {"batch1": _figures(2.0, 1.0)}})
    rows, skipped = baseline.gate(base, {"int8": {"batch1": _figures(1.05, 0.525)},
                                         "fp32": {"batch1": _figures(2.6, 1.3)},
                                         "new": {"batch1": _figures(1.0, 0.5)}}, 0.10)
    by = {r["model"]: r for r in rows}
    assert by["int8"]["passed"] and by["int8"]["change"] == pytest.approx(0.05)
    assert not by["fp32"]["passed"] and by["fp32"]["change"] == pytest.approx(0.3)
    assert "+30.0% against the baseline" in by["fp32"]["message"]
    assert "message" not in by["int8"]
    assert skipped == ["new: not in the baseline (names: int8, fp32)"]


def test_a_batch_size_the_baseline_lacks_is_skipped(tmp_path):
    base = _stored(tmp_path, {"int8": {"batch1": _figures(1.0, 0.5)}})
    rows, skipped = baseline.gate(base, {"int8": {"batch32": _figures(9.0, 4.5)}}, 0.1)
    assert rows == [] and skipped == ["int8 batch32: not in the baseline"]


@pytest.mark.parametrize("text, value", [("10%", 0.1), ("10 %", 0.1), ("0.25", 0.25)])
def test_thresholds(text, value):
    assert baseline.parse_threshold(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["ten", "0%", "-5%"])
def test_bad_thresholds(text):
    with pytest.raises(ConfigError, match="--max-latency-regression"):
        baseline.parse_threshold(text)


def test_another_thread_count_is_not_comparable(tmp_path):
    base = _stored(tmp_path, {})
    with pytest.raises(ConfigError, match="taken with --threads 1, this run uses 2"):
        baseline.check_comparable(base, tmp_path / "baseline.json", 2, "CPUExecutionProvider")
