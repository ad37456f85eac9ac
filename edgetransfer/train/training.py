"""The training run every training stage shares (finetune, distill), for any task.

transformers' Trainer does the loop, optimizer, schedule, mixed precision, checkpoints,
distribution (accelerate/torchrun) and early stopping; this module only fixes our defaults,
asks the task for its collator, predictions and metrics (its primary metric selects the
best checkpoint), picks the checkpoint to resume from, and saves the result.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..artifacts import uninterrupted, write_json, write_manifest
from ..errors import ConfigError
from .checkpoints import (
    CHECKPOINTS,
    MARKED_RUN,
    discard_incomplete,
    epoch_to_dataset,
    evaluate_the_last_step,
    guard_checkpoints,
    newest_complete_checkpoint,
    resume_in_order,
    save_every,
)
from .devices import Placement
from .guards import check_finite, nan_guard
from .length_order import OrderSampler, in_row_order, length_order
from .progress import plot_history, progress_callback, show_bars, use_our_progress

log = logging.getLogger(__name__)


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def leave_process_group() -> None:
    """Leave the process group torchrun/accelerate joined, once a command has succeeded.

    Without it gloo's worker threads outlive the interpreter's teardown, and a process whose
    work is done can still abort at exit ("terminate called without an active exception",
    SIGABRT; pytorch/pytorch#190489), failing the whole torchrun. Only on success: a process
    that failed mid-collective is left to torchrun, which stops the others.
    """
    dist = sys.modules.get("torch.distributed")  # (a command that never imported torch)
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# --precision -> accelerate's mixed_precision, and the variable that carries it
MIXED_PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}
PRECISION_VARIABLE = "ACCELERATE_MIXED_PRECISION"


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
    greater_is_better: bool = True,
    group_by_length: bool = True,
):
    from transformers import TrainingArguments

    # TrainingArguments passes bf16/fp16 on to accelerate through this variable and reads it
    # back as the default when neither is set: after a bf16 step in the same process
    # (`edgetransfer run`, the API) an fp32 one ran in bf16 autocast. Each run states its own.
    os.environ[PRECISION_VARIABLE] = MIXED_PRECISION[placement.precision]
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
        metric_for_best_model=metric,  # the task's primary metric
        greater_is_better=greater_is_better,
        # batches of similar length pad less: the largest CPU speed-up for texts (off for
        # inputs of one size: images)
        group_by_length=group_by_length,
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


def batch_statistics(model) -> int:
    """How many of the model's layers normalise by each training batch's own statistics:
    BatchNorm (any dimension, SyncBatchNorm too) not kept in eval by
    methods.keep_batchnorm_frozen."""
    from torch.nn.modules.batchnorm import _BatchNorm

    return sum(1 for m in model.modules()
               if isinstance(m, _BatchNorm) and not getattr(type(m), "_keeps_eval", False))


def lone_last_example(model, examples: int, batch_size: int, opts=None) -> bool:
    """Whether each epoch must leave out its last example, which would be a batch of one;
    refuses (ConfigError) a run whose every batch would be one example.

    Why: a BatchNorm layer in training mode normalises each batch by that batch's own mean
    and variance over the examples (and positions). One example has none across the batch:
    where a feature map is 1x1 torch stops ("Expected more than 1 value per channel when
    training"), elsewhere the layer trains on one image's statistics and pulls its running
    ones after them. 9 images in batches of 4 end each epoch on such a batch. So that one
    example is left out of the epoch (transformers' dataloader_drop_last, for training only:
    evaluation keeps every row): the sampler shuffles every epoch, so a different one is left
    out each time and over several epochs every example is trained on. Merging it into the
    batch before would need a batch sampler of our own under accelerate's sharding, for the
    same effect; dropping it silently would hide a lost example, so it is said once. A
    remainder of 2 or more is a valid batch and is kept. Several processes: the rule is
    judged on the whole set. Texts' models have no BatchNorm: nothing changes for them.
    """
    layers = batch_statistics(model)
    if not layers:
        return False
    why = (f"the model's {layers} BatchNorm layer(s) normalise each training batch by its own "
           f"mean and variance, which a batch of one example does not have")
    if examples == 1:
        # (finetune's --method head keeps every BatchNorm frozen, so it is not one of these)
        other = ", or --method head (BatchNorm frozen)" if hasattr(opts, "method") else ""
        raise ConfigError(f"training on 1 example: {why}; give at least 2 training "
                          f"examples{other}")
    if batch_size == 1:
        raise ConfigError(f"--batch-size 1: {why}; use --batch-size 2 or more")
    if examples % batch_size != 1:
        return False
    log.warning("%d training examples in batches of %d leave a last batch of one, and %s: "
                "each epoch leaves its last example out (a different one each epoch, the "
                "order is shuffled)", examples, batch_size, why)
    return True


def _train_drop_last(trainer) -> None:
    """The Trainer's training batches drop an incomplete last batch; evaluation keeps every
    row (dataloader_drop_last would drop eval rows too)."""
    make = trainer.get_train_dataloader

    def get_train_dataloader():
        trainer.args.dataloader_drop_last = True
        try:
            return make()
        finally:
            trainer.args.dataloader_drop_last = False

    trainer.get_train_dataloader = get_train_dataloader


@dataclass
class Fitted:
    """What a training run leaves for the stage to save."""

    trainer: object
    evaluations: dict  # split -> metrics.report(...)
    train_metrics: dict
    floor: dict | None = None  # measure/floor.py's verdict on validation


def index_of(task, dataset) -> dict:
    """The columns that take a dataset's rows back to its examples (task.per_example)."""
    return {k: dataset[k] for k in task.index_columns}


def per_example(task, logits, labels, index) -> tuple:
    """(labels, predictions) per example, from per-row logits and labels: the primary
    head's (the task's first output; the first of the model's label arguments)."""
    # (the Trainer gives a tuple where the model has several outputs, in its order, which
    # Task.outputs follows; and where it takes several labels, in its forward's order)
    if isinstance(logits, tuple):  # (a joint task scores every head, by name)
        logits = dict(zip(task.outputs, logits)) if task.joint else logits[0]
    if isinstance(labels, tuple):
        labels = labels[0]
    logits, labels = task.per_example(logits, index), task.per_example(labels, index)
    return labels, task.predictions(logits)


def scored(task, logits, labels, index, label_names: list[str]) -> dict:
    """The task's report of per-row logits and labels, taken back to examples first."""
    return task.metrics(*per_example(task, logits, labels, index), label_names)


def eval_order(dataset) -> list[int] | None:
    """The order the Trainer's evaluation takes `dataset`'s rows in: by length where rows
    carry token ids (train/length_order.py), in one process; None: the set's order (images;
    a distributed evaluation shards and gathers batches in the set's order)."""
    return None if world_size() > 1 else length_order(dataset)


def evaluate_in_eval_order(trainer) -> None:
    """The Trainer's evaluation and predict() take each set's rows in eval_order."""
    # predictions are read against the eval set's rows by position (task.per_example maps a
    # tagger's windows back to sentences): compute_metrics and predicted() undo the order
    # (the Trainer's group_by_length would shuffle eval batches, which nothing could undo)
    from torch.utils.data import SequentialSampler

    trainer._get_eval_sampler = lambda dataset: (
        SequentialSampler(dataset) if (order := eval_order(dataset)) is None
        else OrderSampler(order))


def compute_metrics(task, label_names: list[str], dataset):
    """The Trainer's `compute_metrics` over `dataset` (its eval set, taken in
    eval_order): the task's predictions and summary figures."""
    index, order = index_of(task, dataset), eval_order(dataset)

    def compute(eval_pred) -> dict[str, float]:
        logits, labels = (in_row_order(v, order)
                          for v in (eval_pred.predictions, eval_pred.label_ids))
        report = scored(task, logits, labels, index, label_names)
        return {k: v for k, v in report.items() if isinstance(v, (int, float)) and k != "n"}

    return compute


def predicted(trainer, task, dataset, split: str) -> tuple:
    """(labels, predictions) per example of one split, gathered from every process."""
    # the report is computed once, by the caller: the Trainer's compute_metrics (bound to
    # the validation set's index) would score the same predictions again
    bound, trainer.compute_metrics = trainer.compute_metrics, None
    try:
        pred = trainer.predict(dataset, metric_key_prefix=split)
    finally:
        trainer.compute_metrics = bound
    order = eval_order(dataset)
    return per_example(task, in_row_order(pred.predictions, order),
                       in_row_order(pred.label_ids, order), index_of(task, dataset))


def evaluate(task, labels, predictions, split: str, label_names: list[str]) -> dict:
    """The task's full report on one split's per-example labels and predictions."""
    report = task.metrics(labels, predictions, label_names)
    if task.render is not None and is_main_process():
        log.info("%s:\n%s", split, task.render(report))
    return report


def judge_floor(trainer, task, labels, predictions, label_names: list[str], opts, lr: float,
                examples: int, teacher_floor: dict | None = None) -> dict | None:
    """The floor verdict on the validation split's labels and predictions
    (measure/floor.py), with the likely causes from this run's own figures where it is
    degenerate or scored under the bar; None for a task without a floor."""
    if task.floor is None:
        return None
    from ..measure import floor

    record = floor.judge(task.floor(labels, predictions, label_names))
    if floor.worrying(record):  # (why, and what to change)
        state = trainer.state
        record["causes"] = floor.causes(
            steps=state.global_step, examples=examples, epochs=round(state.epoch or 0, 2),
            batch_size=opts.batch_size * world_size(), lr=lr,
            losses=floor.losses_of(state.log_history), method=getattr(opts, "method", None),
            freeze_layers=getattr(opts, "freeze_layers", 0), teacher=teacher_floor)
    return record


def _leaves_precision_variable(train):
    """`train` (fit), the process's environment left as it found it: the precision
    variable training_arguments sets would otherwise hold for whatever the process runs
    next (a caller's own Trainer after an API call)."""
    @functools.wraps(train)
    def fit(**kwargs) -> Fitted:
        prior = os.environ.get(PRECISION_VARIABLE)
        try:
            return train(**kwargs)
        finally:
            if prior is None:
                os.environ.pop(PRECISION_VARIABLE, None)
            else:
                os.environ[PRECISION_VARIABLE] = prior

    return fit


@_leaves_precision_variable
def fit(*, model, tokenizer, task, tokenized: dict, label_names: list[str], opts, lr: float,
        out, settings: dict, placement: Placement, trainer_class=None, trainer_kwargs=None,
        train_dataset=None, started: float | None = None,
        teacher_floor: dict | None = None, collator=None) -> Fitted:
    """Prepare the output folder, train with early stopping, evaluate validation (and test)
    (`collator`: the Trainer's, else the task's for `tokenizer`).

    Every process of a distributed run calls this; evaluation gathers predictions from all
    of them, and only the first process writes files.
    """
    import torch
    from transformers import EarlyStoppingCallback, Trainer

    started = started or time.perf_counter()  # the stage's start: wall time covers loading
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    # (before anything is written: a run that cannot train is refused here)
    drop_lone = lone_last_example(model, len(train_dataset or tokenized["train"]),
                                  opts.batch_size, opts)
    args = training_arguments(
        out.work, placement, epochs=opts.epochs, batch_size=opts.batch_size, lr=lr,
        weight_decay=opts.weight_decay, warmup_ratio=opts.warmup_ratio, seed=opts.seed,
        eval_steps=opts.eval_steps, show_progress=show_bars(), metric=task.primary,
        greater_is_better=task.greater_is_better, group_by_length=task.variable_length,
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
    progress = progress_callback(task.primary)
    stopper = EarlyStoppingCallback(opts.patience) if opts.patience else None
    trainer = (trainer_class or Trainer)(
        model=model, args=args, train_dataset=train_dataset or tokenized["train"],
        eval_dataset=tokenized["validation"], processing_class=tokenizer,
        data_collator=collator or task.collator(tokenizer),
        compute_metrics=compute_metrics(task, label_names, tokenized["validation"]),
        callbacks=[stopper] if stopper else [],
        **(trainer_kwargs or {}),
    )
    evaluate_in_eval_order(trainer)
    if drop_lone:
        _train_drop_last(trainer)
    use_our_progress(trainer, progress)
    trainer.add_callback(nan_guard(lr, placement.precision))
    trainer.add_callback(evaluate_the_last_step())
    if opts.checkpoint_minutes:
        trainer.add_callback(save_every(opts.checkpoint_minutes))
    guard_checkpoints(trainer, lr, placement.precision)
    resume_in_order(trainer, opts.seed)
    epoch_to_dataset(trainer)
    if checkpoint:
        log.info("resuming from %s", checkpoint)
    log.info("training on %s, %d process(es)", placement.describe(), world_size())
    if placement.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    result = trainer.train(resume_from_checkpoint=checkpoint)

    evaluations, floor = {}, None
    for split in ("validation", "test"):
        if split not in tokenized:
            continue
        labels, predictions = predicted(trainer, task, tokenized[split], split)
        evaluations[split] = evaluate(task, labels, predictions, split, label_names)
        if split == "validation":  # (the split the best checkpoint was chosen on)
            floor = judge_floor(trainer, task, labels, predictions, label_names, opts, lr,
                                len(train_dataset or tokenized["train"]), teacher_floor)
    state = trainer.state
    train_metrics = {
        "wall_time_s": round(time.perf_counter() - started, 1),
        "train_runtime_s": round(result.metrics.get("train_runtime", 0.0), 1),
        "train_samples_per_second": round(result.metrics.get("train_samples_per_second", 0.0), 2),
        "epochs_run": round(state.epoch or 0, 2),
        "steps": state.global_step,
        "best_checkpoint": Path(state.best_model_checkpoint).name
        if state.best_model_checkpoint else None,
        f"best_validation_{task.primary}": state.best_metric,
        "trainable_parameters": trainable,
        "device": placement.describe(),
        "processes": world_size(),
        "resumed_from": Path(checkpoint).name if checkpoint else None,
    }
    if stopper and stopper.early_stopping_patience_counter >= opts.patience:
        # (said, not only seen in metrics.json's epochs_run: a long schedule cut at half,
        # its learning rate still high, is a teacher other than the one asked for)
        log.warning("early stopping: no better validation %s in %d evaluations; stopped at "
                    "epoch %.2f of %g, the best at %s (--patience 0 trains every epoch)",
                    task.primary, opts.patience, train_metrics["epochs_run"],
                    args.num_train_epochs, train_metrics["best_checkpoint"])
    if placement.device == "cuda":
        train_metrics["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return Fitted(trainer=trainer, evaluations=evaluations, train_metrics=train_metrics,
                  floor=floor)


def finish(out, fitted: Fitted, *, model, tokenizer, task, kind: str, settings: dict,
           metrics: dict, parents: dict, title: str, keep_checkpoints: bool) -> Path:
    """Save the model and its records into the partial folder, then move it into place.

    Ctrl-C waits until the folder is in place. The checkpoints are moved aside before the
    manifest is written and deleted only after the commit, so a crash at any point leaves
    either a resumable partial folder or a complete result.
    """
    import shutil

    check_finite(model, "at the end of training", settings.get("learning_rate"))
    with uninterrupted("writing the result"):
        model.save_pretrained(out.work, safe_serialization=True)
        tokenizer.save_pretrained(out.work)
        write_json(out.work / "metrics.json",
                   metrics | ({"floor": fitted.floor} if fitted.floor is not None else {}))
        # the Trainer's log history survives --resume (it is saved in every checkpoint); the
        # callback's list would only hold what happened since the restart
        history = fitted.trainer.state.log_history
        write_json(out.work / "history.json", history)
        plot_history(history, out.work / "training.png", title, task.primary,
                     task.greater_is_better)
        aside = out.work.parent / f".{out.final.name}.checkpoints"
        if not keep_checkpoints and (out.work / CHECKPOINTS).exists():
            shutil.rmtree(aside, ignore_errors=True)
            os.replace(out.work / CHECKPOINTS, aside)
        summary = {f"{k}_{task.primary}": v[task.primary]
                   for k, v in fitted.evaluations.items()}
        # (export, verify and package read the verdict here: measure/floor.py)
        floor = {"floor": fitted.floor} if fitted.floor is not None else {}
        try:
            write_manifest(out.work, kind, settings,
                           summary | {"wall_time_s": fitted.train_metrics["wall_time_s"]}
                           | floor,
                           parents, task=task.name,
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
    if fitted.floor is not None:  # (last, where it is seen)
        from ..measure import floor as floors

        said = floors.message(str(final), fitted.floor)
        (log.warning if floors.worrying(fitted.floor) else log.info)(said)
    return final
