"""The latency summaries: percentiles, intervals, throughput; interleaved rounds."""

from __future__ import annotations

import numpy as np
import pytest

from edgetransfer.measure import latency


def test_summarize_gives_percentiles_throughput_and_intervals():
    times = np.linspace(0.001, 0.002, 101)  # 1..2 ms, evenly
    out = latency.summarize(times, items_per_call=4, ci=True)
    assert out["p50_ms"] == pytest.approx(1.5) and out["p90_ms"] == pytest.approx(1.9)
    assert out["p99_ms"] == pytest.approx(1.99)
    assert out["mean_ms"] == pytest.approx(1.5) and out["iterations"] == 101
    assert out["throughput_per_s"] == pytest.approx(4 / 0.0015, rel=1e-3)
    for q in (50, 90, 99):
        low, high = out[f"p{q}_ci_ms"]
        assert low <= out[f"p{q}_ms"] <= high


def test_a_constant_sample_has_a_point_interval():
    assert latency.percentile_ci(np.full(50, 2.0), 50) == [2.0, 2.0]
    assert latency.percentile_ci(np.array([1.0, 3.0]), 50) == [2.0, 2.0]  # too few to resample


def test_interleaved_times_every_job_the_same_number_of_calls():
    calls = {"a": [], "b": []}
    jobs = {name: (lambda x, name=name: calls[name].append(x), [1, 2, 3]) for name in calls}
    rounds = []
    out = latency.interleaved(jobs, iterations=10, rounds=5, warmup=2,
                              progress=lambda r, n: rounds.append((r, n)))
    assert {k: len(v) for k, v in out.items()} == {"a": 10, "b": 10}
    assert rounds[-1] == (5, 5)
    assert set(calls["a"]) == {1, 2, 3}  # every input is timed


def test_measure_returns_the_warmup_it_used():
    out = latency.measure(lambda x: None, [0], warmup=3, iterations=20)
    assert out["warmup"] == 3 and out["iterations"] == 20 and out["p50_ms"] >= 0
