"""Compare a candidate's outputs with the reference's: per output, per precision, as a gate.

Checked on inputs whose shapes differ from the export's dummy inputs (batch 2, length 16
in optimum), so a graph that hard-coded a shape fails here rather than on the device.
Every failure is collected, not just the first. fp32 must match closely; fp16 loosely;
int8 is judged by top-1 agreement (its logits move by design) and, where eval data is
given, by the task metric.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# precision -> (max absolute logit difference, least top-1 agreement)
TOLERANCES = {
    "fp32": (1e-4, 1.0),  # export and fusion reorder float sums: ~1e-6 seen, 1e-4 allowed
    "fp16": (5e-2, 0.99),  # 10-bit mantissa: ~1e-2 on logits of size ~10
    "int8": (None, 0.95),  # logits shift by design; the prediction must rarely change
}
PROBE_TEXTS = [
    "ok",
    "please turn the lights off in the kitchen",
    "what will the weather be like tomorrow afternoon in the mountains, and should I bring "
    "an umbrella or a coat for the walk back home after dinner",
    "set a timer for ten minutes",
    "this film was a complete waste of time",
    "an unexpectedly moving and beautifully shot story",
]


def probe_batches(tokenizer, texts: list[str] | None = None, max_length: int = 128):
    """Batches of 1, 3 and 4 texts of mixed lengths (so with padding), as numpy int64."""
    texts = list(texts or []) + PROBE_TEXTS
    groups = [texts[:1], texts[1:4], texts[-4:]]
    from .data import encode_arrays

    return [encode_arrays(tokenizer, group, None, max_length) for group in groups]


@dataclass
class Report:
    precision: str
    outputs: dict = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict:
        return {"precision": self.precision, "passed": self.passed, "outputs": self.outputs,
                "failures": self.failures}


def compare(reference: list[np.ndarray], candidate: list[np.ndarray], precision: str,
            name: str = "logits", atol: float | None = None,
            min_agreement: float | None = None) -> Report:
    """Compare lists of output arrays (one per probe batch) for one output."""
    default_atol, default_agree = TOLERANCES[precision]
    atol = default_atol if atol is None else atol
    min_agreement = default_agree if min_agreement is None else min_agreement
    ref = np.concatenate([r.reshape(len(r), -1) for r in reference]).astype(np.float64)
    cand = np.concatenate([c.reshape(len(c), -1) for c in candidate]).astype(np.float64)
    report = Report(precision)
    nan, inf = int(np.isnan(cand).sum()), int(np.isinf(cand).sum())
    finite = np.isfinite(cand)
    diff = np.abs(np.where(finite, cand, 0) - ref)
    agreement = float((ref.argmax(-1) == np.where(finite, cand, -np.inf).argmax(-1)).mean())
    stats = {
        "max_abs_diff": float(diff.max()),
        "max_rel_diff": float((diff / (np.abs(ref) + 1e-6)).max()),
        "nan": nan, "inf": inf, "top1_agreement": agreement, "examples": int(len(ref)),
        "atol": atol, "min_agreement": min_agreement,
    }
    report.outputs[name] = stats
    if nan or inf:
        report.failures.append(f"{name}: {nan} NaN and {inf} inf values")
    if atol is not None and stats["max_abs_diff"] > atol:
        report.failures.append(f"{name}: max |difference| {stats['max_abs_diff']:.2e} > "
                               f"{atol:.0e} ({precision})")
    if agreement < min_agreement:
        report.failures.append(f"{name}: top-1 agreement {agreement:.3f} < {min_agreement} "
                               f"({precision})")
    return report
