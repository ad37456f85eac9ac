"""Compare a candidate's outputs with the reference's: per output, per precision, as a gate.

Checked on inputs whose shapes differ from the export's dummy inputs (batch 2, length 16
in optimum), so a graph that hard-coded a shape fails here rather than on the device.
Every failure is collected, not just the first, and a shape that differs is a failure, not
a numpy error. fp32 must match closely; fp16 loosely; int8 is judged by the task's
agreement (top-1 for classification: its logits move by design) and, where eval data is
given, by the task metric.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# precision -> (max absolute output difference, least agreement); a task may give its own
TOLERANCES = {
    "fp32": (1e-4, 1.0),  # export and fusion reorder float sums: ~1e-6 seen, 1e-4 allowed
    "fp16": (5e-2, 0.99),  # 10-bit mantissa: ~1e-2 on logits of size ~10
    "int8": (None, 0.95),  # logits shift by design; the prediction must rarely change
    "int4": (None, 0.95),  # weight-only 4-bit blocks: judged as int8 is
}


def probe_batches(task, preprocessor, rows: list[dict] | None = None, max_length: int = 128):
    """Batches of 1, 3 and 4 rows of mixed shapes (so with padding), as numpy feeds: the
    given rows (e.g. eval data) first, then the task's own probes."""
    rows = list(rows or []) + list(task.probe_rows)
    groups = [rows[:1], rows[1:4], rows[-4:]]
    return [task.encode(preprocessor, _columns(group), max_length) for group in groups]


def positions(task, output, feeds: dict) -> np.ndarray:
    """An output over encoded rows as [outputs compared, values]: one row per example (per
    word for a token task: padding, continuation sub-tokens and window overlaps dropped), so
    runtimes fed with other padding or batch sizes still compare position by position."""
    return flat(task.per_example(np.asarray(output), feeds))


def named_positions(task, outputs: dict, feeds: dict) -> dict[str, np.ndarray]:
    """`positions` of each of a model's outputs ({name: output}, the task's names)."""
    return {name: positions(task, outputs[name], feeds) for name in task.outputs}


def compare_named(reference: list[dict], candidate: list[dict], precision: str, task,
                  **bars) -> Report:
    """`compare` for each of the task's outputs ({name: output} per probe batch), in one
    report: every output's figures, every output's failures."""
    report = Report(precision)
    for name in task.outputs:
        one = compare([r[name] for r in reference], [c[name] for c in candidate], precision,
                      name=name, task=task, **bars)
        report.outputs |= one.outputs
        report.failures += one.failures
    return report


def flat(per_example) -> np.ndarray:
    """Per-example outputs (each [values] or [positions, values]) as one 2-D array."""
    return np.concatenate([np.reshape(p, (-1, np.shape(p)[-1] if np.ndim(p) else 1))
                           for p in per_example])


def _columns(rows: list[dict]) -> dict:
    keys = [k for k in rows[0] if all(k in r for r in rows)]
    return {k: [r[k] for r in rows] for k in keys}


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


def judged_by(task, name: str | None = None) -> tuple:
    """(agreement, tolerances) of the task's output `name` (Task.parity_of; default its
    first): top-1 agreement and the defaults without a task."""
    if task is None:
        return top1_agreement, None
    if hasattr(task, "parity_of"):
        return task.parity_of(name)
    return task.agreement, task.tolerances  # (a stand-in task: tests)


def tolerance(precision: str, task=None, atol: float | None = None,
              min_agreement: float | None = None,
              name: str | None = None) -> tuple[float | None, float | None]:
    """(atol, least agreement) for a precision: the task's own (for its output `name`), or
    the defaults; each overridable by the user."""
    table = judged_by(task, name)[1] or TOLERANCES
    default_atol, default_agree = table[precision]
    return (default_atol if atol is None else atol,
            default_agree if min_agreement is None else min_agreement)


def default_source(precision: str, value: float, task=None, name: str | None = None) -> str:
    """Where a bar nobody overrode comes from, as a gate's summary says it."""
    if task is not None and judged_by(task, name)[1]:
        return f"the {getattr(task, 'name', 'task')} task's {precision} default {number(value)}"
    return f"the {precision} default {number(value)}"


def compare(reference: list[np.ndarray], candidate: list[np.ndarray], precision: str,
            name: str | None = None, atol: float | None = None,
            min_agreement: float | None = None, task=None, labels_only: bool = False,
            atol_from: str = "--atol", min_agreement_from: str = "--min-agreement") -> Report:
    """Compare lists of output arrays (one per probe batch) for one output.

    Agreement is the task's (`task.agreement`, e.g. top-1 for classification); without a
    task, top-1 over the last axis. A task with no agreement is judged by `atol` alone.
    `labels_only`: no bound on the values, agreement alone (a model whose inputs differ by
    design, e.g. a pruned vocabulary's pieces). `atol_from`, `min_agreement_from`: where a
    given bar comes from (the user's flag, or the caller's rule), recorded beside it; a bar
    not given is the precision's default and says so.
    """
    # (`name`: the output's, for the report; default the task's first)
    name = name or (getattr(task, "outputs", None) or ("output",))[0]
    given_atol, given_agreement = atol is not None, min_agreement is not None
    atol, min_agreement = tolerance(precision, task, atol, min_agreement, name)
    if not given_atol:
        atol_from = (default_source(precision, atol, task, name) if atol is not None
                     else None)
    if not given_agreement:
        min_agreement_from = (default_source(precision, min_agreement, task, name)
                              if min_agreement is not None else None)
    if labels_only:
        atol = None
    report = Report(precision)
    shapes = [(i, np.shape(r), np.shape(c)) for i, (r, c) in
              enumerate(zip(reference, candidate)) if np.shape(r) != np.shape(c)]
    if len(reference) != len(candidate) or shapes:
        i, r, c = shapes[0] if shapes else (len(reference), len(reference), len(candidate))
        what = (f"shape {c} in batch {i}, the reference's is {r}" if shapes
                else f"{c} batches, the reference has {r}")
        report.failures.append(f"{name}: {what}")
        report.outputs[name] = {"shape_mismatch": True}
        return report
    ref = np.concatenate([np.reshape(r, (-1,)) for r in reference]).astype(np.float64)
    cand = np.concatenate([np.reshape(c, (-1,)) for c in candidate]).astype(np.float64)
    nan, inf = int(np.isnan(cand).sum()), int(np.isinf(cand).sum())
    finite = np.isfinite(cand)
    diff = np.abs(np.where(finite, cand, 0) - ref)
    agree_of = judged_by(task, name)[0]
    rows = [len(r) for r in reference]
    agreement = (sum(agree_of(r, c) * n for r, c, n in zip(reference, candidate, rows))
                 / max(sum(rows), 1) if agree_of is not None else None)
    stats = {
        "max_abs_diff": float(diff.max()) if diff.size else 0.0,
        "max_rel_diff": float((diff / (np.abs(ref) + 1e-6)).max()) if diff.size else 0.0,
        "nan": nan, "inf": inf, "top1_agreement": agreement,
        "examples": int(sum(rows)),
        "atol": atol, "min_agreement": min_agreement if agreement is not None else None,
        "atol_from": atol_from if atol is not None else None,
        "min_agreement_from": min_agreement_from if agreement is not None else None,
    }
    report.outputs[name] = stats
    if nan or inf:
        report.failures.append(f"{name}: {nan} NaN and {inf} inf values")
    # (a default bar is named by its precision alone; any other by where it came from)
    if atol is not None and stats["max_abs_diff"] > atol:
        report.failures.append(f"{name}: max |difference| {stats['max_abs_diff']:.2e} > "
                               f"{number(atol)} ({_said(precision, atol_from, given_atol)})")
    if agreement is not None and min_agreement is not None and agreement < min_agreement:
        report.failures.append(f"{name}: top-1 agreement {agreement:.3f} < {min_agreement} "
                               f"({_said(precision, min_agreement_from, given_agreement)}) over "
                               f"{sum(rows)} outputs")
    if atol is None and agreement is None:
        report.failures.append(f"{name}: no tolerance for {precision} and no agreement "
                               f"measure; pass --atol")
    return report


def top1_agreement(reference, candidate) -> float:
    """Share of rows whose largest output is at the same index (a non-finite candidate
    value never wins)."""
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    cand = np.where(np.isfinite(cand), cand, -np.inf)
    return float((ref.argmax(-1) == cand.argmax(-1)).mean())


def _said(precision: str, source: str, given: bool) -> str:
    return f"{precision}, {source}" if given else precision


def number(x: float) -> str:
    """1e-04 as 1e-04, 0.25 as 0.25 (one significant digit would say 2e-01), 1.0 as 1."""
    if 0.01 <= abs(x) < 1000:
        return f"{x:g}"
    one = f"{x:.0e}"
    return one if float(one) == x else f"{x:.3g}"
