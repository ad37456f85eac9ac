"""Evaluation in length order against the set's order (train/length_order.py): the wall time
of the Trainer's prediction pass over SST-2's dev rows, per model, and proof that both
orders give the same predictions.

    python bench/eval_order.py --data ../shared/data/sst2 --model MODEL_DIR [--model ...]

Each MODEL_DIR is a fine-tuned text classifier (`edgetransfer finetune`'s output). The two
orders run interleaved (set, length, set, length, ...) `--rounds` times on the first
`--rows` rows of dev.tsv, batch 64 as training's evaluation uses, on the CPU; the median
of each is reported. Writes a section of bench/RESULTS.md ("eval-order").
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from run_all import environment, write_section  # noqa: E402


def _rows(data: Path, n: int) -> tuple[list[str], list[int]]:
    header, *lines = (data / "dev.tsv").read_text(encoding="utf-8").splitlines()
    rows = [line.split("\t") for line in lines[:n]]
    return [r[0] for r in rows], [int(r[1]) for r in rows]


def measure(model_dir: Path, texts: list[str], labels: list[int], rounds: int,
            work: Path) -> dict:
    import numpy as np
    from datasets import Dataset
    from torch.utils.data import SequentialSampler
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        Trainer,
        TrainingArguments,
    )

    from edgetransfer import tasks
    from edgetransfer.train import training
    from edgetransfer.train.length_order import in_row_order

    task = tasks.get("text-classification")
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    ds = Dataset.from_dict(dict(tok(texts, truncation=True, max_length=128))
                           | {"label": labels})
    trainer = Trainer(model=model, args=TrainingArguments(
        work, per_device_eval_batch_size=64, report_to=[], use_cpu=True,
        disable_tqdm=True), data_collator=task.collator(tok))
    order = training.eval_order(ds)
    times: dict[str, list[float]] = {"set": [], "length": []}
    predictions = {}
    for _ in range(rounds):
        for how in ("set", "length"):
            if how == "set":
                trainer._get_eval_sampler = SequentialSampler
            else:
                training.evaluate_in_eval_order(trainer)
            t0 = time.perf_counter()
            raw = trainer.predict(ds).predictions
            times[how].append(time.perf_counter() - t0)
            predictions[how] = (raw if how == "set" else in_row_order(raw, order)).argmax(-1)
    lengths = [len(ids) for ids in ds["input_ids"]]
    return {"model": str(model_dir), "rows": len(ds), "mean_tokens": float(np.mean(lengths)),
            "max_tokens": max(lengths), "set_s": statistics.median(times["set"]),
            "length_s": statistics.median(times["length"]), "times": times,
            "same_predictions": bool((predictions["set"] == predictions["length"]).all())}


def render(results: list[dict], rounds: int, env: dict) -> str:
    m = env["machine"]
    lines = [f"## Evaluation in length order (`bench/eval_order.py`), {date.today()}", "",
             f"The Trainer's prediction pass over the first rows of SST-2 dev.tsv, batch 64, "
             f"on the CPU ({m['cpu']}, {m['logical_cpus']} logical CPUs, torch "
             f"{env['versions']['torch']}): the set's order (each batch padded to its "
             f"longest row) against length order (train/length_order.py), interleaved, "
             f"median of {rounds} rounds. Measured while another benchmark trained on the "
             f"same cores: the ratio, not the seconds, is the figure.", "",
             "| model | rows | tokens mean / max | set order s | length order s | speed-up | "
             "same predictions |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        lines.append(f"| {Path(r['model']).name} | {r['rows']:,} | {r['mean_tokens']:.1f} / "
                     f"{r['max_tokens']} | {r['set_s']:.1f} | {r['length_s']:.1f} | "
                     f"{r['set_s'] / r['length_s']:.2f}x | "
                     f"{'yes' if r['same_predictions'] else '**no**'} |")
    return "\n".join(lines) + "\n\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--model", type=Path, action="append", required=True)
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("/tmp/eval-order"))
    ap.add_argument("--results-md", type=Path, default=ROOT / "bench/RESULTS.md")
    args = ap.parse_args()
    texts, labels = _rows(args.data, args.rows)
    results = [measure(m, texts, labels, args.rounds, args.work) for m in args.model]
    text = render(results, args.rounds, environment())
    write_section(args.results_md, text, "eval-order")
    print(text)


if __name__ == "__main__":
    main()
