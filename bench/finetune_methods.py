"""Fine-tune minilm-l6 with each method and record accuracy and wall time.

    python bench/finetune_methods.py intents                      # the quickstart data
    python bench/finetune_methods.py sst2 --data ../shared/data/sst2 --sample 5000

Runs the real CLI (one process per method, as a user would) on the CPU and writes
bench/results/finetune_<dataset>.json plus a markdown table on stdout. SST-2: a seeded sample
of train.tsv for training, dev.tsv's first 872 rows for model selection (validation), and
the GLUE validation.tsv as the test set that published figures use.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


SELECTION_ROWS = 872  # dev.tsv rows for model selection (early stopping); the rest is spare


def sst2_files(data: Path, sample: int, seed: int, work: Path,
               unlabeled: int = 0) -> dict[str, Path]:
    """A seeded sample of train.tsv written under bench/results (git-ignored), never the repo.

    With `unlabeled`, also that many texts for distillation, labels dropped: dev.tsv after
    the model-selection rows, then train.tsv rows outside the sample (the same shuffle), so
    they overlap neither training, selection nor validation.tsv, which scores every model.
    """
    work.mkdir(parents=True, exist_ok=True)
    lines = (data / "train.tsv").read_text(encoding="utf-8").splitlines()
    header, rows = lines[0], lines[1:]
    random.Random(seed).shuffle(rows)
    (work / "train.tsv").write_text("\n".join([header] + rows[:sample]) + "\n", encoding="utf-8")
    dev = (data / "dev.tsv").read_text(encoding="utf-8").splitlines()
    (work / "dev.tsv").write_text("\n".join(dev[:SELECTION_ROWS + 1]) + "\n", encoding="utf-8")
    files = {"train": work / "train.tsv", "validation": work / "dev.tsv",
             "test": data / "validation.tsv"}
    if unlabeled:
        spare = dev[SELECTION_ROWS + 1:] + rows[sample:]
        files["unlabeled"] = work / f"unlabeled-{unlabeled}.tsv"
        files["unlabeled"].write_text(
            "sentence\n" + "\n".join(line.split("\t")[0] for line in spare[:unlabeled]) + "\n",
            encoding="utf-8")
    return files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", choices=["intents", "sst2"])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/sst2")
    ap.add_argument("--sample", type=int, default=5000)
    ap.add_argument("--methods", default="full,lora,head")
    ap.add_argument("--epochs", default=None, help="override the CLI default")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results")
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args()

    if args.dataset == "intents":
        d = ROOT / "recipes/data/intents"
        files = {s: d / f"{s}.jsonl" for s in ("train", "validation", "test")}
    else:
        if not (args.data / "train.tsv").exists():
            sys.exit(f"{args.data}: no train.tsv; pass --data pointing at shared/data/sst2")
        files = sst2_files(args.data, args.sample, args.seed, args.out / "sst2-sample")

    results = []
    for method in args.methods.split(","):
        out = args.out / f"finetune-{args.dataset}-{method}"
        cmd = [sys.executable, "-m", "edgetransfer", "finetune", "--model", "minilm-l6",
               "--method", method, "--out", str(out), "--overwrite", "--device", "cpu",
               "--seed", str(args.seed)]
        cmd += [x for s, p in files.items() for x in (f"--{s}", str(p))]
        if args.epochs:
            cmd += ["--epochs", args.epochs]
        print("$", " ".join(cmd), flush=True)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - t0
        m = json.loads((out / "metrics.json").read_text())
        results.append({
            "method": method, "wall_s": round(wall, 1),
            "validation_accuracy": m["validation"]["accuracy"],
            "test_accuracy": m["test"]["accuracy"], "test_macro_f1": m["test"]["macro_f1"],
            "epochs_run": m["training"]["epochs_run"],
            "train_samples_per_second": m["training"]["train_samples_per_second"],
            "trainable_parameters": m["training"]["trainable_parameters"],
            "rows": json.loads((out / "settings.json").read_text())["rows"],
        })
    record = {"dataset": args.dataset, "machine": platform.processor() or platform.machine(),
              "cpus": __import__("os").cpu_count(), "date": time.strftime("%Y-%m-%d"),
              "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"finetune_{args.dataset}.json").write_text(json.dumps(record, indent=2))
    print("\n| method | test acc | test macro-F1 | val acc | epochs | wall (s) | train rows |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['method']} | {r['test_accuracy']:.4f} | {r['test_macro_f1']:.4f} | "
              f"{r['validation_accuracy']:.4f} | {r['epochs_run']} | {r['wall_s']} | "
              f"{r['rows']['train']} |")


if __name__ == "__main__":
    main()
