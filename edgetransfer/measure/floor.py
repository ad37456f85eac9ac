"""The floor under every trained model: does it score above what a model that learned nothing
scores on the same validation rows? The rule lives here, once.

finetune and distill judge their result with `judge()` after training, warn when it is not
clearly above the floor, and record the verdict as "floor" in metrics.json and artifact.json
(export carries it into its own artifact.json); export, verify and package read it with
`check()` and refuse a model whose verdict is "degenerate" unless --allow-degenerate.

The rule, on the primary metric over the validation split:

- the baseline is what a label-blind model scores there: always the most frequent class
  (classification: accuracy = that class's share), or tagging every word O (entities: F1 0);
- the bar is the baseline plus a tenth of the way from it to a perfect score (LIFT): a model
  that removes fewer than a tenth of the baseline's errors has learned nothing worth a
  bundle, and on a balanced binary task 0.5 exactly (a coin) can never sit above a bar of
  0.5 alone;
- the metric gets a 95% interval from the validation rows (Wilson for accuracy, a
  proportion; entity F1 from the intervals of precision and recall, each at 97.5%, since F1
  rises with both), so the verdict says what these rows can tell and a small validation set
  is not enough to condemn a model:
  - "degenerate": even the interval's top is under the bar, or the model predicts one class
    (one tag) for every row when a model predicting with the labels' own frequencies would
    do that with a probability under ALPHA (so three rows all called "positive" are not
    evidence, thirty are);
  - "unclear": the bar is inside the interval: too few validation rows to tell; a warning
    with the likely causes when the value is under the bar (a note when above), never a
    refusal;
  - "ok": the interval's bottom clears the bar.

A task states its evidence (`Task.floor`: labels, predictions, names -> Evidence); a task
without one is not judged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelError

log = logging.getLogger(__name__)

LIFT = 0.1  # the share of the baseline's errors a model must remove to be above the floor
ALPHA = 0.05  # the chance below which "one class for everything" is not bad luck
CONFIDENCE = 0.95  # of the metric's interval
DEGENERATE, UNCLEAR, OK = "degenerate", "unclear", "ok"
FLAG = "--allow-degenerate"  # (options.FloorOption's field, as the command line spells it)


@dataclass(frozen=True)
class Evidence:
    """What a task's validation figures say about its floor."""

    metric: str  # the primary metric's name ("accuracy", "entity_f1")
    value: float
    interval: tuple[float, float]  # CONFIDENCE interval of the metric
    baseline: float  # what a label-blind model scores on these rows
    baseline_is: str  # that model, in words: "always 'positive'"
    rows: int  # validation examples
    unit: str  # what a row is: "rows", "sentences"
    single: str | None  # the one class (tag) predicted for everything, if so
    single_chance: float  # how likely that is for a model predicting as often as the labels
    single_over: str = "rows"  # what the single class was predicted for ("words")


def wilson(successes: int, trials: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of a proportion (scipy's): fair at 0 and 1 and at few
    trials, where the normal approximation is not; (0, 1) when there are no trials."""
    if trials <= 0:
        return 0.0, 1.0
    from scipy.stats import binomtest

    ci = binomtest(int(successes), int(trials)).proportion_ci(confidence_level=confidence,
                                                              method="wilson")
    return float(ci.low), float(ci.high)


def one_class_chance(shares, n: int) -> float:
    """How likely n predictions are all one class for a model that predicts class c with the
    labels' share p_c, row by row: the sum of p_c ** n."""
    return float(sum(float(p) ** n for p in shares))


def classes(labels, predictions, label_names: list[str]) -> Evidence:
    """Evidence for one label per example (text and image classification): accuracy against
    always predicting the validation split's most frequent class."""
    import numpy as np

    y, p = np.asarray(labels, dtype=np.int64), np.asarray(predictions, dtype=np.int64)
    n = len(y)
    counts = np.bincount(y, minlength=len(label_names))
    top = int(counts.argmax())
    predicted = np.unique(p)
    single = label_names[int(predicted[0])] if len(predicted) == 1 else None
    return Evidence(
        metric="accuracy", value=float((y == p).mean()) if n else 0.0,
        interval=wilson(int((y == p).sum()), n), baseline=float(counts[top] / max(n, 1)),
        baseline_is=f"always {label_names[top]!r}", rows=n, unit="rows", single=single,
        single_chance=one_class_chance(counts[counts > 0] / max(n, 1), n))


def f1_interval(tp: int, predicted: int, gold: int) -> tuple[float, float]:
    """Entity F1's interval: F1 rises with precision (tp/predicted) and recall (tp/gold), so
    the F1 of their interval ends bounds it; each at 97.5% (Bonferroni) for 95% jointly. No
    predicted entity: precision is unknown, (0, 1)."""
    each = 1 - (1 - CONFIDENCE) / 2
    (p_lo, p_hi), (r_lo, r_hi) = wilson(tp, predicted, each), wilson(tp, gold, each)

    def f1(p, r):
        return 2 * p * r / (p + r) if p + r > 0 else 0.0

    return f1(p_lo, r_lo), f1(p_hi, r_hi)


def judge(evidence: Evidence) -> dict:
    """The verdict on `evidence`, JSON-ready: verdict, why (one sentence), the figures."""
    e = evidence
    bar = e.baseline + LIFT * (1 - e.baseline)
    lo, hi = e.interval
    shown = (f"validation {e.metric} {e.value:.4f} on {e.rows} {e.unit} (95% interval "
             f"{lo:.3f}-{hi:.3f}); {e.baseline_is} scores {e.baseline:.4f}, the bar is "
             f"{bar:.4f}")
    if e.single is not None and e.single_chance < ALPHA:
        verdict = DEGENERATE
        why = (f"it predicts {e.single!r} for every one of its {e.single_over}: "
               f"{shown}")
    elif hi < bar:
        verdict = DEGENERATE
        why = f"{e.metric} is at chance: {shown}"
    elif lo < bar:
        verdict = UNCLEAR
        why = (f"too few validation {e.unit} to tell it from chance: {shown}; give more "
               f"--validation rows")
    else:
        verdict = OK
        why = f"above chance: {shown}"
    return {"verdict": verdict, "why": why, "metric": e.metric, "value": round(e.value, 4),
            "interval": [round(lo, 4), round(hi, 4)],
            "baseline": {"value": round(e.baseline, 4), "model": e.baseline_is},
            "bar": round(bar, 4), "rows": e.rows, "single_class": e.single,
            "rule": f"degenerate when the 95% interval's top is under baseline + {LIFT} x "
                    f"(1 - baseline), or one class for everything (chance < {ALPHA}); "
                    f"edgetransfer/measure/floor.py"}


# --- why, and what to change -----------------------------------------------------------------

# Fewer optimizer steps than this are named as the likely cause: in bench/small_data.py
# (bench/RESULTS.md "Small data") 17 steps left NER at 1e-4 and SST-2's LoRA at chance and
# 85 did not; between them, the round figure.
FEW_STEPS = 60
# A training loss that ends above this share of where it began has barely moved, and above
# the second it rose (the logged losses of a flat run wander by a few percent).
BARELY, ROSE = 0.8, 1.1


def losses_of(history: list[dict]) -> tuple[float, float] | None:
    """The first and last training loss the Trainer logged (log_history), if it logged two."""
    values = [float(h["loss"]) for h in history if isinstance(h.get("loss"), (int, float))]
    return (values[0], values[-1]) if len(values) >= 2 else None


def causes(*, steps: int, examples: int, epochs: float, batch_size: int, lr: float,
           losses: tuple[float, float] | None, method: str | None = None,
           freeze_layers: int = 0, teacher: dict | None = None) -> list[str]:
    """The likely causes of a model at the floor, most likely first, each with the flag to
    change: from the run's own figures (its steps and loss), not a fixed list."""
    out = []
    if teacher is not None and teacher.get("verdict") == DEGENERATE:
        out.append("the teacher is itself degenerate (its artifact.json \"floor\"): retrain "
                   "the teacher first (see its metrics.json)")
    if method == "head":
        out.append("only the head trains (--method head): the backbone's features may not "
                   "separate these classes; try --method full or lora")
    if freeze_layers:
        out.append(f"the lowest {freeze_layers} layers are frozen (--freeze-layers "
                   f"{freeze_layers}); try --freeze-layers 0")
    if losses is not None and losses[1] > ROSE * losses[0]:
        out.append(f"the training loss rose ({losses[0]:.3g} -> {losses[1]:.3g}): the "
                   f"learning rate {lr:g} is too high; lower --lr (a third of it)")
    elif steps < FEW_STEPS or (losses is not None and losses[1] > BARELY * losses[0]):
        barely = losses is not None and losses[1] > BARELY * losses[0]
        loss = ("" if losses is None else
                f"; the training loss barely moved ({losses[0]:.3g} -> {losses[1]:.3g})"
                if barely else f"; the training loss went from {losses[0]:.3g} to "
                f"{losses[1]:.3g}")
        out.append(f"too little training: {steps} optimizer steps ({examples} examples in "
                   f"batches of {batch_size}, {epochs:g} epoch(s)){loss}; raise --epochs "
                   f"(or give more --train rows), or raise --lr above {lr:g}")
    elif losses is not None:
        out.append(f"the training loss fell ({losses[0]:.3g} -> {losses[1]:.3g}) but "
                   f"validation did not follow: too few examples to generalise from, or "
                   f"validation data unlike train; give more --train rows, check "
                   f"--validation")
    return out


def worrying(record: dict) -> bool:
    """Worth a warning: degenerate, or scored under the bar where too few rows could tell
    (a model above the bar that few rows cannot prove gets a note, not a warning)."""
    return record["verdict"] == DEGENERATE or (record["verdict"] == UNCLEAR
                                               and record["value"] < record["bar"])


def message(where: str, record: dict) -> str:
    """The warning after training: the verdict, why, the likely causes and what follows."""
    causes_ = record.get("causes") or []
    said = f"; likely cause: {'; or '.join(causes_)}" if causes_ else ""
    if record["verdict"] == DEGENERATE:
        return (f"{where}: a degenerate model: {record['why']}{said}. export, verify and "
                f"package refuse it without {FLAG}")
    return f"{where}: {record['why']}{said}"


# --- downstream: the recorded verdict --------------------------------------------------------

class DegenerateModel(ModelError):
    """A model recorded as degenerate, given to a stage without --allow-degenerate (exit 2;
    `search` records such a candidate and goes on)."""


def recorded(model: str | Path) -> dict | None:
    """The floor verdict an artifact records: its artifact.json's metrics "floor" (a model
    file: its folder's); None where there is none (not an edgetransfer artifact, a task
    without a floor, a record of another shape)."""
    from ..artifacts import MANIFEST
    from ..untrusted import read_json

    path = Path(model)
    folder = path if path.is_dir() else path.parent if path.is_file() else None
    if folder is None or not (folder / MANIFEST).is_file():
        return None
    manifest = read_json(folder / MANIFEST, error=ModelError)
    metrics = manifest.get("metrics")
    record = metrics.get("floor") if isinstance(metrics, dict) else None
    return record if isinstance(record, dict) else None


def check(model: str | Path, allow: bool, stage: str, flag: str = "--model") -> dict | None:
    """Refuse (DegenerateModel, exit 2) a model whose recorded verdict is "degenerate" unless
    `allow`; with it, warn. Returns the record (None where there is none).

    Exit 2, not 3: the refusal is about an input, made before any work, and the user's fix
    is a command line (retrain, or the flag), like package's --unverified; 3 stays what a
    gate found in this run's own output (parity, the LoRA merge), so verify's 3/5/6 keep
    naming one gate each.
    """
    from ..untrusted import clip

    record = recorded(model)
    if record is None or record.get("verdict") != DEGENERATE:
        return record
    why = clip(str(record.get("why", "its validation metric is at chance")), 400)
    if not allow:
        raise DegenerateModel(f"{flag} {model}: a degenerate model ({why}); {stage} refuses "
                              f"it: retrain it (the training's metrics.json \"floor\" names the "
                              f"likely cause)", remedy=FLAG[2:].replace("-", "_"))
    log.warning("%s %s: a degenerate model (%s); %s goes on (%s)", flag, model, why, stage, FLAG)
    return record
