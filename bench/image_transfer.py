"""The value of transfer on images, measured: pretrained vs the same network from scratch, and
frozen features vs partly frozen vs full fine-tuning, all at one training budget.

    python recipes/data/fashion_mnist.py --out models/data/fashion-mnist
    python bench/image_transfer.py --data models/data/fashion-mnist \
        --out bench/results/image-transfer

Each variant is one `edgetransfer finetune` of efficientnet-lite0 (ImageNet weights) on the
same seeded sample of Fashion-MNIST train (--train-sample, default 10,000; 10% of it carved
for validation), at --image-size 64, for --epochs 2, scored on all 10,000 test images:

- scratch: the same Lite0 network with fresh He-normal weights (efficientnet_lite.initialise)
  saved as a checkpoint, trained in full: what the ImageNet weights are worth. Its BatchNorm
  momentum is PyTorch's default 0.1; scratch-bn0.01 keeps the backbone's 0.01 (TensorFlow's
  0.99), whose running statistics cannot follow weights that change this fast in 282 steps;
- head: frozen features, only the classifier trained (--method head);
- partial: the stem and the lower 8 of 16 blocks frozen, BatchNorm included (--freeze-layers 8);
- full: every weight trained;
- lora: LoRA adapters on the blocks' 1x1 convolutions (peft), classifier trained whole;
- full-bn0.1: full, with BatchNorm momentum 0.1 instead of Lite0's 0.01 (a copy of the
  backbone folder with that one config field changed).

A variant whose folder holds a finished run is reused (resumable); --force re-runs all.
Writes OUT/image_transfer.json, bench/image_transfer.png and a section of bench/RESULTS.md.
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

# name -> (what it is, extra finetune flags); the learning rates are each method's
VARIANTS = {
    "scratch": ("same network, random init, all weights", ["--method", "full", "--lr", "1e-3"]),
    "scratch-bn0.01": ("the same, BatchNorm momentum 0.01 (the backbone's)",
                       ["--method", "full", "--lr", "1e-3"]),
    "head": ("pretrained, frozen features, head only", ["--method", "head", "--lr", "3e-3"]),
    "partial": ("pretrained, stem + blocks 0-7 frozen", ["--method", "full", "--lr", "1e-3",
                                                         "--freeze-layers", "8"]),
    "full": ("pretrained, all weights", ["--method", "full", "--lr", "1e-3"]),
    "lora": ("pretrained, LoRA r=8 on 1x1 convs + head", ["--method", "lora", "--lr", "3e-3"]),
    "full-bn0.1": ("pretrained, all weights, BatchNorm momentum 0.1",
                   ["--method", "full", "--lr", "1e-3"]),
}


def scratch_checkpoint(folder: Path, momentum: float) -> Path:
    """Lite0's architecture and image processor with fresh weights, as a checkpoint."""
    if (folder / "model.safetensors").exists():
        return folder
    from transformers import AutoConfig, AutoModelForImageClassification

    from edgetransfer.modeling import efficientnet_lite

    source = efficientnet_lite.folder()
    config = AutoConfig.from_pretrained(source, batch_norm_momentum=momentum)
    model = AutoModelForImageClassification.from_config(config)
    efficientnet_lite.initialise(model)
    model.save_pretrained(folder)
    efficientnet_lite.processor().save_pretrained(folder)
    return folder


def momentum_copy(folder: Path, momentum: float) -> Path:
    """The built-in backbone folder with another BatchNorm momentum in its config.json."""
    import shutil

    from edgetransfer.modeling import efficientnet_lite

    if not (folder / "config.json").exists():
        shutil.copytree(efficientnet_lite.folder(), folder)
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps(config | {
            "batch_norm_momentum": momentum}, indent=2))
    return folder


def run_variant(name: str, args, root: Path) -> dict:
    out = root / name
    if name.startswith("scratch"):
        model = str(scratch_checkpoint(root / f"{name}-init", 0.01 if "bn0.01" in name else 0.1))
    elif name == "full-bn0.1":
        model = str(momentum_copy(root / "backbone-bn0.1", 0.1))
    else:
        model = "efficientnet-lite0"
    cmd = [sys.executable, "-m", "edgetransfer", "finetune", "--model", model, "--new-head",
           "--train", str(args.data / "train"), "--test", str(args.data / "test"),
           "--train-sample", str(args.train_sample), "--image-size", str(args.image_size),
           "--epochs", str(args.epochs), "--batch-size", "64", "--patience", "0",
           "--out", str(out), *VARIANTS[name][1]]
    if (out / "artifact.json").exists() and not args.force:
        print(f"reusing {out}", flush=True)
    else:
        cmd += ["--overwrite"]
        print("$", shlex.join(cmd), flush=True)
        t0 = time.perf_counter()
        if subprocess.run(cmd).returncode != 0:
            return {"name": name, "failed": True, "command": shlex.join(cmd),
                    "wall_s": round(time.perf_counter() - t0, 1)}
    metrics = _json(out / "metrics.json")
    training = metrics["training"]
    return {"name": name, "what": VARIANTS[name][0], "command": shlex.join(cmd),
            "test_accuracy": metrics["test"]["accuracy"],
            "validation_accuracy": metrics["validation"]["accuracy"],
            "trainable_parameters": training["trainable_parameters"],
            "train_runtime_s": training["train_runtime_s"],
            "train_samples_per_second": training["train_samples_per_second"]}


def render(r: dict) -> str:
    lines = [
        "## Images: the value of transfer (Fashion-MNIST, efficientnet-lite0)", "",
        f"Measured {r['date']} by `python bench/image_transfer.py` on "
        f"{r['env']['machine'].get('cpu')} ({r['env']['machine'].get('logical_cpus')} cores), "
        f"torch {r['env']['versions'].get('torch')}. One budget "
        f"for every row: a seeded sample of {r['train_sample']:,} train images (10% of it "
        f"carved for validation), {r['image_size']}x{r['image_size']} px, {r['epochs']} epochs,"
        f" batch 64; test accuracy on all 10,000 test images.", "",
        "| variant | what is trained | trainable params | test accuracy | train s | images/s |",
        "| --- | --- | --- | --- | --- | --- |"]
    for v in r["variants"]:
        if v.get("failed"):
            lines.append(f"| {v['name']} | failed: `{v['command']}` | | | | |")
            continue
        lines.append(f"| {v['name']} | {v['what']} | {v['trainable_parameters']:,} | "
                     f"{v['test_accuracy']:.4f} | {v['train_runtime_s']:.0f} | "
                     f"{v['train_samples_per_second']:.0f} |")
    lines += ["", "![transfer](image_transfer.png)", ""]
    return "\n".join(lines) + "\n"


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [v for v in r["variants"] if not v.get("failed")]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.barh([v["name"] for v in rows], [100 * v["test_accuracy"] for v in rows],
            color=["#999" if v["name"].startswith("scratch") else "#3572b0" for v in rows])
    for i, v in enumerate(rows):
        ax.text(100 * v["test_accuracy"] + 0.3, i, f"{100 * v['test_accuracy']:.1f}%",
                va="center", fontsize=8)
    low = min(100 * v["test_accuracy"] for v in rows)
    ax.set_xlim(max(0, low - 10), 100)
    ax.invert_yaxis()
    ax.set_xlabel("Fashion-MNIST test accuracy (%)")
    ax.set_title(f"efficientnet-lite0, {r['train_sample']:,} images, {r['epochs']} epochs, "
                 f"{r['image_size']} px", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT / "models/data/fashion-mnist")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/image-transfer")
    ap.add_argument("--train-sample", type=int, default=10000)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--epochs", type=float, default=2)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--render-only", action="store_true")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    summary = args.out / "image_transfer.json"
    if args.render_only:
        r = _json(summary)
    else:
        r = {"date": date.today().isoformat(), "env": environment(),
             "train_sample": args.train_sample, "image_size": args.image_size,
             "epochs": args.epochs, "variants": []}
        for name in args.variants.split(","):
            r["variants"].append(run_variant(name, args, args.out))
            summary.write_text(json.dumps(r, indent=2), encoding="utf-8")
    plot(r, ROOT / "bench" / "image_transfer.png")  # beside RESULTS.md (results/ is not kept)
    write_section(ROOT / "bench/RESULTS.md", render(r), "image-transfer")
    print(render(r))


if __name__ == "__main__":
    main()
