"""Task metrics, in one place for every stage: accuracy, macro-F1, per-class report.

scikit-learn computes them; this module only fixes which ones and how they are named.
"""

from __future__ import annotations

import numpy as np


def summary(labels, predictions) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "macro_f1": float(f1_score(labels, predictions, average="macro", zero_division=0)),
    }


def report(labels, predictions, label_names: list[str]) -> dict:
    """Accuracy, macro-F1 and precision/recall/F1/support per class, JSON-ready."""
    from sklearn.metrics import classification_report

    per_class = classification_report(
        labels, predictions, labels=list(range(len(label_names))), target_names=label_names,
        output_dict=True, zero_division=0,
    )
    classes = {name: {k: round(float(v), 4) for k, v in per_class[name].items()}
               for name in label_names}
    return summary(labels, predictions) | {"n": int(len(labels)), "per_class": classes}


def trainer_metrics(eval_pred) -> dict[str, float]:
    """`compute_metrics` for transformers' Trainer."""
    logits, labels = eval_pred
    if isinstance(logits, tuple):
        logits = logits[0]
    return summary(labels, np.argmax(logits, axis=-1))
