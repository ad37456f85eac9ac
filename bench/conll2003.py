"""CoNLL-2003 named entities end to end: recipes/conll2003.yaml, timed, with its figures.

    python bench/conll2003.py --data ../shared/data/conll2003 --out bench/results/conll2003

Runs `edgetransfer run recipes/conll2003.yaml` (minilm-l6 teacher, full fine-tune on all
14,041 train sentences; a 3-layer student; int8 and fp32 ONNX of the student; verify on
test.txt; the int8 bundle) with the accuracy gates lifted, so a weak run is still measured
(the table says whether each goal is met). Then, from the run's own records:

- the entity-level (seqeval, strict IOB2) and token-level (per tag, the articles' layout)
  reports on test.txt of the teacher, the student and the int8 student (verify.json);
- the int8 student's speed-up over the PyTorch teacher at batch 1, one sentence a call,
  one thread (verify's interleaved rounds);
- the bundle's size, cold start and per-sentence latency (package, timed on test.txt), and
  the bundle's own entity F1 on raw text: each test sentence's words joined by spaces, run
  through predict.py's Predictor (torch-free), its spans read onto the gold words as
  export and verify read them (edgetransfer/tasks/spans.py; measure/shipped.py).

Writes OUT/conll2003.json and OUT/conll2003.png (entity F1 per type), and puts the tables as a
section of bench/RESULTS.md (--render-only: again from OUT/conll2003.json). A re-run reuses
every pipeline step whose inputs and settings are unchanged (--force re-runs them). Takes ~38
min on the project's 2-core CPU (teacher ~22, student ~12, exports, verify and bundle ~4).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_all import _json, environment, verify_report, write_section  # noqa: E402
from run_all import run_recipe as recipe_run  # noqa: E402

# The goals, each stated once (the table and the JSON read them).
GOALS = {"teacher_entity_f1": 0.88, "teacher_token_micro_f1": 0.973, "kept": 0.97,
         "int8_vs_fp32_points": 1.0, "speedup": 8.0, "wall_min": 45.0}


def run_recipe(args, root: Path) -> dict:
    return recipe_run(ROOT / "recipes/conll2003.yaml", root, [
        f"data.dir={args.data.resolve()}", "verify.threads=1", "verify.max_accuracy_drop=100",
        "export.0.max_accuracy_drop=100"], args.force)


def bundle_f1(bundle: Path, data: Path) -> dict:
    """The bundle's entity F1 on raw text (see the module's docstring), scored by the
    function export and verify score with."""
    from edgetransfer.bundle.runtime.predict import Predictor
    from edgetransfer.measure import shipped
    from edgetransfer.tasks import get

    task = get("token-classification")
    predictor = Predictor(bundle)
    ds = task.read_eval(str(data), predictor.labels)
    t0 = time.perf_counter()
    report = shipped.bundle_report(task, predictor, ds)
    return {"entity_f1": round(report["entity_f1"], 4),
            "precision": round(report["entity_precision"], 4),
            "recall": round(report["entity_recall"], 4),
            "entities": sum(t["support"] for t in report["per_type"].values()),
            "sentences": len(ds), "seconds": round(time.perf_counter() - t0, 1)}


def figures(root: Path, run: dict, data: Path) -> dict:
    verify = verify_report(root / "verify" / "verify.json")
    models = {"teacher": verify.reference} | {c.name: c for c in verify.candidates}
    b1 = {k: m.latency["batch1"] for k, m in models.items()}
    t, q, f = (verify.score(models[k], "entity_f1") for k in ("teacher", "onnx-int8",
                                                               "onnx-fp32"))
    bundle = _json(root / "bundle.json") or {}
    return {
        "date": date.today().isoformat(), "env": environment(), "run": run,
        "reports": {k: m.metrics for k, m in models.items()},
        "sizes_mb": {k: round(m.size_bytes / 2**20, 1) for k, m in models.items()},
        "latency_batch1": {k: {"p50_ms": v.p50_ms, "p50_ci_ms": v.p50_ci_ms, "p90_ms": v.p90_ms}
                           for k, v in b1.items()},
        "speedup_p50": round(b1["teacher"].p50_ms / b1["onnx-int8"].p50_ms, 2),
        "kept": round(q / t, 4),
        "int8_vs_fp32_points": round(100 * (f - q), 2),
        "drops": {k: m.accuracy_drop for k, m in models.items() if k != "teacher"},
        "bundle": {"archive_mb": round(bundle.get("archive_bytes", 0) / 2**20, 1),
                   "unpacked_mb": round(bundle.get("unpacked_bytes", 0) / 2**20, 1),
                   **(bundle.get("measurements") or {})},
        "bundle_raw_text": bundle_f1(root / "bundle", data / "test.txt"),
        "train": {"sentences": 14041, "validation": "dev.txt (3,250)",
                  "test": "test.txt (3,453 sentences, 46,435 words)"},
    }


def _table(rows: dict, title: str) -> list[str]:
    out = [f"| {title} | precision | recall | f1-score | support |",
           "| --- | --- | --- | --- | --- |"]
    out += [f"| {k} | {r['precision']:.4f} | {r['recall']:.4f} | {r['f1-score']:.4f} | "
            f"{r['support']} |" for k, r in rows.items()]
    return out


def render(r: dict) -> str:
    t, q = r["reports"]["teacher"], r["reports"]["onnx-int8"]
    wall = r["run"]["wall_s"] / 60
    yes = {True: "**yes**", False: "no"}
    lines = [
        f"## CoNLL-2003 named entities (bench/conll2003.py), {r['date']}", "",
        f"`{r['run']['command']}` took {wall:.1f} min (steps: " + ", ".join(
            f"{k} {v:.0f} s" for k, v in r["run"]["steps"].items() if v) + ").",
        f"Machine: {r['env']['machine']['cpu']}, {r['env']['machine'].get('logical_cpus', '?')}"
        f" logical CPUs; torch {r['env']['versions']['torch']}, transformers "
        f"{r['env']['versions']['transformers']}, onnxruntime "
        f"{r['env']['versions']['onnxruntime']}. Train: all {r['train']['sentences']:,} "
        f"sentences of train.txt; model selection on {r['train']['validation']}; scored on "
        f"{r['train']['test']}. Latency: one thread, batch 1, one sentence a call.", "",
        "| figure | goal | measured | met? |", "| --- | --- | --- | --- |",
        f"| teacher (minilm-l6, uncased) entity-level F1 | ≥ {GOALS['teacher_entity_f1']} | "
        f"{t['entity_f1']:.4f} | {yes[t['entity_f1'] >= GOALS['teacher_entity_f1']]} |",
        f"| teacher token-level micro-avg F1 (46,435 words) | ≥ "
        f"{GOALS['teacher_token_micro_f1']} | {t['token_micro_f1']:.4f} | "
        f"{yes[t['token_micro_f1'] >= GOALS['teacher_token_micro_f1']]} |",
        f"| 3-layer int8 student: entity F1 kept | ≥ {GOALS['kept']:.0%} | {r['kept']:.2%} "
        f"({q['entity_f1']:.4f} / {t['entity_f1']:.4f}) | {yes[r['kept'] >= GOALS['kept']]} |",
        f"| int8 vs fp32 ONNX of the same student, entity F1 | within "
        f"{GOALS['int8_vs_fp32_points']} pt | {r['int8_vs_fp32_points']:+.2f} pt | "
        f"{yes[abs(r['int8_vs_fp32_points']) <= GOALS['int8_vs_fp32_points']]} |",
        f"| int8 student over PyTorch teacher, p50 per sentence | ≥ {GOALS['speedup']:.0f}× | "
        f"{r['speedup_p50']}× ({r['latency_batch1']['teacher']['p50_ms']:.3f} → "
        f"{r['latency_batch1']['onnx-int8']['p50_ms']:.3f} ms) | "
        f"{yes[r['speedup_p50'] >= GOALS['speedup']]} |",
        f"| the recipe end to end on 2 cores | ≤ {GOALS['wall_min']:.0f} min | {wall:.1f} min | "
        f"{yes[wall <= GOALS['wall_min']]} |", "",
        "Each model on test.txt (`edgetransfer verify`):", "",
        "| model | precision | MB | entity F1 | entity P / R | token micro F1 | drop pts "
        "[95% CI] | word flips | p50 ms [95% CI] | p90 ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, rep in r["reports"].items():
        lat, drop = r["latency_batch1"][name], (r["drops"].get(name) or {})
        d = drop.get("entity_f1")
        lines.append(
            f"| {name} | {'int8' if 'int8' in name else 'fp32'} | {r['sizes_mb'][name]} | "
            f"{rep['entity_f1']:.4f} | {rep['entity_precision']:.4f} / "
            f"{rep['entity_recall']:.4f} | {rep['token_micro_f1']:.4f} | "
            + (f"{d['points']:+.2f} [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}] | "
               f"{drop['flip_rate']:.2%} | " if d else "(reference) | | ")
            + f"{lat['p50_ms']:.3f} [{lat['p50_ci_ms'][0]:.3f}, {lat['p50_ci_ms'][1]:.3f}] | "
              f"{lat['p90_ms']:.3f} |")
    for name in ("teacher", "student", "onnx-int8"):
        rep = r["reports"][name]
        lines += ["", f"{name}, token level (per tag; the articles' layout):", ""]
        lines += _table(rep["token_report"], "tag")
        entity = rep["per_type"] | {"micro avg": {
            "precision": rep["entity_precision"], "recall": rep["entity_recall"],
            "f1-score": rep["entity_f1"],
            "support": sum(v["support"] for v in rep["per_type"].values())}}
        lines += ["", f"{name}, entity level (seqeval, strict IOB2):", ""]
        lines += _table(entity, "entity")
    b, raw = r["bundle"], r["bundle_raw_text"]
    lines += ["", "The bundle (int8 student, tokenizer.json, predict.py; no torch):", "",
              "| archive MB | unpacked MB | cold start s | peak RSS MB | per sentence p50 / p90 "
              "ms | entity F1 on raw text |", "| --- | --- | --- | --- | --- | --- |",
              f"| {b['archive_mb']} | {b['unpacked_mb']} | {b.get('cold_start_s')} | "
              f"{b.get('peak_rss_mb')} | {b['latency']['p50_ms']} / {b['latency']['p90_ms']} | "
              f"{raw['entity_f1']:.4f} (P {raw['precision']:.4f}, R {raw['recall']:.4f}) |", "",
              "Entity F1 on raw text: test.txt's words joined by single spaces, tagged by the "
              "bundle's Predictor (its tokenizer's words, first sub-token, conlleval repair), "
              "its spans read onto the gold words as export and verify read them (a word "
              "takes the type of the span over its first character: docs/tasks.md), so it "
              "is verify's figure for the int8 model, taken from the bundle itself.", "",
              "![entity F1 per type](conll2003.png)", ""]
    return "\n".join(lines) + "\n"


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = ["teacher", "student", "onnx-int8"]
    types = sorted(r["reports"]["teacher"]["per_type"]) + ["micro"]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    x = np.arange(len(types))
    for i, name in enumerate(names):
        rep = r["reports"][name]
        values = [rep["per_type"][t]["f1-score"] for t in types[:-1]] + [rep["entity_f1"]]
        ax.bar(x + (i - 1) * 0.27, values, 0.27, label=name)
    ax.set_xticks(x, types)
    ax.set_ylim(0.6, 1.04)
    ax.set_ylabel("entity F1 (test.txt)")
    ax.set_title("CoNLL-2003: teacher, 3-layer student, int8 student")
    ax.legend(loc="upper center", ncol=3, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/conll2003")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/conll2003")
    ap.add_argument("--force", action="store_true", help="Re-run every pipeline step.")
    ap.add_argument("--results-md", type=Path, default=ROOT / "bench/RESULTS.md")
    ap.add_argument("--render-only", action="store_true", help="Render OUT/conll2003.json "
                    "again (tables, plot, RESULTS.md section) without running anything.")
    args = ap.parse_args()
    if args.render_only:
        r = json.loads((args.out / "conll2003.json").read_text())
    else:
        root = args.out.resolve() / "pipeline"
        run = run_recipe(args, root)
        if run["returncode"] != 0:
            sys.exit(f"the recipe failed (exit {run['returncode']}); see its output above")
        r = figures(root, run, args.data)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "conll2003.json").write_text(json.dumps(r, indent=2))
    plot(r, args.results_md.parent / "conll2003.png")
    text = render(r)
    print(text)
    write_section(args.results_md, text, "conll2003")


if __name__ == "__main__":
    main()
