"""Training that diverged stops with the reason, and its NaN weights are never saved."""

from __future__ import annotations

import math

from ..errors import TrainingDiverged


def _diverged_fix(lr: float | None, precision: str | None) -> str:
    fix = f"lower --lr (it is {lr:g})" if lr else "lower --lr"
    if precision in ("fp16", "bf16"):
        fix += f" or use --precision fp32 (it is {precision})"
    return f"{fix} and run again with --overwrite; nothing was written under --out"


def check_finite(model, when: str, lr: float | None = None, precision: str | None = None) -> None:
    """NaN or infinite weights are never saved: stop with the reason instead."""
    import torch

    for name, p in model.named_parameters():
        if not torch.isfinite(p.detach()).all():
            raise TrainingDiverged(f"training diverged: weight {name} holds NaN or infinite "
                                   f"values {when}; {_diverged_fix(lr, precision)}")


def nan_guard(lr: float, precision: str | None = None):
    """A TrainerCallback that stops training on a NaN or infinite loss, with the reason."""
    from transformers import TrainerCallback

    class NanGuard(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(loss):
                raise TrainingDiverged(
                    f"training diverged: the loss is {loss} at step {state.global_step} "
                    f"(epoch {state.epoch or 0:.2f}); {_diverged_fix(lr, precision)}")

    return NanGuard()
