"""Issue 26's proof: the same recipes before and after a change, and the gate against the bundle.

    python bench/scoring_path.py run --rev 3a38988 --label before   # in a worktree of REV
    python bench/scoring_path.py run --label after --from export    # this checkout
    python bench/scoring_path.py render

`run` runs the quickstart, CoNLL-2003 and Fashion-MNIST recipes, the two larger ones reduced
so that both sides fit one session (3,000 training rows, one epoch of fine-tuning and one of
distillation; the accuracy gates lifted so that a weak run is still measured), into
bench/results/scoring-path/RECIPE. With --rev it runs the code of that revision, from a git
worktree of it. "after" passes `--from export`: the trained steps are reused when their
step keys are unchanged (the log says "unchanged, reusing": the configs hash the same), and
export, verify and package re-run with this checkout's code. Then, for the CoNLL bundle, its
entity F1 on raw text computed independently of edgetransfer's scoring code: each test
sentence's words joined by spaces, the bundle's own Predictor (predict.py), its spans
matched to the gold spans by type and character offsets (the method bench/conll2003.py used
before the change). Each side's verify.json, pipeline.json and that figure are kept as
LABEL-RECIPE-*.json.

`render` writes the section "scoring-path" of bench/RESULTS.md from those files.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_all import write_section  # noqa: E402

OUT = ROOT / "bench/results/scoring-path"
SHARED = ROOT.parent / "shared/data"
REDUCED = ["data.train_sample=3000", "finetune.epochs=1", "distill.epochs=1",
           "verify.max_accuracy_drop=100", "export.0.max_accuracy_drop=100"]
RECIPES = {  # recipe -> its overrides
    "quickstart": [],
    "conll2003": [f"data.dir={SHARED / 'conll2003'}", *REDUCED],
    "fashion-mnist": [f"data.dir={ROOT / 'models/data/fashion-mnist'}", *REDUCED],
}
GOAL_POINTS = 0.1  # issue 26: the bundle's entity F1 on raw text vs verify's, in points


def bundle_f1(bundle: Path, data: Path) -> dict:
    """The bundle's entity F1 on raw text, by character spans (see the docstring)."""
    from seqeval.metrics.sequence_labeling import get_entities

    from edgetransfer.bundle.runtime.predict import Predictor
    from edgetransfer.tasks import get

    predictor = Predictor(bundle)
    names = predictor.labels
    ds = get("token-classification").read_eval(str(data), names)
    tp = n_pred = n_gold = 0
    for words, tags in zip(ds["tokens"], ds["label"]):
        text, starts = "", []
        for w in words:
            starts.append(len(text) + (1 if text else 0))
            text = f"{text} {w}" if text else w
        gold = {(kind, starts[a], starts[b] + len(words[b]))
                for kind, a, b in get_entities([names[t] for t in tags])}
        pred = {(e["type"], e["start"], e["end"])
                for e in predictor.predict([text])[0]["entities"]}
        tp, n_pred, n_gold = tp + len(gold & pred), n_pred + len(pred), n_gold + len(gold)
    p, r = tp / max(n_pred, 1), tp / max(n_gold, 1)
    return {"entity_f1": round(2 * p * r / max(p + r, 1e-12), 4), "precision": round(p, 4),
            "recall": round(r, 4), "entities": n_gold, "sentences": len(ds)}


def run(args) -> None:
    code = ROOT
    if args.rev:
        code = Path(f"/tmp/edgetransfer-{args.rev}")
        if not code.exists():
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-f", str(code),
                            args.rev], check=True)
    env = {**os.environ, "PYTHONPATH": str(code)}
    OUT.mkdir(parents=True, exist_ok=True)
    if not (ROOT / "models/data/fashion-mnist").exists():
        subprocess.run([sys.executable, str(ROOT / "recipes/data/fashion_mnist.py"), "--out",
                        str(ROOT / "models/data/fashion-mnist")], check=True)
    for recipe, overrides in RECIPES.items():
        root = OUT / recipe
        cmd = [sys.executable, "-m", "edgetransfer", "run", str(code / f"recipes/{recipe}.yaml"),
               f"output={root}", "verify.threads=1", *overrides] + (
                   ["--from", args.from_step] if args.from_step else [])
        print("$", " ".join(cmd), flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=code, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        print(proc.stdout, flush=True)
        proc.check_returncode()
        for name in ("verify/verify.json", "pipeline.json"):
            shutil.copyfile(root / name, OUT / f"{args.label}-{recipe}-{Path(name).name}")
        # (the steps the pipeline reused: their keys, configs included, hashed the same)
        reused = [line.split("] ", 1)[1].split(":", 1)[0] for line in proc.stdout.splitlines()
                  if "unchanged, reusing" in line and "] " in line]
        (OUT / f"{args.label}-{recipe}-run.json").write_text(json.dumps(
            {"command": cmd, "rev": args.rev or _head(), "reused": reused,
             "wall_s": round(time.perf_counter() - t0, 1)}, indent=2))
    f1 = subprocess.run([sys.executable, __file__, "bundle-f1"], check=True, cwd=code,
                        env=env, capture_output=True, text=True).stdout
    (OUT / f"{args.label}-conll2003-bundle-f1.json").write_text(f1)


def _head() -> str:
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()


def _models(verify: dict) -> dict:
    return {m["name"]: m for m in [verify["reference"], *verify["candidates"]]}


def _run(recipe: str, label: str = "after") -> dict:
    return json.loads((OUT / f"{label}-{recipe}-run.json").read_text())


def render(results_md: Path) -> None:
    rows, sides = [], {}
    for label in ("before", "after"):
        sides[label] = {r: json.loads((OUT / f"{label}-{r}-verify.json").read_text())
                        for r in RECIPES}
    run_info = {label: json.loads((OUT / f"{label}-conll2003-run.json").read_text())
                for label in sides}
    for recipe in RECIPES:
        before, after = (_models(sides[s][recipe]) for s in ("before", "after"))
        metric = sides["after"][recipe].get("metric", "accuracy")
        for name in after:
            b, a = before[name]["metrics"][metric], after[name]["metrics"][metric]
            rows.append(f"| {recipe} | {name} | {metric} | {b:.4f} | {a:.4f} | "
                        f"{100 * (a - b):+.2f} |")
    f1 = {s: json.loads((OUT / f"{s}-conll2003-bundle-f1.json").read_text()) for s in sides}
    int8 = {s: _models(sides[s]["conll2003"])["onnx-int8"]["metrics"]["entity_f1"]
            for s in sides}
    gaps = {s: 100 * abs(int8[s] - f1[s]["entity_f1"]) for s in sides}
    text = f"""## One scoring path, the gate against the bundle (issue 26), {date.today()}

Before: {run_info['before']['rev']}; after: {run_info['after']['rev']} (export, verify and
package re-run with the new code; a trained step reused where its key is unchanged, listed
below: a recipe whose data paths are relative to it names the other worktree's files, so its
steps re-run, from the same seed).
The quickstart recipe as written; CoNLL-2003 and Fashion-MNIST reduced to 3,000 training rows
and one epoch each of fine-tuning and distillation (so both sides fit one session: these are
not the recipes' headline figures), accuracy gates lifted. verify on each recipe's test data.

**The gate and the bundle (CoNLL-2003 int8 student).** The bundle's own entity F1 on raw
text, computed independently of edgetransfer's scoring code (character spans of predict.py's
entities against the gold spans), against verify's figure for the same model:

| side | verify's entity F1 | the bundle on raw text | gap, points | goal |
| --- | ---: | ---: | ---: | --- |
| before | {int8['before']:.4f} | {f1['before']['entity_f1']:.4f} | {gaps['before']:.2f} | |
| after | {int8['after']:.4f} | {f1['after']['entity_f1']:.4f} | {gaps['after']:.2f} | \
<= {GOAL_POINTS} |

Every figure verify reports is now what the bundle's runtime answers from the input a user
gives it (edgetransfer/measure/shipped.py); a tagger's spans are read back onto the gold words
by the rule in edgetransfer/tasks/spans.py. Steps the "after" runs reused (their keys
unchanged): {'; '.join(f"{r}: {', '.join(_run(r)['reused']) or 'none'}" for r in RECIPES)}.

**Every model's figure, before and after** (text classification and images: the same model
answers the same on the same inputs, so the figures should not move; the tagger's moves by
design, from scoring gold words strictly to scoring what the bundle prints):

| recipe | model | metric | before | after | change, points |
| --- | --- | --- | ---: | ---: | ---: |
""" + "\n".join(rows) + "\n\n"
    write_section(results_md, text, "scoring-path")
    print(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    r = sub.add_parser("run")
    r.add_argument("--label", required=True, choices=("before", "after"))
    r.add_argument("--rev", help="run this revision's code (a git worktree of it)")
    r.add_argument("--from", dest="from_step", help="edgetransfer run --from STEP")
    sub.add_parser("bundle-f1")
    m = sub.add_parser("render")
    m.add_argument("--results-md", type=Path, default=ROOT / "bench/RESULTS.md")
    args = ap.parse_args()
    if args.mode == "run":
        run(args)
    elif args.mode == "bundle-f1":
        print(json.dumps(bundle_f1(OUT / "conll2003/bundle",
                                   SHARED / "conll2003/test.txt")))
    else:
        render(args.results_md)


if __name__ == "__main__":
    main()
