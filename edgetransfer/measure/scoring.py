"""A model's outputs on labelled data encoded by the task: one rule, one loop, any task.

Inputs are encoded by the task (its tokenizer, image processor) into numpy feeds both
runtimes take: what parity compares, calibration and latency feed, and what a task without
a runtime reading is scored on. The figure the stages report is the bundle's answer
(shipped.py); this module's batch-size rule (int8 one row at a time) holds for both.
"""

from __future__ import annotations

import numpy as np

from ..tasks.task import EXAMPLE

SCORE_BATCH = 32  # rows per call when scoring


def scoring_batch_size(precision: str) -> int:
    """int8 models are scored one row at a time (one_by_one says why), the others in
    batches: export's metric check and verify agree on this."""
    return 1 if precision == "int8" else SCORE_BATCH


def batches(task, preprocessor, ds, max_length: int, batch_size: int = SCORE_BATCH) -> list:
    """(feeds, labels or None) for every `batch_size` rows of `ds`, in order; the labels one
    per example (a class id; a token task's list of tag ids)."""
    out = []
    for s in range(0, len(ds), batch_size):
        rows = ds[s:s + batch_size]  # (a Dataset slice: columns, what `encode` takes)
        labels = list(rows["label"]) if "label" in rows else None
        out.append((task.encode(preprocessor, rows, max_length), labels))
    return out


def inputs_only(task, feeds: dict) -> dict:
    """Feeds without the task's index columns (what maps rows back to examples)."""
    return {k: v for k, v in feeds.items() if k not in task.index_columns}


def singles(task, preprocessor, ds, max_length: int, limit: int | None = None) -> list[dict]:
    """Batch-1 feeds of real lengths (the deployment shape), one per row, model inputs
    only (calibration and latency take them as they are)."""
    n = len(ds) if limit is None else min(limit, len(ds))
    return [inputs_only(task, task.encode(preprocessor, ds[i:i + 1], max_length))
            for i in range(n)]


def one_by_one(pairs):
    """Each example of (feeds, labels) batches alone, its padding cut.

    Dynamic int8 models quantize activations with one scale over the whole batch, padding
    included, so a row's scores depend on its neighbours; deployed, a row is scored alone
    (the bundle's predict.py defaults to batch 1). Metric gates score int8 models this way.
    An example may span several rows (a long sentence's windows: EXAMPLE names each row's).
    """
    for feeds, labels in pairs:
        example = feeds.get(EXAMPLE)
        for i in range(len(labels)):
            rows = (np.flatnonzero(example == i) if example is not None
                    else np.array([i]))
            one = {}
            keep = (np.flatnonzero(feeds["attention_mask"][rows].any(0))  # either padding side
                    if "attention_mask" in feeds else None)
            for k, v in feeds.items():
                v = v[rows]
                if k == EXAMPLE:
                    v = np.zeros_like(v)
                elif keep is not None and v.ndim == 2:
                    v = v[:, keep]
                one[k] = v
            yield one, labels[i:i + 1]


def score(task, logits_of, pairs, label_names: list[str], precision: str = "fp32") -> float:
    """The task's primary metric of `logits_of(feeds)` over (feeds, labels) batches, scored
    at the batch size the precision's rule gives."""
    predictions, labels = predict(task, logits_of, pairs, precision)
    return task.metrics(labels, predictions, label_names)[task.primary]


def predict(task, logits_of, pairs, precision: str = "fp32") -> tuple[list, list]:
    """(per-example predictions, per-example labels) of `logits_of(feeds)` over (feeds,
    labels) batches, at the batch size the precision's rule gives."""
    if scoring_batch_size(precision) == 1:  # split the encoded batches, no re-encoding
        pairs = list(one_by_one(pairs))
    logits, labels = [], []
    for feeds, y in pairs:
        values = logits_of(feeds)  # (a joint task's: a dict by head)
        values = values if isinstance(values, dict) else np.asarray(values)
        logits.extend(task.per_example(values, feeds))
        labels.extend(y)
    return task.predictions(logits), labels
