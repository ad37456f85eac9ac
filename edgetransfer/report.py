"""report.md, report.json and report.png for a pipeline's artifact folder.

Renders what the stages recorded (verify.json first: every model scored and timed by one
harness in one run; export.json and metrics.json where verify did not run); measures
nothing itself, so a report can be re-rendered at any time: `edgetransfer report DIR`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from . import registry
from .artifacts import write_json

log = logging.getLogger(__name__)


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def collect(root: Path) -> dict:
    """Every figure the report shows, from the artifact folders under `root`."""
    root = Path(root)
    state = _read(root / "pipeline.json") or {"steps": {}}
    verify = _read(root / "verify" / "verify.json")
    models = []
    metric, second = "accuracy", "macro_f1"
    if verify:
        metric = verify.get("metric", "accuracy")  # (reports before tasks: accuracy)
        second = verify.get("secondary") or second
        ref = verify["reference"]
        for m in [ref] + verify["candidates"]:
            lat = m.get("latency") or {}
            b1 = lat.get("batch1", {})
            big = [v for k, v in lat.items() if k != "batch1"]
            models.append({
                "name": "teacher" if m is ref else m["name"], "kind": m["kind"],
                "precision": m["precision"], "size_mb": round(m["size_bytes"] / 2**20, 2),
                metric: m["metrics"][metric], "second": m["metrics"].get(second),
                "drop_points": (m.get("accuracy_drop") or {}).get(metric, {}).get("points"),
                "drop_ci95": (m.get("accuracy_drop") or {}).get(metric, {}).get("ci95"),
                "p50_ms": b1.get("p50_ms"), "p90_ms": b1.get("p90_ms"),
                "throughput_batch": big[-1]["throughput_per_s"] if big else None,
                "batch": max((int(k.removeprefix("batch")) for k in lat), default=None),
                "passed": m.get("passed", True),
            })
        ref_p50 = models[0]["p50_ms"]
        for m in models:
            m["speedup"] = round(ref_p50 / m["p50_ms"], 2) if ref_p50 and m["p50_ms"] else None
    else:  # no verify step: what export measured (its own eval data, batch 1)
        for folder in sorted(root.glob("onnx-*")):
            rec = _read(folder / "export.json")
            if rec:
                metric = rec.get("metric", "accuracy")
                models.append({"name": folder.name, "kind": "onnx",
                               "precision": (rec.get("quantization") or {}).get("mode"),
                               "size_mb": round(rec["size_bytes"] / 2**20, 2),
                               metric: rec.get(metric), "second": None,
                               "p50_ms": rec["latency_batch1"]["p50_ms"],
                               "p90_ms": rec["latency_batch1"]["p90_ms"]})
    bundle = _read(root / "bundle" / "artifact.json")
    order = [s.name for s in registry.steps()]  # the pipeline's order, from the registry
    rank = {name: i for i, name in enumerate(order)}
    steps = {label: {k: s.get(k) for k in ("step", "status", "wall_time_s")}
             for label, s in sorted(state["steps"].items(),
                                    key=lambda item: rank.get(item[1].get("step"), len(order)))}
    return {
        "root": str(root),
        "task": verify.get("task") if verify else None,
        "metric": metric,
        "secondary": second,
        "data": verify["data"] if verify else None,
        "steps": steps,
        "total_wall_time_s": round(sum(s.get("wall_time_s") or 0 for s in steps.values()), 1),
        "models": models,
        "verify": {"passed": verify["passed"], "failures": verify["failures"],
                   "machine": verify["env"]["machine"], "threads": verify["env"]["threads"]}
        if verify else None,
        "bundle": bundle.get("metrics") if bundle else None,
    }


def markdown(rep: dict) -> str:
    lines = [f"# Report: {Path(rep['root']).name}", ""]
    if rep["data"]:
        lines += [f"Scored on {rep['data']['examples']} examples of `{rep['data']['path']}`; "
                  f"latency at batch 1 on {rep['verify']['machine']['cpu']}, "
                  f"{rep['verify']['threads']} thread(s).", ""]
    if rep["models"]:
        batch = next((m.get("batch") for m in rep["models"] if m.get("batch")), None)
        metric = rep.get("metric", "accuracy")
        second = rep.get("secondary") or "macro_f1"
        lines += [f"| model | kind | precision | size MB | {metric.replace('_', '-')} | "
                  f"{second.replace('_', '-')} | drop pts [95% CI] | p50 ms | p90 ms | speed-up | "
                  f"items/s @{batch or '-'} | gates |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for m in rep["models"]:
            drop = (f"{m['drop_points']:+.2f} [{m['drop_ci95'][0]:+.2f}, "
                    f"{m['drop_ci95'][1]:+.2f}]" if m.get("drop_points") is not None else "")
            lines.append(
                f"| {m['name']} | {m['kind']} | {m['precision']} | {m['size_mb']:.1f} | "
                f"{_f(m.get(metric))} | {_f(m.get('second', m.get('macro_f1')))} | {drop} | "
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
    key = rep.get("metric", "accuracy")
    points = [m for m in rep["models"] if m.get("p50_ms") and m.get(key) is not None]
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
