"""Trainer checkpoints that are whole or skipped: markers written last, rotation after.

A checkpoint cut off mid-save (kill -9, a full disk, a lost machine) has no COMPLETE marker
and is never resumed from; older checkpoints are removed only once a newer one is complete.
The last step is evaluated, so that it can be the best. transformers writes the
checkpoints; this module only guards them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import EdgeTransferError
from .guards import check_finite

log = logging.getLogger(__name__)
CHECKPOINTS = "checkpoints"
# Written last into each checkpoint, after every file in it is flushed to disk: a checkpoint
# without it was cut off mid-save (kill -9, a full disk, a lost machine) and is never loaded.
COMPLETE = "checkpoint.complete"
# In checkpoints/ of every run that writes COMPLETE markers; runs begun by an older
# edgetransfer lack it, and their checkpoints are judged by the files they hold.
MARKED_RUN = ".complete-markers"


def checkpoints(work: Path) -> list[tuple[int, Path]]:
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
        from ..untrusted import read_json

        try:
            files = read_json(marker)["files"]
        except (EdgeTransferError, KeyError):
            return False
        # (a marker is ours, but a folder handed to --resume may not be: it names files of
        # its own checkpoint only, never one out of it)
        return isinstance(files, dict) and all(
            isinstance(name, str) and _own(ckpt, name) and (ckpt / name).is_file()
            and (ckpt / name).stat().st_size == size for name, size in files.items())
    if marked_run:
        return False
    # a run begun by an older edgetransfer: trainer_state.json is the Trainer's last write
    weights = any((ckpt / f).exists() for f in
                  ("model.safetensors", "adapter_model.safetensors", "pytorch_model.bin"))
    return weights and all((ckpt / f).exists() for f in ("trainer_state.json", "optimizer.pt",
                                                         "scheduler.pt"))


def _own(ckpt: Path, name: str) -> bool:
    from ..bundle.runtime.predict import BundleError, beside

    try:
        beside(ckpt, name)
        return True
    except BundleError:
        return False


def newest_complete_checkpoint(work: Path) -> str | None:
    """The newest checkpoint whose save finished (its COMPLETE marker, written last).

    A checkpoint cut off mid-save has no marker, so it is skipped rather than loaded.
    """
    marked = (work / CHECKPOINTS / MARKED_RUN).exists()
    found = []
    for step, ckpt in checkpoints(work):
        if is_complete(ckpt, marked):
            found.append((step, ckpt))
        else:
            log.warning("skipping incomplete checkpoint %s (cut off mid-save)", ckpt.name)
    return str(found[-1][1]) if found else None


def discard_incomplete(work: Path) -> None:
    """Remove checkpoints cut off mid-save (in the partial folder: nothing of the user's)."""
    import shutil

    marked = (work / CHECKPOINTS / MARKED_RUN).exists()
    for _, ckpt in checkpoints(work):
        if not is_complete(ckpt, marked):
            shutil.rmtree(ckpt, ignore_errors=True)


def mark_complete(ckpt: Path) -> None:
    """Flush every file of a finished checkpoint to disk, then write its marker (last)."""
    from ..artifacts import fsync_dir, fsync_file, write_json

    files = {}
    for f in sorted(ckpt.rglob("*")):
        if f.is_file() and f.name != COMPLETE:
            fsync_file(f)
            files[f.relative_to(ckpt).as_posix()] = f.stat().st_size
    fsync_dir(ckpt)
    write_json(ckpt / COMPLETE, {"files": files})


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
        from ..artifacts import uninterrupted

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
                for _, old in checkpoints(run_dir.parent):
                    if old.name not in keep:
                        shutil.rmtree(old, ignore_errors=True)
        return result

    trainer._save_checkpoint = save


def evaluate_the_last_step():
    """A callback: with an evaluation every N steps, the last step is evaluated too.

    transformers saves the last step but evaluates it only where N divides the run's steps;
    unevaluated, it can never be the best checkpoint, and with the best one loaded at the
    end every step after the last evaluation is thrown away (a quarter of the 12-layer
    CoNLL-2003 teacher's 1,314 steps at N = 500). Evaluation by epoch already ends on the
    last step.
    """
    from transformers import TrainerCallback
    from transformers.trainer_utils import IntervalStrategy

    class LastStep(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if (args.eval_strategy == IntervalStrategy.STEPS
                    and state.global_step >= state.max_steps
                    and state.global_step % state.eval_steps):
                control.should_evaluate = True
            return control

    return LastStep()


def save_every(minutes: float):
    """A callback: a checkpoint to resume from once `minutes` of training have passed since
    the last save, whatever the evaluation interval.

    Evaluation by epoch saves only at each epoch's end: an hour or more of a 12-layer
    teacher, or of a student over an augmented transfer set, on a 2-core machine, all lost
    when the machine goes. A checkpoint saved here is not evaluated, so it is never the
    best; the guard's rotation (guard_checkpoints: the newest and the best kept) removes it
    once a later one is complete. Every process saves at the same step (the Trainer's save
    waits for all of them): the first process's clock decides, passed to the others.
    """
    import time

    from transformers import TrainerCallback

    seconds = minutes * 60

    class SaveEvery(TrainerCallback):
        def __init__(self):
            self.since = time.monotonic()

        def on_train_begin(self, args, state, control, **kwargs):
            self.since = time.monotonic()  # (a resumed run counts from its own start)

        def on_step_end(self, args, state, control, **kwargs):
            due = _agreed(time.monotonic() - self.since >= seconds, args.device)
            # (not where the Trainer saves after this step anyway: an epoch's end under
            # evaluation by epoch, the last step)
            ends = (state.global_step >= state.max_steps
                    or (args.save_strategy == "epoch" and float(state.epoch).is_integer()))
            if due and not control.should_save and not ends:
                log.info("step %d: %s minutes since the last save, a checkpoint to resume from",
                         state.global_step, f"{minutes:g}")
                control.should_save = True
            return control

        def on_save(self, args, state, control, **kwargs):
            self.since = time.monotonic()

    return SaveEvery()


def _agreed(flag: bool, device) -> bool:
    """`flag` as the first process has it, in every process (itself where there is one)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    import torch

    value = torch.tensor([int(flag)], device=device)
    dist.broadcast(value, src=0)
    return bool(value.item())


def resume_in_order(trainer, seed: int) -> None:
    """Text tasks' training batches (grouped by length: LengthGroupedSampler) shuffled
    from (seed, epoch), not from torch's global generator, so a run resumed in mid-epoch
    skips the batches of the very order it was cut off in.

    transformers (4.57) draws a resumed epoch's order before it restores the checkpoint's
    random state, so with the global generator the resumed epoch was another order: some
    rows taught twice in it and others not at all, the more so with a checkpoint every
    --checkpoint-minutes. (Images' RandomSampler is made seedable by accelerate already.)
    """
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler

    make = trainer._get_train_sampler

    def sampler(*args, **kwargs):
        got = make(*args, **kwargs)
        if type(got) is LengthGroupedSampler:
            got.generator = torch.Generator().manual_seed(seed)
            # (accelerate's loader calls it at each epoch's start, before any batch)
            got.set_epoch = lambda epoch: got.generator.manual_seed(seed + epoch)
        return got

    trainer._get_train_sampler = sampler


def epoch_to_dataset(trainer) -> None:
    """A training set that draws by epoch (the image augmenter: by seed, epoch and row) is
    told each epoch as it begins: each epoch draws new pictures, in a run over several
    processes too, and a run resumed in mid-epoch draws the same pictures as one that was
    never cut off.

    transformers loads the checkpoint's state (its epoch) before the first
    `on_epoch_begin`, and a finished epoch's count is exact (epoch + steps/steps), so the
    floor of `state.epoch` is the epoch the loop is in. (accelerate's loader calls a
    dataset's `set_epoch` too, but not in a run over several processes: there the
    sampler's own takes its place.)
    """
    import math

    from transformers import TrainerCallback

    dataset = trainer.train_dataset
    if not hasattr(dataset, "set_epoch"):
        return

    class EpochToDataset(TrainerCallback):
        def on_epoch_begin(self, args, state, control, **kwargs):
            dataset.set_epoch(math.floor(state.epoch or 0))

    trainer.add_callback(EpochToDataset())
