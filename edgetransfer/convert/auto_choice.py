"""`export --quantize auto`: the fastest variant that holds the task's metric.

Candidates are built from the fastest expected (convert.quantize.FASTEST_FIRST: the task's
int8 modes, static only where there are calibration inputs), then fp32, which always holds.
Each is parity-gated, scored on the eval data and timed at batch 1; a candidate that misses
--max-accuracy-drop gets one retry with its most sensitive nodes kept in fp32. Every
candidate's figures are recorded, the misses included; the fastest that held is chosen.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

from ..errors import CheckFailed
from . import quantize, variant

log = logging.getLogger(__name__)


class Judge(Protocol):
    """What gates and scores a candidate (measure.gates.Judge)."""

    def gate(self, path: Path, precision: str) -> dict: ...

    def score(self, path: Path, precision: str = "fp32") -> float: ...

    def worst_drop(self, path: Path, fp32: Path, value: float, fp32_value: float
                   ) -> float: ...


class AutoSettings(variant.BuildSettings):
    """How candidates are built (BuildSettings), judged and timed (export's flags of the
    same names)."""

    max_accuracy_drop: float
    threads: int = 1


def candidate_modes(task_modes: tuple[str, ...], calibrated: bool) -> list[str]:
    """The modes auto tries, in order: the task's int8 modes from the fastest (a calibrated
    one only with calibration inputs), then fp32."""
    return [m for m in quantize.FASTEST_FIRST
            if quantize.precision_of(m) == "int8" and m in task_modes
            and (calibrated or not quantize.calibrates(m))] + ["none"]


def choose(task, judge: Judge, tmp: Path, fp32: Path, feeds: list[dict], singles: list[dict],
           fp32_value: float, settings: AutoSettings) -> tuple[dict, list[dict]]:
    """(the chosen candidate: its figures plus "path" and "parity", every candidate's
    figures). `tmp`: the build folder (tmp/exported.onnx, the unfused graph); `fp32`: the
    fused graph; `feeds`: the calibration inputs; `singles`: the latency inputs. No
    candidate within --max-accuracy-drop: CheckFailed (exit 3)."""
    candidates, kept = [], []
    for mode in candidate_modes(task.quantize_modes, bool(feeds)):
        exclude = None
        while True:
            label = mode if exclude is None else f"{mode}-excluding-{len(exclude)}-nodes"
            entry, path, gate = _candidate(task, judge, mode, label, tmp, fp32, feeds, singles,
                                           fp32_value, settings, exclude)
            candidates.append(entry)
            if entry["holds"]:
                kept.append(dict(entry, path=path, parity=gate))
            if entry["holds"] or exclude is not None or mode == "none":
                break
            # (the graph this mode quantizes: static int8 takes the unfused one)
            exclude = variant.sensitive_nodes(fp32 if mode == "int8-dynamic"
                                              else tmp / "exported.onnx")
            if not exclude:
                break
    if not kept:
        raise CheckFailed(f"--quantize auto: no candidate held --max-accuracy-drop "
                          f"{settings.max_accuracy_drop}; see the figures above")
    return min(kept, key=lambda e: e["p50_ms"]), candidates


def _candidate(task, judge: Judge, mode, label, tmp, fp32, feeds, singles, fp32_value,
               settings: AutoSettings, exclude) -> tuple[dict, Path, dict | None]:
    """One candidate built, gated, scored and timed: (its figures, its file, its parity
    report or None where the gate failed)."""
    metric, precision = task.primary, quantize.precision_of(mode)
    path, made = variant.build(mode, fp32, tmp, feeds, settings, exclude, label)
    entry = {"name": label, "settings": made, "size_bytes": path.stat().st_size}
    try:
        gate = judge.gate(path, precision)
    except CheckFailed as e:
        gate, entry["parity_failed"] = None, str(e)
    value = judge.score(path, precision)
    lat = variant.latency_batch1(path, singles, settings.threads)
    # (the largest of the gated figures' drops: a joint task's heads each hold to the bar)
    drop = judge.worst_drop(path, fp32, value, fp32_value)
    entry |= {metric: value, "drop_points": round(drop, 3),
              "p50_ms": lat["p50_ms"], "p90_ms": lat["p90_ms"],
              "holds": gate is not None and drop <= settings.max_accuracy_drop}
    log.info("candidate %-30s %s %.4f (drop %.2f)  p50 %.2f ms  %s", label, metric,
             value, drop, lat["p50_ms"], "holds" if entry["holds"] else "misses")
    return entry, path, gate
