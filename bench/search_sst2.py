"""`edgetransfer search` on SST-2: the Pareto front of student depth x number format x
vocabulary pruning, from the teacher trained on all of train.tsv (recipes/sst2-search.yaml).

    python bench/search_sst2.py \
        --budget "latency=1ms size=5MB kept=0.97" [--no-early-stop]

Runs the command (the teacher step is reused when recipes/sst2-search.yaml's run made it),
logs to bench/results/search-sst2.log, copies the plot to bench/search_sst2.png and prints
search.md; every candidate's figures are in models/sst2-search/search/search.json. Then, for
the goal "the 2-layer int8 bundle at half the size", packages the 2-layer candidates named
by --bundles and prints their archive sizes beside their accuracy.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None,
                    help="the SST-2 folder [default: the recipe's, ../shared/data/sst2]; a "
                    "spelling other than the one the teacher was trained with re-trains it "
                    "(step keys hold the data paths)")
    ap.add_argument("--budget", default="latency=1ms size=5MB kept=0.97")
    ap.add_argument("--no-early-stop", action="store_true")
    ap.add_argument("--bundles", default="2L-int8-dynamic,2L-int8-dynamic-pruned,"
                    "2L-int8-int4emb-pruned,2L-int4-pruned",
                    help="candidates to package and measure as archives")
    args = ap.parse_args()
    data = args.data or ROOT.parent / "shared/data/sst2"
    if not (data / "train.tsv").exists():
        sys.exit(f"{data}: no train.tsv; pass --data pointing at shared/data/sst2")
    log = ROOT / "bench/results/search-sst2.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "edgetransfer", "search", "recipes/sst2-search.yaml",
           *([f"data.dir={args.data.resolve()}"] if args.data else []), "--budget", args.budget]
    if args.no_early_stop:
        cmd.append("--no-early-stop")
    print("$", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    with open(log, "a", encoding="utf-8") as f:
        code = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT).returncode
    print(f"exit {code} after {(time.perf_counter() - t0) / 60:.1f} min (log: {log})")
    out = ROOT / "models/sst2-search/search"
    if (out / "search.png").exists():
        shutil.copyfile(out / "search.png", ROOT / "bench/search_sst2.png")
    print((out / "search.md").read_text(encoding="utf-8"))
    report = json.loads((out / "search.json").read_text(encoding="utf-8"))
    by_name = {c["name"]: c for c in report["candidates"]}
    print("| candidate | accuracy | archive MB | unpacked MB |\n| --- | --- | --- | --- |")
    for name in [n for n in args.bundles.split(",") if n in by_name]:
        c = by_name[name]
        if c.get("status") != "evaluated":
            continue
        bundle = ROOT / "bench/results/search-bundles" / name
        subprocess.run([sys.executable, "-m", "edgetransfer", "-q", "package", "--model",
                        c["folder"], "--out", str(bundle), "--unverified", "--overwrite",
                        "--no-measure"], cwd=ROOT, check=True)
        archive = bundle.parent / f"{name}.tar.gz"
        unpacked = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
        print(f"| {name} | {c['value']:.4f} | {archive.stat().st_size / 1e6:.2f} | "
              f"{unpacked / 1e6:.2f} |")
    sys.exit(code)


if __name__ == "__main__":
    main()
