"""Time to accuracy: `edgetransfer finetune` (its defaults) against the loop tutorials teach.

Both sides fine-tune every weight of the bundled minilm-l6 on the same training file, with
the same seed, batch 16, peak learning rate 1e-4 and thread count, evaluate on the same
validation rows every `eval_steps` optimizer steps, and stop at the first evaluation whose
accuracy reaches `target`. The clock is training time: it starts when the first batch is
about to be drawn (model loaded, data tokenized) and pauses during evaluations and
checkpoint saves, so neither side is charged for how it evaluates or saves.

- reference: `reference_loop`, a plain hand-written PyTorch loop, deliberately so: it is
  the baseline the Hugging Face course and most tutorials teach (tokenize with
  padding="max_length", max_length=128; a shuffled DataLoader of 16; torch.optim.AdamW;
  a linear decay to zero over the planned steps, no warm-up; no length grouping).
- edgetransfer: `edgetransfer.stages.finetune.run` with --method full and its defaults
  (dynamic padding, group_by_length, warm-up then linear decay), run in this process so
  that a callback can read the clock at each evaluation; patience is set to 0 so early
  stopping cannot end the run before the target (it changes nothing before that).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("bench.tta")
MAX_LENGTH = 128


def read_tsv(path: Path) -> tuple[list[str], list[int]]:
    rows = [line.split("\t") for line in Path(path).read_text(encoding="utf-8").splitlines()[1:]]
    return [r[0] for r in rows], [int(r[1]) for r in rows]


class Clock:
    """Training time with pauses; the record of every evaluation."""

    def __init__(self, target: float):
        self.target, self.evals, self.reached = target, [], None
        self.started = self.paused_at = None
        self.paused_total = 0.0

    def start(self):
        self.started = time.perf_counter()

    def pause(self):
        self.paused_at = time.perf_counter()

    def resume(self):
        if self.paused_at is not None:
            self.paused_total += time.perf_counter() - self.paused_at
            self.paused_at = None

    def training_s(self) -> float:
        now = self.paused_at if self.paused_at is not None else time.perf_counter()
        return now - self.started - self.paused_total

    def evaluated(self, step: int, accuracy: float) -> bool:
        """Record an evaluation (taken while paused); True once the target is reached."""
        t = self.training_s()
        self.evals.append({"step": step, "accuracy": round(float(accuracy), 4),
                           "training_s": round(t, 2)})
        log.info("  step %d: accuracy %.4f after %.1f s of training", step, accuracy, t)
        if self.reached is None and accuracy >= self.target:
            self.reached = {"step": step, "accuracy": round(float(accuracy), 4),
                            "training_s": round(t, 2)}
        return self.reached is not None

    def result(self, wall_s: float, steps: int, batch: int) -> dict:
        last = self.evals[-1] if self.evals else None
        return {"target": self.target, "reached": self.reached, "evaluations": self.evals,
                "steps_run": steps, "wall_s": round(wall_s, 1),
                # up to the last evaluation: the training clock is read there
                "train_samples_per_s": round(last["step"] * batch / last["training_s"], 2)
                if last else None}


def reference_loop(model_dir: Path, train: Path, validation: Path, *, target: float,
                   eval_steps: int, epochs: int, seed: int, lr: float = 1e-4,
                   batch_size: int = 16) -> dict:
    """The tutorial loop. Kept plain on purpose: it is the baseline being measured."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_scheduler

    wall = time.perf_counter()
    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)
    texts, labels = read_tsv(train)
    enc = tok(texts, padding="max_length", truncation=True, max_length=MAX_LENGTH,
              return_tensors="pt")
    data = TensorDataset(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"],
                         torch.tensor(labels))
    loader = DataLoader(data, batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    total = epochs * len(loader)
    scheduler = get_scheduler("linear", optimizer, num_warmup_steps=0,
                              num_training_steps=total)
    val_texts, val_labels = read_tsv(validation)

    clock = Clock(target)
    step = 0
    model.train()
    clock.start()
    for _ in range(epochs):
        for ids, mask, types, y in loader:
            out = model(input_ids=ids, attention_mask=mask, token_type_ids=types, labels=y)
            out.loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            if step % eval_steps == 0:
                clock.pause()
                done = clock.evaluated(step, _accuracy(model, tok, val_texts, val_labels))
                model.train()
                clock.resume()
                if done:
                    return clock.result(time.perf_counter() - wall, step, batch_size)
    return clock.result(time.perf_counter() - wall, step, batch_size)


def _accuracy(model, tok, texts, labels, batch: int = 64) -> float:
    """Validation accuracy (not timed; dynamic padding over length-sorted rows: the padding
    does not change the predictions, only how long evaluating takes)."""
    import torch

    model.eval()
    order = np.argsort([len(t) for t in texts])
    right = 0
    with torch.inference_mode():
        for s in range(0, len(order), batch):
            idx = order[s:s + batch]
            enc = tok([texts[i] for i in idx], padding=True, truncation=True,
                      max_length=MAX_LENGTH, return_tensors="pt")
            pred = model(**enc).logits.argmax(-1).numpy()
            right += int((pred == np.array([labels[i] for i in idx])).sum())
    return right / len(texts)


def edgetransfer_finetune(train: Path, validation: Path, out: Path, *, target: float,
                          eval_steps: int, epochs: int, seed: int) -> dict:
    """`edgetransfer finetune --method full` with its defaults, clocked by a callback."""
    from edgetransfer.stages import finetune
    from edgetransfer.train import training

    clock = Clock(target)
    original = training.progress_callback

    def clocked_progress(*args, **kwargs):
        base = original(*args, **kwargs)

        class Clocked(type(base)):
            def on_train_begin(self, args, state, control, **kw):
                super().on_train_begin(args, state, control, **kw)
                clock.start()

            def on_step_begin(self, args, state, control, **kw):
                clock.resume()

            def on_step_end(self, args, state, control, **kw):
                if control.should_evaluate or control.should_save:
                    clock.pause()  # (DefaultFlowCallback, first in the list, has set them)

            def on_evaluate(self, args, state, control, metrics=None, **kw):
                super().on_evaluate(args, state, control, metrics=metrics, **kw)
                if metrics and "eval_accuracy" in metrics:
                    if clock.evaluated(state.global_step, metrics["eval_accuracy"]):
                        control.should_training_stop = True

        return Clocked()

    wall = time.perf_counter()
    training.progress_callback = clocked_progress
    try:
        cfg = finetune.FinetuneConfig(
            model="minilm-l6", method="full", train=str(train), validation=str(validation),
            epochs=epochs, eval_steps=eval_steps, patience=0, seed=seed, device="cpu",
            out=out, overwrite=True)
        final = finetune.run(cfg)
    finally:
        training.progress_callback = original
    import json

    steps = json.loads((final / "metrics.json").read_text())["training"]["steps"]
    return clock.result(time.perf_counter() - wall, steps, cfg.batch_size) | {
        "lr": cfg.learning_rate, "defaults": "dynamic padding, group_by_length, warm-up "
        f"{cfg.warmup_ratio:.0%} then linear decay, weight decay {cfg.weight_decay}"}


def compare(train: Path, validation: Path, work: Path, *, target: float, eval_steps: int,
            epochs: int, seed: int, threads: int) -> dict:
    """Both sides, one after the other in this process (edgetransfer first)."""
    import torch

    from edgetransfer.modeling.backbones import builtin_path

    torch.set_num_threads(threads)
    log.info("time to accuracy %.2f: edgetransfer finetune (full, defaults)", target)
    ours = edgetransfer_finetune(train, validation, work / "tta-edgetransfer", target=target,
                                 eval_steps=eval_steps, epochs=epochs, seed=seed)
    log.info("time to accuracy %.2f: the tutorial loop (pad to 128, plain AdamW)", target)
    ref = reference_loop(builtin_path("minilm-l6"), train, validation, target=target,
                         eval_steps=eval_steps, epochs=epochs, seed=seed)
    speedup = None
    if ours["reached"] and ref["reached"]:
        speedup = round(ref["reached"]["training_s"] / ours["reached"]["training_s"], 2)
    per_step = None
    if ours["train_samples_per_s"] and ref["train_samples_per_s"]:
        per_step = round(ours["train_samples_per_s"] / ref["train_samples_per_s"], 2)
    return {"target": target, "eval_steps": eval_steps, "max_epochs": epochs, "seed": seed,
            "threads": threads, "edgetransfer": ours, "reference": ref,
            "speedup": speedup, "throughput_ratio": per_step}
