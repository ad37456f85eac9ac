"""Bundles on emulated ARM CPUs against this x86 host: the same predict.py, the same inputs.

    python bench/arm_emulation.py --data ../shared/data/sst2

For each bundle found (the SST-2 int8 bundle of `edgetransfer run recipes/sst2.yaml
output=models/sst2`, its fp32 twin, the quickstart's, and recipes/fashion-mnist.yaml's int8
and fp32 bundles from bench/fashion_mnist.py), 200 inputs (SST-2 validation texts, the
intents test texts, a seeded sample of the Fashion-MNIST test PNGs) go through predict.py
here and under qemu as a Cortex-A72 (Raspberry Pi 4) and a Cortex-A76 (Raspberry Pi 5)
(edgetransfer/device/arm_emulation.py). Recorded: the share of inputs whose label matches
the x86 run, the largest difference in any score, and the emulated run's wall time (qemu's,
not the board's: it says nothing about the board's speed). fp32 twins are packaged here
from the recipes' fp32 exports when missing. Writes OUT/arm_emulation.json and a section of
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_all import _json, environment, write_section  # noqa: E402

CPUS = ("cortex-a72", "cortex-a76")
N = 200


def fp32_twin(root: Path) -> Path | None:
    """root/bundle-fp32: the recipe's fp32 export packaged with its verify report."""
    out = root / "bundle-fp32"
    if (out / "manifest.json").exists():
        return out
    model, report = root / "onnx-fp32", root / "verify" / "verify.json"
    if not (model / "model.onnx").exists() or not report.exists():
        return None
    from edgetransfer.stages import package

    return package.run(package.PackageConfig(model=model, verify_report=report,
                                             target="linux-aarch64", out=out, measure=False,
                                             overwrite=True))


def inputs(args, tmp: Path) -> dict:
    """Input files (as predict.py --input reads them), by data set."""
    import csv

    files = {}
    sst2 = args.data / "validation.tsv"
    if sst2.exists():
        with sst2.open(encoding="utf-8") as f:
            texts = [r["sentence"] for r in csv.DictReader(f, delimiter="\t",
                                                           quoting=csv.QUOTE_NONE)][:N]
        files["sst2"] = tmp / "sst2.jsonl"
        files["sst2"].write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    intents = ROOT / "recipes/data/intents/test.jsonl"
    files["intents"] = tmp / "intents.jsonl"
    files["intents"].write_text("".join(intents.read_text().splitlines(True)[:N]))
    pngs = sorted((ROOT / "models/data/fashion-mnist/test").rglob("*.png"))
    if pngs:
        files["fashion"] = tmp / "fashion.txt"
        files["fashion"].write_text("".join(f"{p}\n" for p in random.Random(0).sample(pngs, N)))
    return files


def compare(here: list[dict], there: list[dict]) -> dict:
    agree = sum(a["label"] == b["label"] for a, b in zip(here, there)) / len(here)
    diff = max(abs(a["scores"][k] - b["scores"].get(k, float("nan")))
               for a, b in zip(here, there) for k in a["scores"])
    return {"inputs": len(here), "label_agreement": round(agree, 4), "max_score_diff": diff}


def lines(proc) -> list[dict]:
    if proc.returncode != 0:
        raise SystemExit(f"predict.py failed: {proc.stderr.strip()[-300:]}")
    return [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]


def main() -> None:
    import tempfile

    from edgetransfer.device import arm_emulation

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/sst2")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/arm-emulation")
    ap.add_argument("--sst2-root", type=Path, default=ROOT / "models/sst2",
                    help="The SST-2 pipeline's output folder (bench/run_all.py writes one "
                    "under bench/results/pipeline).")
    ap.add_argument("--render-only", action="store_true")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    summary = args.out / "arm_emulation.json"
    if args.render_only:
        r = _json(summary)
    else:
        bundles = {"sst2 int8": (args.sst2_root / "bundle", "sst2"),
                   "sst2 fp32": (fp32_twin(args.sst2_root), "sst2"),
                   "quickstart int8": (ROOT / "models/quickstart/bundle", "intents"),
                   "fashion-mnist int8": (ROOT / "models/bench-fashion-mnist/bundle", "fashion"),
                   "fashion-mnist fp32": (fp32_twin(ROOT / "models/bench-fashion-mnist"),
                                          "fashion")}
        r = {"date": date.today().isoformat(), "env": environment(), "rows": []}
        with tempfile.TemporaryDirectory() as tmp:
            files = inputs(args, Path(tmp))
            for name, (bundle, data) in bundles.items():
                if bundle is None or not (bundle / "manifest.json").exists() or \
                        data not in files:
                    print(f"skipping {name}: no bundle or data", flush=True)
                    continue
                here = lines(subprocess.run(
                    [sys.executable, "-I", "-B", "predict.py", "--input", str(files[data])],
                    cwd=bundle, capture_output=True, text=True))
                for cpu in CPUS:
                    t0 = time.perf_counter()
                    there = lines(arm_emulation.predict(bundle, cpu, ["--input",
                                                                       str(files[data])]))
                    row = {"bundle": name, "cpu": cpu, **compare(here, there),
                           "emulated_wall_s": round(time.perf_counter() - t0, 1),
                           "precision": json.loads((bundle / "manifest.json").read_text())
                           ["model"]["precision"]}
                    print(row, flush=True)
                    r["rows"].append(row)
        summary.write_text(json.dumps(r, indent=2), encoding="utf-8")
    write_section(ROOT / "bench/RESULTS.md", render(r), "arm-emulation")
    print(render(r))


def render(r: dict) -> str:
    out = ["## ARM, emulated: bundles on a Cortex-A72 and a Cortex-A76", "",
           f"Measured {r['date']} by `python bench/arm_emulation.py`: each bundle's predict.py "
           f"on the same {N} inputs here (x86, {r['env']['machine'].get('cpu')}) and under "
           f"qemu-user as the Raspberry Pi 4's and 5's CPUs (Debian bookworm's arm64 Python "
           f"3.11, the bundle's requirements as aarch64 wheels). Wall time is qemu's, not a "
           f"board's.", "",
           "| bundle | precision | CPU | labels as on x86 | max score diff | emulated s |",
           "| --- | --- | --- | --- | --- | --- |"]
    for row in r["rows"]:
        out.append(f"| {row['bundle']} | {row['precision']} | {row['cpu']} | "
                   f"{row['label_agreement']:.2%} ({row['inputs']}) | "
                   f"{row['max_score_diff']:.1e} | {row['emulated_wall_s']} |")
    return "\n".join(out) + "\n\n"


if __name__ == "__main__":
    main()
