"""One lever at a time: a recipe run again with one override each, tabulated from the runs'
own records, with a plot.

    python bench/levers.py --name sst2-avx2 --task sst2 RUN_DIR [RUN_DIR ...]

Each RUN_DIR is a finished `edgetransfer run` folder (report.json written), typically made
with `--reuse-from` the first run's folder so that every row shares its teacher and only the
override differs (docs/pipelines.md). Read from each: the overrides (recipe.resolved.yaml),
the teacher and the models verify scored (report.json: test split, batch-1 p50 interleaved,
the drop's 95% interval), the student's own figure on the validation split that chose it and
its transfer rows (student/metrics.json, settings.json), the machine verify ran on, the
bundle's size and each step's wall time of the last invocation.

The record, bench/records/levers-NAME.json, keeps a row per run folder: a later call adds or
replaces rows and keeps the others, so a table grows across sessions and renders again
without the folders (--render-only). The goals are the issue's, stated once in
bench/strong_teacher.py's TASKS.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_all import _json, write_section  # noqa: E402
from strong_teacher import TASKS, _f, machine_said  # noqa: E402

# overrides that say where, not what: the same in every row's meaning
PLACES = ("data.dir=", "output=")


def collect(folder: Path) -> dict:
    """One run folder's row (every figure read from the files the run wrote)."""
    import yaml

    report = _json(folder / "report.json")
    if report is None:
        raise SystemExit(f"{folder}: no report.json; finish the run (the same command "
                         f"resumes it), then tabulate it")
    recipe = yaml.safe_load((folder / "recipe.resolved.yaml").read_text(encoding="utf-8"))
    models = report["models"]
    teacher = next(m for m in models if m["name"] == "teacher")
    student = next((m for m in models if m["name"] == "student"), {})
    int8 = next((m for m in models if m["kind"] == "onnx" and m["precision"] == "int8"), None)
    if int8 is None:
        raise SystemExit(f"{folder}: verify scored no int8 ONNX model; a lever's row is its "
                         f"int8 student (the recipe's export.variants)")
    settings = _json(folder / "student" / "settings.json") or {}
    metrics = _json(folder / "student" / "metrics.json") or {}
    metric = report["metric"]
    steps = report.get("steps", {})
    return {
        "run": folder.name,
        "recipe": recipe.get("name"),
        "overrides": [o for o in recipe.get("overrides", []) if not o.startswith(PLACES)],
        "metric": metric,
        "test_examples": report["data"]["examples"],
        "teacher": teacher[metric],
        "teacher_p50_ms": teacher["p50_ms"],
        "student_validation": (metrics.get("validation") or {}).get(metric),
        "student_fp32": student.get(metric),
        "int8": int8[metric],
        "int8_p50_ms": int8["p50_ms"],
        "drop_points": int8["drop_points"],
        "drop_ci95": int8["drop_ci95"],
        "kept": int8[metric] / teacher[metric],
        "speedup": int8["speedup"],
        "layers": len(settings.get("keep_layers") or []) or None,
        "transfer_rows": settings.get("transfer_rows"),
        "bundle_mb": (report.get("bundle") or {}).get("archive_bytes", 0) / 1e6 or None,
        "machine": (report.get("verify") or {}).get("machine"),
        "wall_s": {name: s.get("wall_time_s") for name, s in steps.items()},
    }


def record_path(records: Path, name: str) -> Path:
    return records / f"levers-{name}.json"


def merged(old: dict | None, name: str, task: str, rows: list[dict]) -> dict:
    """The record with `rows` added, a row of the same run folder (by its name) replaced."""
    if old and old.get("task") != task:
        raise SystemExit(f"levers-{name}: its record is of {old.get('task')}, not {task}; "
                         f"give another --name")
    names = [r["run"] for r in rows]
    twice = next((n for n in names if names.count(n) > 1), None)
    if twice is not None:  # (a row is its folder's name: one would replace the other)
        raise SystemExit(f"two run folders named {twice}: a row is named by its folder; "
                         f"rename one, or tabulate it under another --name")
    keep = {r["run"]: r for r in (old or {}).get("rows", [])}
    keep |= {r["run"]: r for r in rows}
    return {"name": name, "task": task, "date": date.today().isoformat(),
            "rows": list(keep.values())}


def _rows(t: dict | None) -> str:
    if not t:
        return ""
    more = f" + {t['unlabelled']:,} unlabelled" if t.get("unlabelled") else ""
    aug = f" (of which {t['augmented']:,} augmented)" if t.get("augmented") else ""
    return f"{t['labelled']:,} labelled{more}{aug}"


def _minutes(wall: dict) -> str:
    parts = [f"{name} {s / 60:.1f}" for name, s in wall.items()
             if s is not None and s >= 30]  # (steps reused from the first run take seconds)
    return ", ".join(parts)


def render(record: dict) -> str:
    goals = TASKS[record["task"]]["goals"]
    rows = record["rows"]
    machines = {json.dumps(r["machine"], sort_keys=True) for r in rows if r["machine"]}
    machine = ", ".join(machine_said(m) for m in map(json.loads, sorted(machines)))
    metric = rows[0]["metric"] if rows else ""
    lines = [f"## One lever at a time, {record['name']} (`bench/levers.py`), {record['date']}",
             "",
             f"Each row is `edgetransfer run recipes/{rows[0]['recipe'] if rows else 'NAME'}"
             f".yaml data.dir=... output=DIR OVERRIDES` (with `--reuse-from` a first run, so "
             f"the teacher is shared). The int8 student on the test split "
             f"({rows[0]['test_examples'] if rows else 0:,} examples), {metric}; its "
             f"fp32 twin; the student's own figure on the validation split that chose it; "
             f"kept = int8 over the teacher; speed-up = the teacher's batch-1 p50 (PyTorch) "
             f"over the int8 student's, interleaved. Machine: {machine or 'not recorded'}. "
             f"Minutes are the last invocation's (a resumed run's part). Record: "
             f"bench/records/levers-{record['name']}.json; plot: "
             f"bench/levers-{record['name']}.png.",
             "",
             "| run | overrides | layers | transfer rows | teacher | student on validation "
             "| fp32 | int8 | kept | drop points [95% interval] | speed-up (p50 ms) "
             "| bundle MB | minutes |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        ci = r["drop_ci95"] or [None, None]
        lines.append(
            f"| {r['run']} | {' '.join(f'`{o}`' for o in r['overrides']) or '(as written)'} "
            f"| {r['layers'] or ''} | {_rows(r['transfer_rows'])} | {_f(r['teacher'])} "
            f"| {_f(r['student_validation'])} | {_f(r['student_fp32'])} | **{_f(r['int8'])}** "
            f"| {r['kept']:.1%} | {_f(r['drop_points'], 2)} [{_f(ci[0], 2)}, {_f(ci[1], 2)}] "
            f"| {r['speedup']:.1f}x ({r['int8_p50_ms']:.2f} against {r['teacher_p50_ms']:.1f}) "
            f"| {_f(r['bundle_mb'], 1)} | {_minutes(r['wall_s'])} |")
    if rows and "student" in goals:
        best = max(rows, key=lambda r: r["int8"])
        lines += ["", f"Goals (the issue's): int8 student >= {goals['student']:.3f}: best "
                  f"{best['int8']:.4f} ({best['run']}), "
                  f"{'met' if best['int8'] >= goals['student'] else 'missed'}"
                  + (f"; kept >= {goals['kept']:.0%}: best "
                     f"{max(r['kept'] for r in rows):.1%}, "
                     f"{'met' if max(r['kept'] for r in rows) >= goals['kept'] else 'missed'}"
                     if "kept" in goals else "") + "."]
    return "\n".join(lines) + "\n"


def plot(record: dict, path: Path) -> None:
    """A bar per run: the int8 student with its drop's 95% interval, the teacher's figure
    and the goals as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = record["rows"]
    goals = TASKS[record["task"]]["goals"]
    # (wide enough for the title with a single row)
    fig, ax = plt.subplots(figsize=(max(4.8, 1.6 + 1.3 * len(rows)), 3.6))
    xs = range(len(rows))
    # (the drop's 95% interval, read as the student's: the teacher's figure less it)
    # (clipped at 0: a bootstrap's interval may not hold the figure it was drawn around)
    below = [max(0.0, r["int8"] - (r["teacher"] - r["drop_ci95"][1] / 100))
             if r["drop_ci95"] else 0 for r in rows]
    above = [max(0.0, (r["teacher"] - r["drop_ci95"][0] / 100) - r["int8"])
             if r["drop_ci95"] else 0 for r in rows]
    ax.bar(xs, [r["int8"] for r in rows], yerr=[below, above], capsize=3,
           color="tab:blue", label="int8 student")
    for x, r in zip(xs, rows):
        ax.hlines(r["teacher"], x - 0.4, x + 0.4, color="tab:orange",
                  label="teacher" if x == 0 else None)
        if "kept" in goals:
            ax.hlines(r["teacher"] * goals["kept"], x - 0.4, x + 0.4, color="tab:orange",
                      ls=":", label=f"{goals['kept']:.0%} of it" if x == 0 else None)
    if "student" in goals:
        ax.axhline(goals["student"], color="k", lw=0.8, ls="--", label="goal")
    ax.set_xticks(list(xs), [r["run"] for r in rows], rotation=15, fontsize=8)
    low = min([r["int8"] for r in rows] + [goals.get("student", 1)])
    ax.set_ylim(low - 0.03, max(r["teacher"] for r in rows) + 0.01)
    ax.set_ylabel(rows[0]["metric"] if rows else "")
    ax.set_title(f"{record['name']}: one lever at a time")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*", type=Path, help="finished `edgetransfer run` folders")
    ap.add_argument("--name", required=True, help="the table's name (its record and plot)")
    ap.add_argument("--task", choices=list(TASKS), required=True)
    ap.add_argument("--render-only", action="store_true",
                    help="render the record as it is; no run folder is read")
    ap.add_argument("--records", type=Path, default=ROOT / "bench/records")
    ap.add_argument("--results-md", type=Path, default=ROOT / "bench/RESULTS.md")
    args = ap.parse_args()
    path = record_path(args.records, args.name)
    old = _json(path)
    if args.render_only:
        if old is None:
            raise SystemExit(f"{path}: no record yet; give run folders")
        record = old
    else:
        if not args.runs:
            raise SystemExit("give at least one run folder (or --render-only)")
        record = merged(old, args.name, args.task, [collect(f) for f in args.runs])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    write_section(args.results_md, render(record), f"levers-{args.name}")
    plot(record, args.results_md.parent / f"levers-{args.name}.png")
    print(render(record))


if __name__ == "__main__":
    main()
