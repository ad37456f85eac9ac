"""Which int8 suits a CNN: the Fashion-MNIST student (recipes/fashion-mnist.yaml) in fp32, in
edgetransfer's int8-static, and in the int8 forms export refuses or avoids, on the same
images, one at a time, one thread.

    python bench/image_quantization.py --student models/bench-fashion-mnist/student \\
        --data models/data/fashion-mnist

- fp32: optimum's export of the export form (neutral squeeze-excites as identities, the
  pooler a global average), as `export --quantize none` writes it;
- int8-static, per-channel: `export`'s default for images (QDQ, every op onnxruntime's
  quantizer knows, 256 calibration images);
- int8-static, per-tensor: the same with one scale per weight tensor;
- int8-static of the plain export: the checkpoint exported as it is (squeeze-excites and
  transformers' pooler kept), then quantized the same way;
- int8-dynamic: onnxruntime's dynamic quantizer (what text models use), which export
  refuses for images.

Accuracy on --images test images (default all 10,000), p50 latency over 300 calls. Writes
OUT/image_quantization.json and a section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_all import _json, environment, write_section  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--student", type=Path, default=ROOT / "models/bench-fashion-mnist/student")
    ap.add_argument("--data", type=Path, default=ROOT / "models/data/fashion-mnist")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/image-quantization")
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--render-only", action="store_true")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    summary = args.out / "image_quantization.json"
    r = _json(summary) if args.render_only else measure(args)
    summary.write_text(json.dumps(r, indent=2), encoding="utf-8")
    write_section(ROOT / "bench/RESULTS.md", render(r), "image-quantization")
    print(render(r))


def measure(args) -> dict:
    import torch

    from edgetransfer import tasks
    from edgetransfer.convert import onnx_export, quantize
    from edgetransfer.measure import latency, scoring
    from edgetransfer.modeling import backbones, efficientnet_lite

    task = tasks.get("image-classification")
    bb = backbones.resolve(str(args.student))
    processor = task.load_preprocessor(bb)
    labels = bb.head_labels(task)
    test = task.read_eval(str(args.data / "test"), labels)
    test = test.shuffle(seed=0).select(range(min(args.images, len(test))))
    calib = task.read_eval(str(args.data / "train"), None).shuffle(seed=0).select(range(256))
    feeds = scoring.singles(task, processor, calib, 0)
    pairs = scoring.batches(task, processor, test, 0, batch_size=1)
    model = backbones.load_trained(bb, task)
    tgt = quantize.target("x86-avx512-vnni")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        plain = onnx_export.export(args.student, tmp / "plain", 18, task.optimum_task)
        form = onnx_export.export(args.student, tmp / "form", 18, task.optimum_task,
                                  model=efficientnet_lite.export_form(model))
        builds = {
            "fp32 (export form)": (form, None),
            "int8-static per-channel (export's default)": (form, dict(per_channel=True)),
            "int8-static per-tensor": (form, dict(per_channel=False)),
            "int8-static of the plain export": (plain, dict(per_channel=True)),
            "int8-dynamic": (form, "dynamic"),
        }
        for i, (name, (src, how)) in enumerate(builds.items()):
            path = tmp / f"m{i}.onnx"
            if how is None:
                path = src
            elif how == "dynamic":
                quantize.dynamic(src, path, tgt)
            else:
                quantize.static(src, path, tgt, feeds, **how)
            session = latency.ort_session(path, 1)
            logits = [session.run(None, latency.feeds_for(session, f))[0] for f, _ in pairs]
            preds = np.concatenate(logits).argmax(-1)
            gold = np.array([y for _, ys in pairs for y in ys])
            # how many distinct predictions: 1 means every image got the same answer
            lat = latency.measure(lambda f: session.run(None, latency.feeds_for(session, f)),
                                  [f for f, _ in pairs[:300]], warmup=30, iterations=300)
            rows[name] = {"accuracy": round(float((preds == gold).mean()), 4),
                          "distinct_predictions": int(len(np.unique(preds))),
                          "p50_ms": lat["p50_ms"], "p90_ms": lat["p90_ms"],
                          "mb": round(path.stat().st_size / 2**20, 2)}
            print(name, rows[name], flush=True)
    with torch.inference_mode():
        torch.set_num_threads(1)
        t = latency.measure(lambda f: model(pixel_values=torch.from_numpy(f["pixel_values"])),
                            [f for f, _ in pairs[:100]], warmup=10, iterations=100)
    return {"date": date.today().isoformat(), "env": environment(), "images": len(test),
            "student": str(args.student), "torch_fp32_p50_ms": t["p50_ms"], "rows": rows}


def render(r: dict) -> str:
    lines = ["## Images: which int8 suits a CNN (Fashion-MNIST student)", "",
             f"Measured {r['date']} by `python bench/image_quantization.py` on "
             f"{r['env']['machine'].get('cpu')}, onnxruntime "
             f"{r['env']['versions'].get('onnxruntime')}: the 8-block EfficientNet-Lite0 "
             f"student of recipes/fashion-mnist.yaml, {r['images']:,} test images one at a "
             f"time, one thread (the PyTorch student: {r['torch_fp32_p50_ms']:.3f} ms p50).",
             "", "| model | MB | accuracy | distinct predictions | p50 ms | p90 ms |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, row in r["rows"].items():
        lines.append(f"| {name} | {row['mb']} | {row['accuracy']:.4f} | "
                     f"{row['distinct_predictions']} | {row['p50_ms']:.3f} | "
                     f"{row['p90_ms']:.3f} |")
    return "\n".join(lines) + "\n\n"


if __name__ == "__main__":
    main()
