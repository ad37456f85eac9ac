"""How export and verify score a model on labelled data: one rule, one loop, any task.

Inputs are encoded by the task (tokenizer now, an image processor later) into numpy feeds
both runtimes take; the task turns outputs into predictions and its primary metric.
"""

from __future__ import annotations

import numpy as np

SCORE_BATCH = 32  # rows per call when scoring


def scoring_batch_size(precision: str) -> int:
    """int8 models are scored one row at a time (one_by_one says why), the others in
    batches: export's metric check and verify agree on this."""
    return 1 if precision == "int8" else SCORE_BATCH


def batches(task, preprocessor, ds, max_length: int, batch_size: int = SCORE_BATCH) -> list:
    """(feeds, labels or None) for every `batch_size` rows of `ds`, in order."""
    out = []
    for s in range(0, len(ds), batch_size):
        rows = ds[s:s + batch_size]  # (a Dataset slice: columns, what `encode` takes)
        labels = np.array(rows["label"]) if "label" in rows else None
        out.append((task.encode(preprocessor, rows, max_length), labels))
    return out


def singles(task, preprocessor, ds, max_length: int, limit: int | None = None) -> list[dict]:
    """Batch-1 feeds of real lengths (the deployment shape), one per row."""
    n = len(ds) if limit is None else min(limit, len(ds))
    return [task.encode(preprocessor, ds[i:i + 1], max_length) for i in range(n)]


def one_by_one(pairs):
    """Each row of (feeds, labels) batches alone, its padding cut.

    Dynamic int8 models quantize activations with one scale over the whole batch, padding
    included, so a row's scores depend on its neighbours; deployed, a row is scored alone
    (the bundle's predict.py defaults to batch 1). Metric gates score int8 models this way.
    """
    for feeds, labels in pairs:
        for i in range(len(labels)):
            if "attention_mask" in feeds:
                keep = np.flatnonzero(feeds["attention_mask"][i])  # either padding side
                yield {k: v[i:i + 1, keep] for k, v in feeds.items()}, labels[i:i + 1]
            else:  # (fixed-size inputs: nothing to cut)
                yield {k: v[i:i + 1] for k, v in feeds.items()}, labels[i:i + 1]


def score(task, logits_of, pairs, label_names: list[str], precision: str = "fp32") -> float:
    """The task's primary metric of `logits_of(feeds)` over (feeds, labels) batches, scored
    at the batch size the precision's rule gives."""
    if scoring_batch_size(precision) == 1:  # split the encoded batches, no re-encoding
        pairs = list(one_by_one(pairs))
    logits, labels = [], []
    for feeds, y in pairs:
        logits.append(np.asarray(logits_of(feeds)))
        labels.append(y)
    report = task.metrics(np.concatenate(labels), task.predictions(np.concatenate(logits)),
                          label_names)
    return report[task.primary]
