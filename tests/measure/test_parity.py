"""parity.compare: every failure collected, shapes checked, the task's agreement and tolerances."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from edgetransfer.measure import parity


def _logits(seed: int, rows: int = 8, classes: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, classes)).astype(np.float32)


def test_identical_outputs_pass_with_their_figures():
    ref = [_logits(0), _logits(1, rows=3)]
    rep = parity.compare(ref, [r.copy() for r in ref], "fp32", name="logits")
    assert rep.passed and rep.failures == []
    stats = rep.as_dict()["outputs"]["logits"]
    assert stats["max_abs_diff"] == 0 and stats["top1_agreement"] == 1.0
    assert stats["examples"] == 11 and stats["atol"] == 1e-4


def test_several_failures_are_collected_not_just_the_first():
    ref = [_logits(0)]
    bad = -ref[0]  # every prediction moves, and far
    bad[0, 0] = np.nan
    rep = parity.compare(ref, [bad], "fp32")
    assert not rep.passed
    joined = " | ".join(rep.failures)
    assert len(rep.failures) == 3, rep.failures
    assert "1 NaN and 0 inf values" in joined
    assert "max |difference|" in joined and "> 1e-04 (fp32)" in joined
    assert "top-1 agreement" in joined


def test_a_shape_mismatch_is_a_failure_not_a_numpy_error():
    rep = parity.compare([_logits(0)], [_logits(0, classes=4)], "fp32", name="logits")
    assert not rep.passed
    assert rep.failures == ["logits: shape (8, 4) in batch 0, the reference's is (8, 3)"]
    rep = parity.compare([_logits(0), _logits(1)], [_logits(0)], "int8", name="logits")
    assert rep.failures == ["logits: 1 batches, the reference has 2"]


def test_int8_is_judged_by_agreement_and_the_user_may_override_tolerances():
    ref = _logits(0, rows=100)
    cand = ref + 0.5  # a shift: same predictions, large differences
    assert parity.compare([ref], [cand], "int8").passed  # int8: no atol, agreement holds
    assert not parity.compare([ref], [cand], "int8", atol=0.1).passed
    assert not parity.compare([ref], [cand], "fp16").passed
    flipped = ref.copy()
    flipped[:10] = -flipped[:10]  # 10 rows' predictions change (most of them)
    rep = parity.compare([ref], [flipped], "int8", min_agreement=0.99)
    assert not rep.passed and "top-1 agreement" in rep.failures[0]


def test_a_task_without_agreement_is_judged_by_its_own_tolerances():
    task = SimpleNamespace(agreement=None, tolerances={"int8": (0.25, None)},
                           outputs=("logits",))
    ref = _logits(0, rows=20, classes=1)
    assert parity.compare([ref], [ref + 0.2], "int8", task=task).passed
    rep = parity.compare([ref], [ref + 0.3], "int8", task=task)
    assert rep.failures == ["logits: max |difference| 3.00e-01 > 0.25 (int8)"]
    assert rep.outputs["logits"]["top1_agreement"] is None


def test_probe_batches_have_three_shapes_with_padding():
    from transformers import AutoTokenizer

    from edgetransfer import tasks
    from edgetransfer.modeling.backbones import builtin_path

    tok = AutoTokenizer.from_pretrained(builtin_path("minilm-l6"))
    batches = parity.probe_batches(tasks.get("text-classification"), tok, None, 64)
    assert [b["input_ids"].shape[0] for b in batches] == [1, 3, 4]
    assert batches[0]["input_ids"].shape[1] < batches[1]["input_ids"].shape[1]  # lengths vary
    assert (batches[1]["attention_mask"] == 0).any()  # mixed lengths: padding present
