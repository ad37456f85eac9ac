"""Distil an SST-2 teacher into 3- and 2-layer students; measure kept accuracy and time.

    python bench/distill_sst2.py --data ../shared/data/sst2 \
        --teacher bench/results/finetune-sst2-full          # reuse a fine-tuned teacher
    python bench/distill_sst2.py --data ../shared/data/sst2 --sweep   # the loss defaults

Everything is evaluated on the GLUE validation.tsv (872 rows), the split published SST-2
figures use. Model selection (early stopping) uses the first 872 rows of dev.tsv; the rest
of dev.tsv, labels dropped, is the optional unlabelled transfer text. Without --teacher, a
teacher is fine-tuned first (full, on a seeded --sample of train.tsv). Results go to
bench/results/distill_sst2.json and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from finetune_methods import sst2_files  # noqa: E402  (the same sample for both benches)

DEV_SPARE = 5863  # dev.tsv rows after the model-selection ones


def run(cmd: list[str]) -> float:
    print("$", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/sst2")
    ap.add_argument("--teacher", type=Path, help="a fine-tuned SST-2 teacher to reuse")
    ap.add_argument("--sample", type=int, default=5000)
    ap.add_argument("--epochs", default="3")
    ap.add_argument("--students", default="3,2")
    ap.add_argument("--unlabeled", choices=["no", "yes", "both"], default="both")
    ap.add_argument("--hidden-weight", default=None, help="passed to distill")
    ap.add_argument("--sweep", action="store_true", help="grid over T, alpha, hidden weight")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results")
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args()
    if not (args.data / "train.tsv").exists():
        sys.exit(f"{args.data}: no train.tsv; pass --data pointing at shared/data/sst2")

    # the spare dev.tsv rows only (5,863: the figures in bench/RESULTS.md)
    files = sst2_files(args.data, args.sample, args.seed, args.out / "sst2-sample",
                       unlabeled=DEV_SPARE)
    py = [sys.executable, "-m", "edgetransfer"]
    common = ["--train", str(files["train"]), "--validation", str(files["validation"]),
              "--test", str(files["test"]), "--device", "cpu", "--seed", str(args.seed),
              "--overwrite"]
    teacher = args.teacher or args.out / "distill-teacher"
    teacher_wall = None
    if not args.teacher:
        teacher_wall = run(py + ["finetune", "--model", "minilm-l6", "--method", "full",
                                 "--out", str(teacher)] + common)
    unl = files["unlabeled"]

    if args.sweep:
        # the plain run (T=2, alpha=0.5, hidden 0, lr 1e-4) is distill-sst2-3l: each row
        # changes one thing from it
        grid = [{"temperature": t, "alpha": a, "hidden_weight": h, "lr": lr}
                for t, a, h, lr in [(4, 0.5, 0, 1e-4), (2, 0.9, 0, 1e-4),
                                    (2, 0.5, 1, 1e-4), (2, 0.5, 0, 3e-4)]]
        variants = [(3, False, g) for g in grid]
    else:
        flags = {"no": [False], "yes": [True], "both": [False, True]}[args.unlabeled]
        variants = [(int(k), u, {}) for k in args.students.split(",") for u in flags]

    results = []
    for layers, use_unl, loss in variants:
        name = f"distill-sst2-{layers}l" + ("-unl" if use_unl else "") + "".join(
            f"-{k[0]}{v}" for k, v in loss.items()) if not args.sweep else \
            f"sweep-sst2-{layers}l-T{loss['temperature']}-a{loss['alpha']}" \
            f"-h{loss['hidden_weight']}-lr{loss['lr']}"
        out = args.out / name
        cmd = py + ["distill", "--teacher", str(teacher), "--student-layers", str(layers),
                    "--out", str(out), "--epochs", args.epochs] + common
        cmd += [x for k, v in loss.items() for x in (f"--{k.replace('_', '-')}", str(v))]
        if use_unl:
            cmd += ["--unlabeled", str(unl)]
        if args.hidden_weight is not None and not args.sweep:
            cmd += ["--hidden-weight", args.hidden_weight]
        wall = run(cmd)
        m = json.loads((out / "metrics.json").read_text())
        s = json.loads((out / "settings.json").read_text())
        results.append({
            "student": name, "layers": layers, "kept_layers": s["keep_layers"],
            "unlabeled": use_unl, **loss, "wall_s": round(wall, 1),
            "hidden_weight": s["config"]["hidden_weight"],
            "transfer_rows": s["transfer_rows"],
            "teacher_accuracy": m["teacher"]["test"]["accuracy"],
            "student_accuracy": m["test"]["accuracy"],
            "kept": m["comparison"]["test_accuracy_kept"],
            "epochs_run": m["training"]["epochs_run"],
            "student_parameters": m["comparison"]["student"]["parameters"],
        })
    record = {"date": time.strftime("%Y-%m-%d"), "teacher": str(teacher),
              "teacher_wall_s": teacher_wall, "sample": args.sample, "sweep": args.sweep,
              "results": results}
    target = args.out / ("distill_sst2_sweep.json" if args.sweep else "distill_sst2.json")
    target.write_text(json.dumps(record, indent=2))
    print("\n| student | unlabelled | T | alpha | hidden | lr | teacher acc | student acc | kept |"
          " epochs | wall (s) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['layers']} layers {r['kept_layers']} | {r['transfer_rows']['unlabelled']} |"
              f" {r.get('temperature', 2)} | {r.get('alpha', 0.5)} | {r.get('hidden_weight', 0)}"
              f" | {r.get('lr', 1e-4)}"
              f" | {r['teacher_accuracy']:.4f} | {r['student_accuracy']:.4f} | {r['kept']:.4f} |"
              f" {r['epochs_run']} | {r['wall_s']} |")


if __name__ == "__main__":
    main()
