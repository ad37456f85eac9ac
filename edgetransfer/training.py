"""The training machinery every training stage shares (finetune now, distill next).

transformers' Trainer does the loop, optimizer, schedule, mixed precision, checkpoints,
distribution (accelerate/torchrun) and early stopping; this module only fixes our defaults,
picks the checkpoint to resume from, reports progress and draws the training curve.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .devices import Placement
from .errors import TrainingDiverged

log = logging.getLogger(__name__)
CHECKPOINTS = "checkpoints"
# Written last into each checkpoint, after every file in it is flushed to disk: a checkpoint
# without it was cut off mid-save (kill -9, a full disk, a lost machine) and is never loaded.
COMPLETE = "checkpoint.complete"
# In checkpoints/ of every run that writes COMPLETE markers; runs begun by an older
# edgetransfer lack it, and their checkpoints are judged by the files they hold.
MARKED_RUN = ".complete-markers"


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def training_arguments(
    work: Path,
    placement: Placement,
    *,
    epochs: float,
    batch_size: int,
    lr: float,
    weight_decay: float,
    warmup_ratio: float,
    seed: int,
    eval_steps: int = 0,
    grad_accum: int = 1,
    show_progress: bool = True,
    metric: str = "accuracy",
):
    from transformers import TrainingArguments

    strategy = "steps" if eval_steps else "epoch"
    return TrainingArguments(
        output_dir=str(work / CHECKPOINTS),
        num_train_epochs=epochs,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=max(64, batch_size),  # eval holds no gradients
        gradient_accumulation_steps=grad_accum,
        learning_rate=lr,
        weight_decay=weight_decay,
        warmup_ratio=warmup_ratio,
        lr_scheduler_type="linear",  # warm-up then linear decay, as BERT was tuned
        # torch's fused AdamW does the whole update in one kernel per parameter group. On
        # short sentences the per-tensor loop of the default adamw_torch costs more than half
        # of forward plus backward on a CPU (bench/RESULTS.md: +37-42% training samples/s,
        # same accuracy); fused exists for CPU and CUDA only, so other devices keep the loop.
        optim="adamw_torch_fused" if placement.device in ("cpu", "cuda") else "adamw_torch",
        eval_strategy=strategy,
        save_strategy=strategy,  # must match eval for the best checkpoint to be kept
        eval_steps=eval_steps or None,
        save_steps=eval_steps or None,
        save_total_limit=None,  # rotated by guard_checkpoints, only once a save is complete
        load_best_model_at_end=True,
        metric_for_best_model=metric,
        greater_is_better=True,
        group_by_length=True,  # batches of similar length pad less: the largest CPU speed-up
        logging_strategy="steps",
        logging_steps=0.05,  # a ratio of all steps: about 20 progress lines per run
        logging_nan_inf_filter=False,  # a NaN loss must show (and stop the run), not be hidden
        seed=seed,
        data_seed=seed,
        use_cpu=placement.device == "cpu",
        bf16=placement.precision == "bf16",
        fp16=placement.precision == "fp16",
        ddp_backend="gloo" if placement.device == "cpu" and world_size() > 1 else None,
        ddp_find_unused_parameters=False,
        dataloader_num_workers=0,  # data is tokenized in memory; workers only add start-up
        # our datasets hold only what the loss needs (distillation's cached teacher_logits
        # are not a forward() argument, so Trainer would drop them)
        remove_unused_columns=False,
        save_safetensors=True,
        report_to="none",
        disable_tqdm=not show_progress,
    )


def use_our_progress(trainer, progress) -> None:
    """Replace Trainer's dict printer (shown when tqdm is off) with our progress lines."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(progress)


def _checkpoints(work: Path) -> list[tuple[int, Path]]:
    folder = work / CHECKPOINTS
    found = []
    for ckpt in folder.glob("checkpoint-*") if folder.is_dir() else ():
        try:
            found.append((int(ckpt.name.split("-")[-1]), ckpt))
        except ValueError:
            continue
    return sorted(found)


def is_complete(ckpt: Path, marked_run: bool = True) -> bool:
    """True when the save finished: its marker is there and every file it lists is whole."""
    marker = ckpt / COMPLETE
    if marker.exists():
        try:
            files = json.loads(marker.read_text(encoding="utf-8"))["files"]
        except (ValueError, KeyError, TypeError, OSError):
            return False
        return all((ckpt / name).is_file() and (ckpt / name).stat().st_size == size
                   for name, size in files.items())
    if marked_run:
        return False
    # a run begun by an older edgetransfer: trainer_state.json is the Trainer's last write
    weights = any((ckpt / f).exists() for f in
                  ("model.safetensors", "adapter_model.safetensors", "pytorch_model.bin"))
    return weights and all((ckpt / f).exists() for f in ("trainer_state.json", "optimizer.pt",
                                                         "scheduler.pt"))


def newest_complete_checkpoint(work: Path) -> str | None:
    """The newest checkpoint whose save finished (its COMPLETE marker, written last).

    A checkpoint cut off mid-save has no marker, so it is skipped rather than loaded.
    """
    marked = (work / CHECKPOINTS / MARKED_RUN).exists()
    found = []
    for step, ckpt in _checkpoints(work):
        if is_complete(ckpt, marked):
            found.append((step, ckpt))
        else:
            log.warning("skipping incomplete checkpoint %s (cut off mid-save)", ckpt.name)
    return str(found[-1][1]) if found else None


def discard_incomplete(work: Path) -> None:
    """Remove checkpoints cut off mid-save (in the partial folder: nothing of the user's)."""
    import shutil

    marked = (work / CHECKPOINTS / MARKED_RUN).exists()
    for _, ckpt in _checkpoints(work):
        if not is_complete(ckpt, marked):
            shutil.rmtree(ckpt, ignore_errors=True)


def mark_complete(ckpt: Path) -> None:
    """Flush every file of a finished checkpoint to disk, then write its marker (last)."""
    from .artifacts import fsync_dir, fsync_file, write_json

    files = {}
    for f in sorted(ckpt.rglob("*")):
        if f.is_file() and f.name != COMPLETE:
            fsync_file(f)
            files[f.relative_to(ckpt).as_posix()] = f.stat().st_size
    fsync_dir(ckpt)
    write_json(ckpt / COMPLETE, {"files": files})


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


def guard_checkpoints(trainer, lr: float, precision: str | None = None) -> None:
    """Checkpoints that are whole or skipped; Ctrl-C after the save; NaN never saved.

    Wraps the Trainer's own save: refuses to save non-finite weights, holds Ctrl-C until
    the save is done, writes the COMPLETE marker last, then removes older checkpoints
    (all but the newest and the best): only after the new one is known to be complete.
    """
    import shutil

    real = trainer._save_checkpoint
    run_dir = Path(trainer.args.output_dir)

    def save(model, trial, *args, **kwargs):
        from .artifacts import uninterrupted

        check_finite(trainer.model, f"at step {trainer.state.global_step}, before a checkpoint "
                     f"save", lr, precision)
        with uninterrupted("saving a checkpoint"):
            result = real(model, trial, *args, **kwargs)
            if trainer.args.should_save:
                ckpt = run_dir / f"checkpoint-{trainer.state.global_step}"
                mark_complete(ckpt)
                best = trainer.state.best_model_checkpoint
                keep = {ckpt.name} | ({Path(best).name} if best else set())  # (by name: a
                # resumed run's recorded path may be relative to another working directory)
                for _, old in _checkpoints(run_dir.parent):
                    if old.name not in keep:
                        shutil.rmtree(old, ignore_errors=True)
        return result

    trainer._save_checkpoint = save


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


def progress_callback():
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
                log.info(
                    "eval at epoch %.2f: accuracy %.4f  macro-F1 %.4f  loss %.4f",
                    state.epoch or 0, metrics.get("eval_accuracy", math.nan),
                    metrics.get("eval_macro_f1", math.nan), metrics.get("eval_loss", math.nan),
                )

    return ProgressLog()


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def show_bars() -> bool:
    """tqdm bars for a person at a terminal; plain log lines for CI logs and files."""
    return sys.stderr.isatty() and logging.getLogger("edgetransfer").getEffectiveLevel() <= logging.INFO


def plot_history(history: list[dict], path: Path, title: str) -> bool:
    """Training loss and validation accuracy against epochs, as a PNG. False if nothing to draw."""
    train = [(h["epoch"], h["loss"]) for h in history if "loss" in h and h.get("epoch")]
    evals = [(h["epoch"], h["eval_accuracy"]) for h in history if "eval_accuracy" in h]
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
                           label="validation loss (cross-entropy)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss", color="tab:blue")
    if evals:
        ax2 = ax.twinx()
        handles += ax2.plot(*zip(*evals), "o-", color="tab:orange", label="validation accuracy")
        ax2.set_ylabel("validation accuracy", color="tab:orange")
        ax2.set_ylim(min(0.5, min(a for _, a in evals) - 0.05), 1.0)
        best_epoch, best = max(evals, key=lambda e: (e[1], -e[0]))  # first of the best
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


@dataclass
class Fitted:
    """What a training run leaves for the stage to save."""

    trainer: object
    evaluations: dict  # split -> metrics.report(...)
    train_metrics: dict


def fit(*, model, tokenizer, tokenized: dict, label_names: list[str], opts, lr: float, out,
        settings: dict, placement: Placement, trainer_class=None, trainer_kwargs=None,
        train_dataset=None, collator=None, started: float | None = None) -> Fitted:
    """Prepare the output folder, train with early stopping, evaluate validation (and test).

    Every process of a distributed run calls this; evaluation gathers predictions from all
    of them, and only the first process writes files.
    """
    import torch
    from transformers import DataCollatorWithPadding, EarlyStoppingCallback, Trainer

    from . import metrics
    from .artifacts import write_json

    started = started or time.perf_counter()  # the stage's start: wall time covers loading
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    args = training_arguments(
        out.work, placement, epochs=opts.epochs, batch_size=opts.batch_size, lr=lr,
        weight_decay=opts.weight_decay, warmup_ratio=opts.warmup_ratio, seed=opts.seed,
        eval_steps=opts.eval_steps, show_progress=show_bars(),
    )  # (this also joins the process group when started by torchrun/accelerate)
    # Every check has passed: only now is anything written, by the first process, while the
    # others wait and then find the same checkpoint to resume from.
    with args.main_process_first(desc="prepare the output folder"):
        if is_main_process():
            resuming = out.prepare()
            write_json(out.work / "settings.json", settings)
            aside = out.work.parent / f".{out.final.name}.checkpoints"
            if aside.is_dir():  # finish() was cut off after moving the checkpoints aside
                if resuming and not (out.work / CHECKPOINTS).exists():
                    os.replace(aside, out.work / CHECKPOINTS)
                else:
                    import shutil

                    shutil.rmtree(aside, ignore_errors=True)
            if resuming:
                newest_complete_checkpoint(out.work)  # (says which ones are skipped)
                discard_incomplete(out.work)
            else:
                (out.work / CHECKPOINTS).mkdir(exist_ok=True)
                (out.work / CHECKPOINTS / MARKED_RUN).write_text("")
    checkpoint = newest_complete_checkpoint(out.work) if out.resume else None
    progress = progress_callback()
    trainer = (trainer_class or Trainer)(
        model=model, args=args, train_dataset=train_dataset or tokenized["train"],
        eval_dataset=tokenized["validation"], processing_class=tokenizer,
        data_collator=collator or DataCollatorWithPadding(tokenizer),
        compute_metrics=metrics.trainer_metrics,
        callbacks=[EarlyStoppingCallback(opts.patience)] if opts.patience else [],
        **(trainer_kwargs or {}),
    )
    use_our_progress(trainer, progress)
    trainer.add_callback(nan_guard(lr, placement.precision))
    guard_checkpoints(trainer, lr, placement.precision)
    if checkpoint:
        log.info("resuming from %s", checkpoint)
    log.info("training on %s, %d process(es)", placement.describe(), world_size())
    if placement.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    result = trainer.train(resume_from_checkpoint=checkpoint)

    evaluations = {}
    for split in ("validation", "test"):
        if split in tokenized:
            pred = trainer.predict(tokenized[split], metric_key_prefix=split)
            logits = pred.predictions[0] if isinstance(pred.predictions, tuple) \
                else pred.predictions
            evaluations[split] = metrics.report(pred.label_ids, logits.argmax(-1), label_names)
    state = trainer.state
    train_metrics = {
        "wall_time_s": round(time.perf_counter() - started, 1),
        "train_runtime_s": round(result.metrics.get("train_runtime", 0.0), 1),
        "train_samples_per_second": round(result.metrics.get("train_samples_per_second", 0.0), 2),
        "epochs_run": round(state.epoch or 0, 2),
        "steps": state.global_step,
        "best_checkpoint": Path(state.best_model_checkpoint).name
        if state.best_model_checkpoint else None,
        "best_validation_accuracy": state.best_metric,
        "trainable_parameters": trainable,
        "device": placement.describe(),
        "processes": world_size(),
        "resumed_from": Path(checkpoint).name if checkpoint else None,
    }
    if placement.device == "cuda":
        train_metrics["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return Fitted(trainer=trainer, evaluations=evaluations, train_metrics=train_metrics)


def finish(out, fitted: Fitted, *, model, tokenizer, kind: str, settings: dict, metrics: dict,
           parents: dict, title: str, keep_checkpoints: bool) -> Path:
    """Save the model and its records into the partial folder, then move it into place.

    Ctrl-C waits until the folder is in place. The checkpoints are moved aside before the
    manifest is written and deleted only after the commit, so a crash at any point leaves
    either a resumable partial folder or a complete result.
    """
    import shutil

    from .artifacts import uninterrupted, write_json, write_manifest

    check_finite(model, "at the end of training", settings.get("learning_rate"))
    with uninterrupted("writing the result"):
        model.save_pretrained(out.work, safe_serialization=True)
        tokenizer.save_pretrained(out.work)
        write_json(out.work / "metrics.json", metrics)
        # the Trainer's log history survives --resume (it is saved in every checkpoint); the
        # callback's list would only hold what happened since the restart
        history = fitted.trainer.state.log_history
        write_json(out.work / "history.json", history)
        plot_history(history, out.work / "training.png", title)
        aside = out.work.parent / f".{out.final.name}.checkpoints"
        if not keep_checkpoints and (out.work / CHECKPOINTS).exists():
            shutil.rmtree(aside, ignore_errors=True)
            os.replace(out.work / CHECKPOINTS, aside)
        summary = {f"{k}_accuracy": v["accuracy"] for k, v in fitted.evaluations.items()}
        try:
            write_manifest(out.work, kind, settings,
                           summary | {"wall_time_s": fitted.train_metrics["wall_time_s"]},
                           parents,
                           packages=("torch", "transformers", "peft", "datasets", "accelerate"))
            final = out.commit()
        except BaseException:
            if aside.exists() and not (out.work / CHECKPOINTS).exists():
                os.replace(aside, out.work / CHECKPOINTS)  # still resumable
            raise
        shutil.rmtree(aside, ignore_errors=True)
    log.info("wrote %s  (%s; %.0fs)", final,
             ", ".join(f"{k} {v:.4f}" for k, v in summary.items()),
             fitted.train_metrics["wall_time_s"])
    return final
