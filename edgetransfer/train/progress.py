"""Progress a person can follow: log lines (or tqdm bars at a terminal) and the training plot."""

from __future__ import annotations

import logging
import math
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)


def use_our_progress(trainer, progress) -> None:
    """Replace Trainer's dict printer (shown when tqdm is off) with our progress lines."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(progress)


def progress_callback(metric: str = "accuracy"):
    """A TrainerCallback that logs progress lines (the plot reads the Trainer's log history)."""
    from transformers import TrainerCallback

    class ProgressLog(TrainerCallback):
        def __init__(self):
            self.started = time.perf_counter()

        def on_train_begin(self, args, state, control, **kw):
            self.started = time.perf_counter()
            self.first_step = state.global_step

        def on_log(self, args, state, control, logs=None, **kw):
            if state.is_world_process_zero and logs and "loss" in logs:
                done = max(state.global_step - self.first_step, 1)
                elapsed = time.perf_counter() - self.started
                left = elapsed / done * (state.max_steps - state.global_step)
                log.info(
                    "step %d/%d  epoch %.2f  loss %.4f  lr %.2e  eta %s",
                    state.global_step, state.max_steps, state.epoch or 0, logs["loss"],
                    logs.get("learning_rate", math.nan), _duration(left),
                )

        def on_evaluate(self, args, state, control, metrics=None, **kw):
            if state.is_world_process_zero and metrics:
                shown = [metric] + [k for k in ("macro_f1",) if k != metric
                                    and f"eval_{k}" in metrics]
                log.info("eval at epoch %.2f: %s  loss %.4f", state.epoch or 0,
                         "  ".join(f"{k.replace('macro_f1', 'macro-F1')} "
                                   f"{metrics.get(f'eval_{k}', math.nan):.4f}" for k in shown),
                         metrics.get("eval_loss", math.nan))

    return ProgressLog()


def pass_progress(total: int, what: str, every_s: float = 30.0):
    """A callable(done) for a long pass over rows outside the Trainer (which logs its own):
    a line `what: done/total rows, eta` at most every `every_s` seconds, and at the end."""
    started = last = time.perf_counter()

    def seen(done: int) -> None:
        nonlocal last
        now = time.perf_counter()
        if now - last >= every_s or done >= total:
            last = now
            left = (now - started) / max(done, 1) * (total - done)
            log.info("%s: %d/%d rows, eta %s", what, done, total, _duration(left))

    return seen


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def show_bars() -> bool:
    """tqdm bars for a person at a terminal; plain log lines for CI logs and files."""
    return (sys.stderr.isatty()
            and logging.getLogger("edgetransfer").getEffectiveLevel() <= logging.INFO)


def plot_history(history: list[dict], path: Path, title: str, metric: str = "accuracy",
                 greater_is_better: bool = True) -> bool:
    """Training loss and the validation metric against epochs, as a PNG. False if nothing to
    draw."""
    train = [(h["epoch"], h["loss"]) for h in history if "loss" in h and h.get("epoch")]
    key, shown = f"eval_{metric}", metric.replace("_", " ")
    evals = [(h["epoch"], h[key]) for h in history if key in h]
    if not train and not evals:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    handles = []
    if train:
        handles += ax.plot(*zip(*train), color="tab:blue", label="training loss")
    eval_loss = [(h["epoch"], h["eval_loss"]) for h in history if "eval_loss" in h]
    if eval_loss:
        handles += ax.plot(*zip(*eval_loss), "--", color="tab:blue", alpha=0.6,
                           label="validation loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss", color="tab:blue")
    if evals:
        ax2 = ax.twinx()
        handles += ax2.plot(*zip(*evals), "o-", color="tab:orange",
                            label=f"validation {shown}")
        ax2.set_ylabel(f"validation {shown}", color="tab:orange")
        values = [a for _, a in evals]
        if greater_is_better and 0 <= min(values) and max(values) <= 1:  # a share (accuracy)
            ax2.set_ylim(min(0.5, min(values) - 0.05), 1.0)
        sign = 1 if greater_is_better else -1
        best_epoch, best = max(evals, key=lambda e: (sign * e[1], -e[0]))  # first of the best
        ax2.axvline(best_epoch, color="grey", linestyle=":", linewidth=1)
        at_end = best_epoch == max(e for e, _ in evals)  # keep the label inside the axes
        ax2.annotate(f"best {best:.3f} (kept)", (best_epoch, best), textcoords="offset points",
                     xytext=(-78 if at_end else 4, -14), fontsize=8, color="grey")
    ax.legend(handles=handles, loc="center right", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
