"""What a newcomer with little data gets from the README's quickstart flags: 300 sentences of
named entities, 300 SST-2 rows, 60 pictures; one epoch and the default epochs.

    python bench/small_data.py --shared ../shared/data --work /tmp/small-data
    python bench/small_data.py --runs ner-1,ner-1-lr1e-4 --force      # some rows again

Each run is one `edgetransfer finetune` with the flags of the README's quickstart for its task
(README "Quickstart"), plus --epochs where a row says, plus --test so that the model is also
scored on rows nobody selected on:

- ner: minilm-l6 on ../shared/data/conll2003/train.txt --train-sample 300 (validation: 30 of
  them carved, the quickstart gives none); scored on the first 1,000 sentences of test.txt;
- text: minilm-l6 --method lora (the text quickstart's method) on SST-2 train.tsv
  --train-sample 300 (30 carved); scored on validation.tsv (872 rows);
- images: efficientnet-lite0 --image-size 64 on recipes/data/make_shapes.py's pictures (20 a
  class of circles, squares, triangles: 60; validation 30; test 60).

A row without --lr runs at the default of the day (settings.json records it); rows pinned to
another --lr show what the default was or could be. Each row records the validation and test
metric, the optimizer steps, the wall time and the floor verdict finetune gave
(edgetransfer/measure/floor.py). A run whose folder holds a finished result is reused
(--force runs it again). Writes WORK/small_data.json, bench/results/small_data.json and the
"Small data" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_all import _json, environment, write_section  # noqa: E402

TEST_SENTENCES = 1000  # of CoNLL-2003's test.txt: ~1,700 entities, a steady F1 in seconds

# row -> (case, extra flags, what it shows); no --epochs: the default
RUNS = {
    "ner-1": ("ner", ["--epochs", "1"], "quickstart, 1 epoch"),
    "ner-default": ("ner", [], "quickstart, default epochs"),
    "ner-1-lr1e-4": ("ner", ["--epochs", "1", "--lr", "1e-4"], "1 epoch, the old default lr"),
    "ner-default-lr1e-4": ("ner", ["--lr", "1e-4"], "default epochs, the old default lr"),
    "ner-1-lr5e-4": ("ner", ["--epochs", "1", "--lr", "5e-4"], "1 epoch, lr 5e-4"),
    "ner-1-lr1e-3": ("ner", ["--epochs", "1", "--lr", "1e-3"], "1 epoch, lr 1e-3"),
    "ner-1-lr3e-4": ("ner", ["--epochs", "1", "--lr", "3e-4"], "1 epoch, lr 3e-4"),
    "ner-default-lr3e-4": ("ner", ["--lr", "3e-4"], "default epochs, lr 3e-4"),
    "ner-default-lr5e-4": ("ner", ["--lr", "5e-4"], "default epochs, lr 5e-4"),
    # the same flags on ten times the sentences: does a default tuned on 300 still hold?
    "ner3000-default-lr1e-4": ("ner3000", ["--lr", "1e-4"], "3,000 sentences, the old lr"),
    "ner3000-default-lr5e-4": ("ner3000", ["--lr", "5e-4"], "3,000 sentences, lr 5e-4"),
    "text-1": ("text", ["--epochs", "1"], "quickstart, 1 epoch"),
    "text-default": ("text", [], "quickstart, default epochs"),
    "images-1": ("images", ["--epochs", "1"], "quickstart, 1 epoch"),
    "images-default": ("images", [], "quickstart, default epochs"),
    "images-1-lr1e-4": ("images", ["--epochs", "1", "--lr", "1e-4"],
                        "1 epoch, the old default lr"),
    "images-default-lr1e-4": ("images", ["--lr", "1e-4"], "default epochs, the old default lr"),
    "images-1-lr1e-3": ("images", ["--epochs", "1", "--lr", "1e-3"], "1 epoch, lr 1e-3"),
    "images-default-lr1e-3": ("images", ["--lr", "1e-3"], "default epochs, lr 1e-3"),
    "images-1-lr3e-3": ("images", ["--epochs", "1", "--lr", "3e-3"], "1 epoch, lr 3e-3"),
    "images-default-lr3e-3": ("images", ["--lr", "3e-3"], "default epochs, lr 3e-3"),
}


def first_sentences(source: Path, n: int, out: Path) -> Path:
    """The first `n` sentences of a CoNLL file (a blank line ends each)."""
    if not out.exists():
        lines, seen = [], 0
        for line in source.read_text(encoding="utf-8").splitlines():
            lines.append(line)
            if not line.strip() and len(lines) > 1 and lines[-2].strip() \
                    and not lines[-2].startswith("-DOCSTART-"):
                seen += 1
                if seen == n:
                    break
        out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def shapes(work: Path) -> Path:
    out = work / "shapes"
    if not out.exists():
        subprocess.run([sys.executable, str(ROOT / "recipes/data/make_shapes.py"), "--out",
                        str(out)], check=True)
    return out


def base_command(case: str, args) -> list[str]:
    """The README quickstart's finetune flags for the case, and a --test to score on."""
    if case in ("ner", "ner3000"):
        conll = args.shared / "conll2003"
        test = first_sentences(conll / "test.txt", TEST_SENTENCES,
                               args.work / f"conll-test-{TEST_SENTENCES}.txt")
        return ["--model", "minilm-l6", "--train", str(conll / "train.txt"), "--train-sample",
                "3000" if case == "ner3000" else "300", "--test", str(test)]
    if case == "text":
        sst2 = args.shared / "sst2"
        return ["--model", "minilm-l6", "--method", "lora", "--train", str(sst2 / "train.tsv"),
                "--train-sample", "300", "--test", str(sst2 / "validation.tsv")]
    data = shapes(args.work)
    return ["--model", "efficientnet-lite0", "--image-size", "64", "--train",
            str(data / "train"), "--validation", str(data / "validation"), "--test",
            str(data / "test")]


def run(name: str, args) -> dict:
    case, extra, what = RUNS[name]
    out = args.work / name
    cmd = [sys.executable, "-m", "edgetransfer", "finetune", *base_command(case, args),
           *extra, "--out", str(out)]
    wall = None
    if (out / "artifact.json").exists() and not args.force:
        print(f"reusing {out}", flush=True)
    else:
        print("$", shlex.join(cmd), flush=True)
        t0 = time.perf_counter()
        with open(args.work / f"{name}.log", "w") as log:
            code = subprocess.run(cmd + ["--overwrite"], stdout=log, stderr=subprocess.STDOUT,
                                  check=False).returncode
        wall = round(time.perf_counter() - t0, 1)
        if code != 0:
            return {"name": name, "case": case, "what": what, "failed": code,
                    "command": shlex.join(cmd), "log": str(args.work / f"{name}.log")}
    metrics, settings = _json(out / "metrics.json"), _json(out / "settings.json")
    metric = metrics["floor"]["metric"]
    training = metrics["training"]
    return {"name": name, "case": case, "what": what, "command": shlex.join(cmd[3:]),
            "method": settings["config"]["method"], "lr": settings["learning_rate"],
            "epochs": settings["config"]["epochs"], "warmup_ratio":
            settings["config"]["warmup_ratio"], "steps": training["steps"],
            "train_rows": settings["rows"]["train"], "metric": metric,
            "validation": metrics["validation"][metric], "test": metrics["test"][metric],
            "floor": metrics["floor"]["verdict"], "why": metrics["floor"]["why"],
            "causes": metrics["floor"].get("causes"),
            "wall_s": wall if wall is not None else training["wall_time_s"]}


def render(r: dict) -> str:
    env = r["environment"]
    lines = [
        (f"## Small data: the quickstarts on 300 sentences or 60 pictures (issue 27), "
         f"{r['date']}"), "",
        (f"`python bench/small_data.py` on {env['machine'].get('cpu')} "
        f"({env['machine'].get('logical_cpus')} cores, shared with other work: wall times "
        f"vary with its load), torch {env['versions'].get('torch')}. Each row is one "
        f"`edgetransfer finetune` with the README quickstart's flags for its task; ner: 300 "
        f"sentences sampled from CoNLL-2003 train.txt (30 carved for validation), tested on "
        f"the first {TEST_SENTENCES:,} sentences of test.txt; text: 300 rows of SST-2 "
        f"train.tsv, LoRA "
        f"(30 carved), tested on validation.tsv; images: make_shapes.py's 60 pictures of 3 "
        f"classes, 64 px (validation 30, test 60). floor: finetune's verdict on validation "
        f"(edgetransfer/measure/floor.py)."), "",
        "| row | what | method | lr | epochs | steps | validation | test | floor | wall s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    by_name = {row["name"]: row for row in r["runs"] if row.get("failed") is None}
    for case, old in (("ner", "1e-4"), ("text", None), ("images", "1e-4")):
        now = [by_name.get(f"{case}-{e}") for e in ("1", "default")]
        if not all(now):
            continue
        said = (f"- **{case}**, the quickstart at today's default lr {now[0]['lr']:g}: "
                f"test {now[0]['metric']} {now[0]['test']:.3f} after 1 epoch "
                f"({now[0]['floor']}), {now[1]['test']:.3f} after the default epochs "
                f"({now[1]['floor']})")
        before = [by_name.get(f"{case}-{e}-lr{old}") for e in ("1", "default")] if old else []
        if before and all(before):
            said += (f"; at the old default {old}: {before[0]['test']:.3f} "
                     f"({before[0]['floor']}) and {before[1]['test']:.3f} "
                     f"({before[1]['floor']})")
        lines.insert(-2, said + ".")
    lines.insert(-2, "")
    for row in r["runs"]:
        if row.get("failed") is not None:
            lines.append(f"| {row['name']} | {row['what']}: failed (exit {row['failed']}) | "
                         f"| | | | | | | |")
            continue
        lines.append(f"| {row['name']} | {row['what']} | {row['method']} | {row['lr']:g} | "
                     f"{row['epochs']:g} | {row['steps']} | {row['metric']} "
                     f"{row['validation']:.4f} | {row['test']:.4f} | {row['floor']} | "
                     f"{row['wall_s']:.0f} |")
    return "\n".join(lines + [""]) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared/data")
    ap.add_argument("--work", type=Path, default=Path("/tmp/small-data"))
    ap.add_argument("--runs", default=",".join(RUNS), help="rows to run, comma-separated")
    ap.add_argument("--force", action="store_true", help="run again rows already done")
    ap.add_argument("--no-section", action="store_true", help="leave bench/RESULTS.md alone")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    wanted = [n.strip() for n in args.runs.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in RUNS]
    if unknown:
        ap.error(f"--runs: no row {unknown[0]!r}; the rows are {', '.join(RUNS)}")
    record_file = args.work / "small_data.json"
    done = {row["name"]: row for row in (_json(record_file) or {}).get("runs", [])}
    for name in wanted:
        done[name] = run(name, args)
        print(json.dumps(done[name]), flush=True)
        r = {"date": date.today().isoformat(), "environment": environment(),
             "runs": [done[n] for n in RUNS if n in done]}
        record_file.write_text(json.dumps(r, indent=2))
    results = ROOT / "bench/results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "small_data.json").write_text(record_file.read_text())
    if not args.no_section:
        write_section(ROOT / "bench/RESULTS.md", render(r), "small-data")
    print(render(r))


if __name__ == "__main__":
    main()
