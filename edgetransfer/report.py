"""report.md, report.json and report.png for a pipeline's artifact folder.

Renders what the stages recorded (verify.json first: every model scored and timed by one
harness in one run; export.json and metrics.json where verify did not run); measures
nothing itself, so a report can be re-rendered at any time: `edgetransfer report DIR`.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from . import registry
from .artifacts import write_json
from .records import ExportReport, VerifyReport
from .untrusted import fields_of, read_json, shorten

log = logging.getLogger(__name__)


# what a damaged record gets told: report only renders what the stages wrote
_FIX = "run the step that writes it again, or remove the file"


def _read(path: Path) -> dict | None:
    """A record a stage wrote, or None where there is none. Read bounded (size, nesting);
    a damaged one is refused in one line naming it, not skipped in silence."""
    if not path.is_file():
        return None
    return read_json(path, fix=_FIX)


def _num(value, name: str, finite: bool = False):
    """A figure of a record: a number (or None; `finite`: not NaN or infinite, as sizes and
    times are); else TypeError, worded by fields_of."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                              or (finite and not math.isfinite(value))):
        raise TypeError(f"{name} is {shorten(value, 40)}, not a{' finite' * finite} number")
    return value


def collect(root: Path) -> dict:
    """Every figure the report shows, from the artifact folders under `root`."""
    root = Path(root)
    state = _read(root / "pipeline.json") or {"steps": {}}
    verify_file = root / "verify" / VerifyReport.FILE
    verify = VerifyReport.read(verify_file, fix=_FIX) if verify_file.is_file() else None
    summary = data = None
    if verify:
        models = _verified(verify, verify_file)
        metric, second = verify.metric, verify.secondary
        summary = {"passed": verify.passed, "failures": [f.model_dump() for f in
                                                         verify.failures],
                   "machine": dict(verify.env.machine) if verify.env else {},
                   "threads": verify.env.threads if verify.env else None}
        data = verify.data.model_dump() if verify.data else None
    else:  # no verify step: what export measured (its own eval data, batch 1)
        models, metric = _exported(root)
        second = None
    bundle = _read(root / "bundle" / "artifact.json")
    order = [s.name for s in registry.steps()]  # the pipeline's order, from the registry
    rank = {name: i for i, name in enumerate(order)}
    with fields_of(str(root / "pipeline.json"), fix=_FIX):
        entries = dict(state["steps"])
        steps = {str(label): {k: s.get(k) for k in ("step", "status", "wall_time_s")}
                 for label, s in sorted(entries.items(),
                                        key=lambda item: rank.get(item[1].get("step"),
                                                                  len(order)))}
        total = round(sum(_num(s.get("wall_time_s"), "wall_time_s") or 0
                          for s in steps.values()), 1)
    with fields_of(str(root / "bundle" / "artifact.json"), fix=_FIX):
        metrics = dict(bundle.get("metrics") or {}) if bundle else None
    return {
        "root": str(root),
        "task": verify.task if verify else None,
        "metric": metric,
        "secondary": second,
        "data": data,
        "steps": steps,
        "total_wall_time_s": total,
        "models": models,
        "verify": summary,
        "bundle": metrics,
    }


def _given(value, name: str):
    """A figure the report cannot do without: missing, it is a KeyError (worded by
    fields_of as the missing field)."""
    if value is None:
        raise KeyError(name)
    return value


def _verified(verify: VerifyReport, file: Path) -> list[dict]:
    """A row per model verify judged (the reference first, as "teacher")."""
    models = []
    with fields_of(str(file), fix=_FIX):
        for m in verify.models:
            lat = m.latency or {}
            b1 = lat.get("batch1")
            big = [v for k, v in lat.items() if k != "batch1"]
            drop = verify.drop(m)
            models.append({
                "name": "teacher" if m is verify.reference else m.name, "kind": m.kind,
                "precision": m.precision,
                "size_mb": round(_num(_given(m.size_bytes, "size_bytes"), "size_bytes", True)
                                 / 2**20, 2),
                verify.metric: verify.score(m),
                "second": verify.score(m, verify.secondary) if verify.secondary else None,
                "drop_points": drop.points if drop else None,
                "drop_ci95": list(drop.ci95) if drop and drop.ci95 else None,
                "p50_ms": _num(b1.p50_ms if b1 else None, "p50_ms", True),
                "p90_ms": _num(b1.p90_ms if b1 else None, "p90_ms", True),
                "throughput_batch": big[-1].throughput_per_s if big else None,
                "batch": max((int(k.removeprefix("batch")) for k in lat), default=None),
                "passed": m.passed is not False,  # (the reference is not judged)
            })
    ref_p50 = models[0]["p50_ms"]
    for m in models:
        m["speedup"] = round(ref_p50 / m["p50_ms"], 2) if ref_p50 and m["p50_ms"] else None
    return models


def _exported(root: Path) -> tuple[list[dict], str | None]:
    """(a row per export folder from its export.json, the metric's name; None: none)."""
    models, metric = [], None
    for folder in sorted(root.glob("onnx-*")):
        file = folder / ExportReport.FILE
        if not file.is_file():
            continue
        rec = ExportReport.read(file, fix=_FIX)
        metric = rec.metric
        with fields_of(str(file), fix=_FIX):
            models.append({
                "name": folder.name, "kind": "onnx",
                "precision": rec.quantization.mode if rec.quantization else None,
                "size_mb": round(_num(rec.size_bytes, "size_bytes", True) / 2**20, 2),
                metric: rec.score(), "second": None,
                "p50_ms": _num(rec.latency_batch1.p50_ms, "p50_ms", True),
                "p90_ms": _num(rec.latency_batch1.p90_ms, "p90_ms", True)})
    return models, metric


def markdown(rep: dict) -> str:
    lines = [f"# Report: {Path(rep['root']).name}", ""]
    if rep["data"]:
        lines += [f"Scored on {rep['data']['examples']} examples of `{rep['data']['path']}`; "
                  f"latency at batch 1 on {rep['verify']['machine'].get('cpu', 'an unnamed CPU')}, "
                  f"{rep['verify']['threads']} thread(s).", ""]
    if rep["models"]:
        batch = next((m.get("batch") for m in rep["models"] if m.get("batch")), None)
        metric, second = rep["metric"], rep["secondary"] or ""
        lines += [f"| model | kind | precision | size MB | {metric.replace('_', '-')} | "
                  f"{second.replace('_', '-')} | drop pts [95% CI] | p50 ms | p90 ms | speed-up | "
                  f"items/s @{batch or '-'} | gates |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for m in rep["models"]:
            drop = (f"{m['drop_points']:+.2f} [{m['drop_ci95'][0]:+.2f}, "
                    f"{m['drop_ci95'][1]:+.2f}]" if m.get("drop_points") is not None else "")
            lines.append(
                f"| {m['name']} | {m['kind']} | {m['precision']} | {m['size_mb']:.1f} | "
                f"{_f(m.get(metric))} | {_f(m.get('second'))} | {drop} | "
                f"{_f(m['p50_ms'], 3)} | {_f(m['p90_ms'], 3)} | "
                f"{(str(m['speedup']) + 'x') if m.get('speedup') else ''} | "
                f"{_f(m.get('throughput_batch'), 1)} | "
                f"{'pass' if m.get('passed', True) else 'FAIL'} |")
        lines.append("")
    if rep["verify"] and rep["verify"]["failures"]:
        lines += ["Failed gates:", ""] + [f"- {f['gate']}: {f['message']}"
                                          for f in rep["verify"]["failures"]] + [""]
    if rep["bundle"]:
        lines += ["Bundle: " + ", ".join(f"{k} {v}" for k, v in rep["bundle"].items()), ""]
    lines += ["| step | stage | status | wall s |", "| --- | --- | --- | --- |"]
    lines += [f"| {label} | {s.get('step') or ''} | {s['status']} | {s['wall_time_s']} |"
              for label, s in rep["steps"].items()]
    lines += ["", f"Total: {rep['total_wall_time_s']} s of step time.", "",
              "![accuracy against latency](report.png)", ""]
    return "\n".join(lines)


def _f(v, digits: int = 4) -> str:
    return "" if v is None else f"{v:.{digits}f}"


def plot(rep: dict, path: Path) -> bool:
    """The task metric against batch-1 latency; marker area = model size."""
    key = rep["metric"]
    if key is None:  # (nothing was measured)
        return False
    points = [m for m in rep["models"] if m.get("p50_ms") and m.get(key) is not None
              and math.isfinite(m[key])]
    if not points:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = key.replace("_", " ")
    # a share (accuracy, F1) reads best in percent; other metrics as they are
    scale = 100 if all(0 <= m[key] <= 1 for m in points) else 1
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    colours = {"pytorch": "tab:blue", "onnx": "tab:orange"}
    for i, m in enumerate(sorted(points, key=lambda m: m["p50_ms"])):
        ax.scatter(m["p50_ms"], scale * m[key], s=max(30, 6 * m["size_mb"]),
                   color=colours.get(m["kind"], "tab:gray"), alpha=0.6, edgecolors="black")
        # neighbours in latency alternate above and below, so labels of close points don't meet
        ax.annotate(f"{m['name']} ({m['size_mb']:.0f} MB)", (m["p50_ms"], scale * m[key]),
                    textcoords="offset points", xytext=(8, 8 if i % 2 == 0 else -14),
                    fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency at batch 1 (ms, log scale)")
    ax.set_ylabel(f"{metric} (%)" if scale == 100 else metric)
    ax.set_title(f"{Path(rep['root']).name}: {metric} against latency (marker area = size)",
                 fontsize=10)
    lo = min(m["p50_ms"] for m in points)
    hi = max(m["p50_ms"] for m in points)
    ax.set_xlim(lo / 1.6, hi * 2.5)  # room for the labels on the right
    accs = [scale * m[key] for m in points]
    ax.set_ylim(min(accs) - 2, max(accs) + 2)
    for kind, colour in colours.items():
        ax.scatter([], [], color=colour, alpha=0.6, label=kind)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return True


def write(root: Path) -> dict:
    root = Path(root)
    rep = collect(root)
    write_json(root / "report.json", rep)
    text = markdown(rep)
    if not plot(rep, root / "report.png"):
        text = text.replace("![accuracy against latency](report.png)\n", "")
    tmp = root / "report.md.tmp"
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(root / "report.md")
    log.info("wrote %s", root / "report.md")
    return rep
