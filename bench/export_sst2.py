"""edgetransfer's int8 export against optimum's plain path, on the same SST-2 checkpoint.

    python bench/export_sst2.py --model bench/results/distill-sst2-3l --data ../shared/data/sst2

Ours: `edgetransfer export --quantize int8-dynamic` (fusions, then dynamic int8 with the
avx512-vnni preset). Optimum's plain path: `ORTModelForSequenceClassification(export=True)`,
then `ORTQuantizer` with `AutoQuantizationConfig.avx512_vnni(is_static=False)`. Both are
scored on validation.tsv and timed at batch 1 on its texts, one thread each, with the
package's own scorer and latency harness (edgetransfer.measure), interleaved in the same
process: rounds alternate the two models and the ratio is the median over rounds (with its
spread). Also reported: our fp32 ONNX accuracy, to check int8 holds.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def optimum_int8(model: Path, out: Path) -> Path:
    from optimum.onnxruntime import ORTModelForSequenceClassification, ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    exported = out / "optimum-fp32"
    ORTModelForSequenceClassification.from_pretrained(model, export=True).save_pretrained(exported)
    quantizer = ORTQuantizer.from_pretrained(exported)
    quantizer.quantize(save_dir=out / "optimum-int8",
                       quantization_config=AutoQuantizationConfig.avx512_vnni(is_static=False))
    return next((out / "optimum-int8").glob("*.onnx"))


def read_tsv(path: Path) -> tuple[list[str], np.ndarray]:
    """SST-2's sentence<TAB>label rows (header skipped)."""
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()[1:]]
    return [r[0] for r in rows], np.array([int(r[1]) for r in rows])


def compare(ours: Path, theirs: Path, tok, texts: list[str], labels: np.ndarray, *,
            rounds: int, per_round: int, threads: int = 1, ours_tok=None) -> dict:
    """Accuracy of both int8 ONNX models and their batch-1 latency, one thread each.

    Both through the package's own harness, so the figures are measured the way export and
    verify measure: accuracy by measure.scoring (the text-classification task's metric, int8
    scored one text at a time, as deployed), latency by measure.latency.interleaved (rounds
    alternate which model goes first and time the same texts). The ratio ours/theirs is
    taken per round; its median and spread are reported.
    """
    from datasets import Dataset

    from edgetransfer import tasks
    from edgetransfer.measure import latency, scoring

    task = tasks.get("text-classification")
    names = [str(i) for i in range(int(labels.max()) + 1)]
    rows = Dataset.from_dict({"text": texts, "label": labels.tolist()})
    ours_tok = ours_tok or tok  # (a pruned export has its own tokenizer)
    a, b = latency.ort_session(ours, threads), latency.ort_session(theirs, threads)

    def accuracy(sess, t):
        return scoring.score(task, lambda f: sess.run(None, latency.feeds_for(sess, f))[0],
                             scoring.batches(task, t, rows, 128), names, precision="int8")

    jobs = {name: ((lambda f, s=sess: s.run(None, f)),
                   [latency.feeds_for(sess, f) for f in scoring.singles(task, t, rows, 128)])
            for name, sess, t in (("ours", a, ours_tok), ("optimum", b, tok))}
    times = latency.interleaved(jobs, iterations=rounds * per_round, rounds=rounds, warmup=50)
    by_round = {k: v.reshape(rounds, -1) * 1000 for k, v in times.items()}
    ratios = {q: [np.percentile(o, q) / np.percentile(t, q)
                  for o, t in zip(by_round["ours"], by_round["optimum"])] for q in (50, 90)}

    def spread(r):
        return {"median": float(np.median(r)), "min": float(min(r)), "max": float(max(r))}

    def figures(name, sess, path, t):
        ms = times[name] * 1000
        return {"accuracy": accuracy(sess, t), "p50_ms": float(np.percentile(ms, 50)),
                "p90_ms": float(np.percentile(ms, 90)), "size_mb": path.stat().st_size / 2**20}

    return {"ours": figures("ours", a, ours, ours_tok),
            "optimum": figures("optimum", b, theirs, tok),
            "ratio_p50": spread(ratios[50]), "ratio_p90": spread(ratios[90]),
            "accuracy_batch": 1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=ROOT / "bench/results/distill-sst2-3l")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/sst2")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/export-sst2")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--per-round", type=int, default=100)
    ap.add_argument("--threads", default="1,2", help="onnxruntime threads, comma-separated: "
                    "each count is compared on its own")
    ap.add_argument("--ours", default="--quantize int8-dynamic",
                    help="our export's options (e.g. '--quantize int8-static "
                    "--calibration-data FILE')")
    args = ap.parse_args()
    val = args.data / "validation.tsv"
    if not val.exists():
        sys.exit(f"{args.data}: no validation.tsv; pass --data pointing at shared/data/sst2")
    args.out.mkdir(parents=True, exist_ok=True)

    ours_dir = args.out / "edgetransfer-int8"
    cmd = [sys.executable, "-m", "edgetransfer", "export", "--model", str(args.model), "--out",
           str(ours_dir), *args.ours.split(), "--eval-data", str(val), "--overwrite"]
    print("$", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    ours_wall = time.perf_counter() - t0
    from edgetransfer.records import ExportReport

    record = ExportReport.read(ours_dir / ExportReport.FILE)
    t0 = time.perf_counter()
    theirs = optimum_int8(args.model, args.out)
    theirs_wall = time.perf_counter() - t0

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.model)
    ours_tok = AutoTokenizer.from_pretrained(ours_dir)
    texts, labels = read_tsv(val)
    result = {"date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
              "cpu": platform.processor(), "model": str(args.model), "ours_options": args.ours,
              "validation_rows": len(texts), "rounds": args.rounds, "per_round": args.per_round,
              "fp32_onnx_accuracy": record.score("fp32_onnx_accuracy"),
              "torch_accuracy": record.score("torch_accuracy"),
              "export_wall_s": {"ours": round(ours_wall, 1), "optimum": round(theirs_wall, 1)},
              "by_threads": {}}
    print("\n| threads | path | accuracy | p50 ms | p90 ms | size MB | ratio p50 [rounds] |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for threads in [int(x) for x in args.threads.split(",")]:
        cmp = compare(ours_dir / "model.onnx", theirs, tok, texts, labels, rounds=args.rounds,
                      per_round=args.per_round, threads=threads, ours_tok=ours_tok)
        result["by_threads"][str(threads)] = cmp
        o, t, r = cmp["ours"], cmp["optimum"], cmp["ratio_p50"]
        print(f"| {threads} | edgetransfer ({args.ours}) | {o['accuracy']:.4f} | "
              f"{o['p50_ms']:.3f} | {o['p90_ms']:.3f} | {o['size_mb']:.1f} | "
              f"{r['median']:.3f} [{r['min']:.3f}-{r['max']:.3f}] |")
        print(f"| {threads} | optimum plain int8 | {t['accuracy']:.4f} | {t['p50_ms']:.3f} | "
              f"{t['p90_ms']:.3f} | {t['size_mb']:.1f} | |", flush=True)
    (args.out.parent / "export_sst2.json").write_text(json.dumps(result, indent=2))
    print(f"\nfp32 ONNX accuracy {result['fp32_onnx_accuracy']:.4f}; PyTorch "
          f"{result['torch_accuracy']:.4f}")


if __name__ == "__main__":
    main()
