"""`export --prune-vocab`: a checkpoint with its vocabulary cut to a corpus's tokens, judged
against the unpruned one before anything is exported.

convert.vocab does the cutting (tokenizer.json, embedding rows); this counts the corpus as
the task encodes it, cuts a copy of the checkpoint into a scratch folder, and judges it on
--eval-data, text the corpus never saw: label agreement with the unpruned model (at least
vocab.MIN_AGREEMENT, or --min-agreement) and the task's primary metric (at most
--max-accuracy-drop points lower). Either gate missed stops the export (exit 3).
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..errors import CheckFailed, DataError, ModelError
from ..measure import scoring
from ..modeling import backbones
from . import vocab

log = logging.getLogger(__name__)

# a recipe's `prune_vocab: data` (export's plan() reads it; search's pruned candidates say
# it): prune to the recipe's training plus unlabelled text
RECIPE_CORPUS = "data"


class PruneSettings(BaseModel):
    """What pruning reads of export's settings (the flags of the same names)."""

    model_config = ConfigDict(frozen=True, from_attributes=True)

    model: str
    out: Path  # (a miss says nothing was written there)
    prune_vocab: str
    min_count: int = 1
    eval_data: str
    min_agreement: float | None = None
    max_accuracy_drop: float
    max_length: int = 128
    allow_pickle: bool = False


def prune(settings: PruneSettings, columns: Any, bb, task, corpus: list[str], evals,
          scratch: Path):
    """(the pruned checkpoint's backbone, in `scratch`; the record of how it was judged:
    [UNK] rate, tokens per example, label agreement and the task metric of the unpruned and
    the pruned model on --eval-data). `columns`: the column options the task's readers take
    (export's settings). A missed gate: CheckFailed."""
    s = settings
    tokenizer = task.load_preprocessor(bb)
    if not (Path(bb.source) / "tokenizer.json").exists():
        raise ModelError(f"--model {s.model}: has no tokenizer.json (a fast tokenizer's); "
                         f"--prune-vocab rewrites it")
    where = f"--prune-vocab {s.prune_vocab}"
    # [UNK] is counted (check_corpus judges by it); the other special tokens are not
    specials = set(tokenizer.all_special_ids) - {tokenizer.unk_token_id}
    counts = vocab.count_tokens(id_batches(task, tokenizer, corpus, columns, s.max_length),
                                specials)
    vocab.check_corpus(counts, tokenizer.unk_token_id, where)
    keep = vocab.kept_from_counts(tokenizer, counts, s.min_count)
    reference = backbones.load_trained(bb, task, allow_pickle=s.allow_pickle)
    pruned = copy.deepcopy(reference)  # (cut in place below; the reference stays whole)
    vocab.prune_checkpoint(pruned, Path(bb.source), keep, scratch)
    pruned_bb = backbones.resolve(str(scratch))
    log.info("vocabulary: %d of %d tokens kept (%.1f%%; min count %d over %d corpus tokens)",
             len(keep), len(tokenizer), 100 * len(keep) / len(tokenizer), s.min_count,
             sum(counts.values()))
    labels = bb.head_labels(task)
    before = judged(reference, tokenizer, task, evals, s.max_length, labels, Path(bb.source))
    after = judged(pruned, task.load_preprocessor(pruned_bb), task, evals, s.max_length,
                   labels, scratch)
    agreement = _agreement(before[0], after[0])
    record = _record(s, corpus, counts, keep, len(tokenizer), len(evals), task.primary,
                     before, after, agreement)
    _check(s, task, where, agreement, record["min_agreement"], before, after)
    return pruned_bb, record


def judged(model, tokenizer, task, evals, max_length: int, label_names: list[str],
           folder: Path) -> tuple:
    """(per-example predictions, the primary metric, the [UNK] share of the tokens, tokens
    per example) of a PyTorch model with this tokenizer (saved in `folder`) on the eval rows;
    the predictions as its bundle would answer (measure/shipped.py)."""
    import numpy as np

    from ..measure import shipped

    predictions = shipped.predictions(task, shipped.of_torch(model, task, folder, tokenizer),
                                      evals, label_names, max_length)
    labels = list(evals["label"])
    pairs = scoring.batches(task, tokenizer, evals, max_length)
    used = np.concatenate([f["input_ids"][f["attention_mask"] > 0] for f, _ in pairs])
    value = task.metrics(labels, predictions, label_names)[task.primary]
    return (predictions, value, float((used == tokenizer.unk_token_id).mean()),
            used.size / len(evals))


def _agreement(before: list, after: list) -> float:
    """The share of labels (per example, per word; a joint model's: of every head) the two
    models' predictions share."""
    import numpy as np

    def flat(p):
        return (np.concatenate([np.ravel(v) for v in p.values()]) if isinstance(p, dict)
                else np.ravel(np.asarray(p)))

    return float(np.concatenate([flat(a) == flat(b) for a, b in zip(before, after)]).mean())


def _record(s: PruneSettings, corpus, counts, keep, vocab_size, rows, metric, before,
            after, agreement) -> dict:
    """export.json "vocab": the corpus, what was kept, and both models' figures."""
    return {"corpus": corpus, "min_count": s.min_count,
            "corpus_tokens": sum(counts.values()), "kept": len(keep), "of": vocab_size,
            "kept_fraction": round(len(keep) / vocab_size, 4),
            "judged_on": s.eval_data, "rows": rows,
            "label_agreement": round(agreement, 4),
            "min_agreement": s.min_agreement if s.min_agreement is not None
            else vocab.MIN_AGREEMENT,
            "min_agreement_from": ("--min-agreement" if s.min_agreement is not None else
                                   f"the pruning default {vocab.MIN_AGREEMENT}"),
            "unk_rate": {"unpruned": round(before[2], 5), "pruned": round(after[2], 5)},
            "tokens_per_example": {"unpruned": round(before[3], 2),
                                   "pruned": round(after[3], 2)},
            metric: {"unpruned": before[1], "pruned": after[1]}}


def _check(s: PruneSettings, task, where: str, agreement: float, least: float, before,
           after) -> None:
    """Said, and a miss of either gate (agreement, metric drop) stops here."""
    metric = task.primary
    drop = task.drop(before[1], after[1])
    log.info("pruned vocabulary on %s: label agreement %.4f, %s %.4f -> %.4f, [UNK] %.3f%% -> "
             "%.3f%%", s.eval_data, agreement, metric, before[1], after[1], 100 * before[2],
             100 * after[2])
    if agreement < least or drop > s.max_accuracy_drop:
        raise CheckFailed(
            f"{where}: on {s.eval_data} the pruned model agrees with the unpruned one on "
            f"{agreement:.1%} of labels (at least {least:.0%}) and scores "
            f"{metric} {after[1]:.4f} against {before[1]:.4f} (allowed drop "
            f"{s.max_accuracy_drop}); give a corpus closer to the data the model will see, or "
            f"lower --min-count; nothing was written to {s.out}")


def id_batches(task, tokenizer, files: list[str], columns: Any, max_length: int):
    """(input_ids, attention_mask) of every row of the corpus files, as the task encodes."""
    for f in files:
        try:
            ds = task.read_eval(f, None, columns)
        except DataError:
            if not any(getattr(columns, c, None) for c in ("text_column", "tokens_column")):
                raise
            # an unlabelled file need not name its text as the labelled data does: its own
            # column, found by name as `distill --unlabeled` finds it
            ds = task.read_eval(f, None, None)
        for s in range(0, len(ds), 512):
            feeds = task.encode(tokenizer, ds[s:s + 512], max_length)
            yield feeds["input_ids"], feeds["attention_mask"]
