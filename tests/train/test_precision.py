"""Each training step runs in the precision it was given, whatever ran before it in the
same process (`edgetransfer run` runs every step in one)."""

from __future__ import annotations


def test_an_fp32_step_after_a_bf16_one_trains_in_fp32(tmp_path, monkeypatch):
    import torch
    from transformers import Trainer

    from edgetransfer.train import training
    from edgetransfer.train.devices import Placement

    # (set, then removed: monkeypatch restores what was there, unset included)
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION")

    def trainer(precision: str) -> Trainer:
        args = training.training_arguments(
            tmp_path / precision, Placement("cpu", precision), epochs=1, batch_size=2,
            lr=1e-3, weight_decay=0.0, warmup_ratio=0.0, seed=0)
        rows = [{"x": [0.0, 1.0], "labels": 0}]
        return Trainer(model=torch.nn.Linear(2, 2), args=args, eval_dataset=rows)

    assert trainer("bf16").accelerator.mixed_precision == "bf16"
    # (transformers left ACCELERATE_MIXED_PRECISION=bf16 behind, its fp32 default)
    assert trainer("fp32").accelerator.mixed_precision == "no"
    assert trainer("bf16").accelerator.mixed_precision == "bf16"
