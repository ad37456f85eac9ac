"""metrics.paired_drop: point estimates, paired intervals, flips; the per-class report."""

from __future__ import annotations

import numpy as np
import pytest

from edgetransfer.measure import metrics


def test_identical_predictions_drop_nothing():
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    out = metrics.paired_drop(y, y, y, 3)
    assert out["accuracy"] == {"points": 0.0, "ci95": [0.0, 0.0]}
    assert out["flips"] == 0 and out["flip_rate"] == 0.0 and out["n"] == 8


def test_a_known_drop_and_its_interval():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    ref = y.copy()
    ref[:40] = 1 - ref[:40]  # 90% right
    cand = ref.copy()
    cand[40:80] = 1 - cand[40:80]  # 40 more wrong: 80% right
    out = metrics.paired_drop(y, ref, cand, 2, seed=1)
    assert out["accuracy"]["points"] == pytest.approx(10.0)
    low, high = out["accuracy"]["ci95"]
    assert low <= 10.0 <= high and high - low < 8  # paired: tight around the point
    assert out["flips"] == 40 and out["flip_rate"] == 0.1
    assert out["macro_f1"]["points"] > 0


def test_macro_f1_matches_scikit_learn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(3)
    y, p = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    assert metrics._macro_f1(y, p, 4) == pytest.approx(f1_score(y, p, average="macro"))


def test_report_names_every_class():
    rep = metrics.report([0, 1, 1, 2], [0, 1, 2, 2], ["a", "b", "c"])
    assert rep["accuracy"] == 0.75 and rep["n"] == 4
    assert set(rep["per_class"]) == {"a", "b", "c"}
    delta = metrics.per_class_delta(rep, metrics.report([0, 1, 1, 2], [0, 1, 1, 2],
                                                        ["a", "b", "c"]))
    assert delta["b"]["recall"] == 0.5
