"""The gates an exported model passes, and what each compared.

Every ONNX graph export builds (the export, the fused graph, each quantized candidate, the
.ort) is run on the parity inputs against the PyTorch reference's outputs and fails (exit 3)
if it drifts (`Judge.gate`); with --eval-data it is scored on the task's primary metric
(`Judge.score`) and a quantized one may lose at most --max-accuracy-drop points against the
fp32 ONNX model (`Judge.check_drop`). The summary (export.json "gates", and the terminal's
lines) says, per gate, the rows compared, the figure, the bar and where the bar came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..errors import CheckFailed
from . import latency, parity

# With only the 8 probe rows, one near-tie flipping is 12.5% disagreement: without real
# rows (--eval-data, or the calibration sample) an int8 model is held to this coarse bar (a
# broken quantization gives near-random predictions), and export.json says the agreement
# was judged on probes only.
PROBE_ONLY_INT8_AGREEMENT = 0.75
PROBE_ONLY = "probe rows without --eval-data"  # where that bar comes from, as gates say it
# the real rows the parity inputs may hold beside the probes, as gates name their source
REAL_ROWS = {"eval": "--eval-data", "calibration": "calibration"}


class GateSettings(BaseModel):
    """What the gates read of export's settings (the flags of the same names)."""

    model_config = ConfigDict(frozen=True, from_attributes=True)

    out: Path  # (a failure says nothing was written there)
    threads: int = 1
    atol: float | None = None
    min_agreement: float | None = None
    eval_data: str | None = None
    max_accuracy_drop: float


def agreement_bar(given: float | None, precision: str, real_rows: int
                  ) -> tuple[float | None, str]:
    """(the least agreement a gate holds a model to, where it comes from): the user's
    --min-agreement, else the probe-only bar for int8 without real rows (`real_rows`: the
    eval or calibration examples compared), else None (the precision's default, which
    parity.compare names itself)."""
    if given is None and precision == "int8" and not real_rows:
        return PROBE_ONLY_INT8_AGREEMENT, PROBE_ONLY
    return given, "--min-agreement"


@dataclass
class Judge:
    """Gates and scores the ONNX models of one export against its PyTorch reference."""

    task: Any
    labels: list[str]
    settings: GateSettings
    probes: list[dict]  # the parity inputs: shape-varied probes, then the real rows' batches
    ref_outputs: list  # the reference's outputs on them, by name (parity.named_positions)
    eval_batches: list | None  # (feeds, labels) of --eval-data; None without it
    rows: dict[str, int]  # examples the probes hold: {"probe": n, "eval": n, "calibration": n}
    scorer: Any = None  # shipped.Scorer over --eval-data: the metric as the bundle answers
    _sessions: dict = field(default_factory=dict, repr=False)  # (path -> its session)
    reports: dict = field(default_factory=dict, repr=False)  # (path -> its scored report)

    def session(self, path: Path):
        """One onnxruntime session per graph, shared by its gate and its score."""
        if path not in self._sessions:
            self._sessions[path] = latency.ort_session(path, self.settings.threads)
        return self._sessions[path]

    def gate(self, path: Path, precision: str, session=None, batches: int | None = None
             ) -> dict:
        """Run the ONNX model on the parity inputs and fail (exit 3) if it drifts
        (`session`: the model in another provider's session, e.g. QNN's simulator;
        `batches`: the first that many parity batches only, for a slow one)."""
        s = self.settings
        session = session or self.session(path)
        names = list(self.task.outputs)  # (every one is compared: a graph keeps each head)
        probes = self.probes[:batches]
        outputs = [parity.named_positions(self.task, dict(zip(names, session.run(
            names, latency.feeds_for(session, b)))), b) for b in probes]
        min_agreement, source = agreement_bar(s.min_agreement, precision,
                                              self.rows["eval"] + self.rows["calibration"])
        report = parity.compare_named(self.ref_outputs[:len(probes)], outputs, precision,
                                      self.task,
                                      atol=s.atol, min_agreement=min_agreement,
                                      min_agreement_from=source)
        if not report.passed:
            raise CheckFailed(f"parity with PyTorch failed for {path.stem} ({precision}): "
                              f"{'; '.join(report.failures)}; nothing was written to {s.out}")
        return report.as_dict()

    def score(self, path: Path, precision: str = "fp32") -> float:
        """The task's primary metric of an ONNX model on the eval data, as its bundle
        would answer (measure/shipped.py); its whole report is kept (`figures`)."""
        self.reports[path] = self.scorer.onnx_report(self.session(path), precision)
        return self.reports[path][self.task.primary]

    def figures(self, path: Path, fp32: Path) -> dict[str, tuple[float, float]]:
        """Each figure the task gates on its own beside the primary (Task.gated: a joint
        task's heads) -> (the model's value, the fp32 model's), both scored already."""
        if not self.task.gated or path not in self.reports or fp32 not in self.reports:
            return {}
        return {k: (self.reports[path][k], self.reports[fp32][k]) for k in self.task.gated}

    def worst_drop(self, path: Path, fp32: Path, value: float, fp32_value: float) -> float:
        """The largest drop from the fp32 model among the gated figures (both scored)."""
        return max(self.task.drop(ref, v) for v, ref in gated_pairs(
            self.task, value, fp32_value, self.figures(path, fp32)).values())

    def check_drop(self, value: float, fp32_value: float | None, name: str,
                   figures: dict[str, tuple[float, float]] | None = None) -> None:
        """Fail (exit 3) where `value` (or any of `figures`: `figures()`) is more than
        --max-accuracy-drop below fp32's."""
        if fp32_value is None:
            return
        allowed = self.settings.max_accuracy_drop
        for metric, (v, ref) in gated_pairs(self.task, value, fp32_value, figures).items():
            drop = self.task.drop(ref, v)
            if drop > allowed:
                raise CheckFailed(
                    f"{name}: {metric} {v:.4f} is {drop:.2f} below the fp32 ONNX model's "
                    f"{ref:.4f} (allowed {allowed}); try --quantize auto "
                    f"or int8-static, or raise --max-accuracy-drop")


def gated_pairs(task, value: float, fp32_value: float, figures: dict | None
                ) -> dict[str, tuple[float, float]]:
    """Every figure the accuracy gate holds to the bar -> (the model's value, the fp32
    model's): the primary metric, then those the task gates beside it (Judge.figures)."""
    return {task.primary: (value, fp32_value), **(figures or {})}


def gate_summary(judge: Judge, parity_reports: dict, value: float | None,
                 fp32_value: float | None, pruning: dict | None,
                 max_drop_default: float, figures: dict | None = None) -> list[dict]:
    """What each gate compared (export.json "gates"): the rows, the figure, the bar and
    where the bar came from (a flag, a default, the probe-only rule). `value`: the model's
    primary metric on the eval data (None without it); `max_drop_default`:
    --max-accuracy-drop's default, to say whether the bar was given; `figures`: the ones
    gated beside it (Judge.figures), each a gate of its own."""
    s, task, rows = judge.settings, judge.task, judge.rows
    gates = []
    for step, report in parity_reports.items():
        for output, stats in report["outputs"].items():
            gates.append({
                "gate": f"parity {step}", "precision": report["precision"], "output": output,
                "rows": sum(rows.values()), "probe_rows": rows["probe"],
                "eval_rows": rows["eval"], "calibration_rows": rows["calibration"],
                "outputs_compared": stats.get("examples"),
                "max_abs_diff": stats.get("max_abs_diff"), "atol": stats.get("atol"),
                "atol_from": stats.get("atol_from"), "agreement": stats.get("top1_agreement"),
                "min_agreement": stats.get("min_agreement"),
                "min_agreement_from": stats.get("min_agreement_from"),
                "passed": report["passed"]})
    if value is not None and fp32_value is not None:
        for metric, (v, ref) in gated_pairs(task, value, fp32_value, figures).items():
            drop = task.drop(ref, v)
            gates.append({
                "gate": metric, "rows": rows["eval"], "data": s.eval_data,
                "value": v, "against": "the fp32 ONNX model",
                "against_value": ref, "drop": round(drop, 4),
                "max_drop": s.max_accuracy_drop,
                "max_drop_from": (f"the --max-accuracy-drop default {max_drop_default:g}"
                                  if s.max_accuracy_drop == max_drop_default
                                  else "--max-accuracy-drop"),
                "passed": drop <= s.max_accuracy_drop})
    if pruning:
        gates.append({
            "gate": "vocabulary pruning", "rows": pruning["rows"], "data": pruning["judged_on"],
            "agreement": pruning["label_agreement"], "against": "the unpruned model",
            "min_agreement": pruning["min_agreement"],
            "min_agreement_from": pruning["min_agreement_from"],
            "passed": True})  # (a miss stops the export before this record exists)
    return gates


def gate_lines(gates: list[dict]) -> list[str]:
    """A gate summary as terminal lines: what was compared, the figure against its bar, and
    where the bar came from."""
    lines = []
    for g in gates:
        verdict = "passed" if g["passed"] else "FAILED"
        if g["gate"].startswith("parity"):
            lines.append(_parity_line(g, verdict))
        elif g["gate"] == "vocabulary pruning":
            lines.append(f"{g['gate']}: {g['rows']} rows of {g['data']}; label agreement with "
                         f"{g['against']} {g['agreement']:.3f} >= {g['min_agreement']:g} "
                         f"({g['min_agreement_from']}): {verdict}")
        else:
            lines.append(f"{g['gate']}: {g['rows']} rows of {g['data']}; {g['value']:.4f} "
                         f"against {g['against']}'s {g['against_value']:.4f}, drop "
                         f"{g['drop']:.2f} <= {g['max_drop']:g} ({g['max_drop_from']}): "
                         f"{verdict}")
    return lines


def _parity_line(g: dict, verdict: str) -> str:
    seen = [f"{g[k + '_rows']} {what}" for k, what in {"probe": "probe", **REAL_ROWS}.items()
            if g.get(k + "_rows")]
    compared = (f"; {g['outputs_compared']} outputs compared"
                if g["outputs_compared"] != g["rows"] else "")
    figures = []
    if g["atol"] is not None:
        figures.append(f"max |diff| {g['max_abs_diff']:.1e} <= "
                       f"{parity.number(g['atol'])} ({g['atol_from']})")
    if g["min_agreement"] is not None:
        figures.append(f"agreement {g['agreement']:.3f} >= {g['min_agreement']:g} "
                       f"({g['min_agreement_from']})")
    head = "" if g.get("output") in (None, "logits") else f", {g['output']}"
    return (f"{g['gate']} ({g['precision']}{head}): {g['rows']} rows "
            f"({', '.join(seen)}{compared}); {'; '.join(figures)}: {verdict}")


def probe_only_warning(gates: list[dict], probe_rows: int, task) -> str | None:
    """The warning where an int8 gate was judged on the probe rows alone (None: none was)."""
    if not any(g.get("min_agreement_from") == PROBE_ONLY for g in gates):
        return None
    return (f"int8 agreement was judged on {probe_rows} probe rows only, at least "
            f"{PROBE_ONLY_INT8_AGREEMENT:g} (it catches a broken quantization, not a small "
            f"drift); --eval-data holds int8 to {parity.tolerance('int8', task)[1]:g} "
            f"agreement and to --max-accuracy-drop on your data")
