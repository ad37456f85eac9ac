"""Accuracy by sentence length: each run's bundle (its int8 student, as shipped) on a
labelled file, by the words in each row.

    python bench/by_length.py --data ../shared/data/sst2/validation.tsv RUN_DIR [RUN_DIR ...]
        [--model teacher=RUN_DIR/teacher]

Where a student follows its teacher on short rows and falls behind on long ones (SST-2:
train's phrases against validation.tsv's sentences), a lever aimed at the long rows (`distill
--augment long`) should move the long buckets, not the short: this says which moved. The
bundles answer through `edgetransfer predict`'s own path (the archive unpacked and checked,
the runtime shipped, one text a call), so each figure is what the device would answer; the
file's labels are read as each model's classes, as verify reads them (data/labels.py); a
bucket's figure comes with its count. `--model NAME=PATH` adds a model that has no bundle
(a run's teacher checkpoint, an ONNX export), scored as verify scores it (measure/shipped.py:
the bundled runtime around the model), so the teacher's row says which buckets the student
loses. Writes its table to stdout and, with --results-md, a section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_all import write_section  # noqa: E402

# word-count buckets (lower bounds); 15 is `--augment long`'s floor (data/augment_text.py)
BUCKETS = (1, 10, 15, 25)


def bucket(words: int) -> str:
    low = max(b for b in BUCKETS if b <= max(words, 1))
    nxt = next((b for b in BUCKETS if b > low), None)
    return f"{low}-{nxt - 1}" if nxt else f"{low}+"


def right(task, predictor, data: Path, columns, batch_size: int = 1) -> list[tuple[int, bool]]:
    """(words, answered right) per row of `data`: the file read as verify reads it, its labels
    as `predictor`'s classes (data/labels.py: names by name, numbers as class ids), each row's
    class as the bundled runtime answers its raw text (task.shipped)."""
    ds = task.read_eval(str(data), predictor.labels, columns)
    if "text_pair" in ds.column_names:
        raise SystemExit(f"{data}: read as text pairs; give --text-column, a file of single "
                         f"texts")
    ids = task.shipped(predictor, ds, batch_size)
    return [(len(t.split()), int(i) == y) for t, i, y in zip(ds["text"], ids, ds["label"])]


def bundle_right(archive: Path, data: Path, columns) -> list[tuple[int, bool]]:
    """A bundle's answers, unpacked and checked as `edgetransfer predict` does, one text a
    call (the runtime's default)."""
    import tempfile

    from edgetransfer.bundle.archive import open_bundle
    from edgetransfer.bundle.runtime.predict import Predictor
    from edgetransfer.tasks import get

    with tempfile.TemporaryDirectory(prefix="by-length-") as tmp:
        folder, _ = open_bundle(archive, Path(tmp))
        return right(get("text-classification"), Predictor(folder, check=False), data, columns)


def model_right(spec: str, data: Path, max_length: int, columns) -> list[tuple[int, bool]]:
    """A checkpoint's or ONNX model's answers as verify scores it: the bundled runtime
    around the model (measure/shipped.py), int8 one text a call."""
    from edgetransfer.measure import runners, scoring, shipped

    model = runners.load(spec, threads=2, provider="CPUExecutionProvider")
    if model.task.name != "text-classification":
        raise SystemExit(f"--model {spec}: a {model.task.name} model; this table is of "
                         f"single-text classification")
    predictor = shipped.predictor(model.task, shipped.of_runner(model), model.label_names,
                                  max_length)
    return right(model.task, predictor, data, columns,
                 scoring.scoring_batch_size(model.precision))


def table(runs: dict[str, list[tuple[int, bool]]]) -> dict:
    """{run: {bucket: [right, n]}} and "all", from each row's (words, answered right)."""
    out = {}
    for name, rows in runs.items():
        got: dict[str, list[int]] = {}
        for words, ok in rows:
            for key in (bucket(words), "all"):
                n_right, n = got.get(key, [0, 0])
                got[key] = [n_right + ok, n + 1]
        out[name] = got
    return out


def render(result: dict, data: Path, models: tuple = ()) -> str:
    """The table; `models`: the rows that are --model's (no bundle), said so above it."""
    keys = [bucket(b) for b in BUCKETS] + ["all"]
    first = next(iter(result.values()), {})
    also = (f"; {', '.join(models)}: a model without a bundle, scored as verify scores it "
            f"(the bundle's reading of the text over the model's own runtime)" if models else "")
    lines = [f"## Accuracy by sentence length (`bench/by_length.py`), {data.name}", "",
             f"Each run's bundle (its int8 student, as shipped) on {data.name}, by the words "
             f"in each row; the count of rows under each bucket{also}.", "",
             "| run | " + " | ".join(f"{k} words ({first.get(k, [0, 0])[1]})"
                                     if k != "all" else f"all ({first.get(k, [0, 0])[1]})"
                                     for k in keys) + " |",
             "| --- |" + " --- |" * len(keys)]
    for name, got in result.items():
        lines.append(f"| {name} | " + " | ".join(
            f"{got[k][0] / got[k][1]:.4f}" if got.get(k, [0, 0])[1] else "" for k in keys)
            + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*", type=Path, help="finished `edgetransfer run` folders")
    ap.add_argument("--model", action="append", default=[], metavar="NAME=PATH",
                    help="a model without a bundle (a checkpoint folder, an ONNX model), "
                         "scored as verify scores it; repeatable")
    ap.add_argument("--max-length", type=int, default=128,
                    help="--model's token budget (the recipes' 128)")
    ap.add_argument("--data", type=Path, required=True, help="a labelled .tsv or .csv")
    ap.add_argument("--text-column", default="sentence")
    ap.add_argument("--label-column", default="label")
    ap.add_argument("--results-md", type=Path, help="write the table as a section there")
    args = ap.parse_args()
    runs, models = {}, []
    for folder in args.runs:
        bundle = folder / "bundle.tar.gz"
        if not bundle.is_file():
            raise SystemExit(f"{folder}: no bundle.tar.gz; finish the run (its package step)")
        runs[folder.name] = bundle_right(bundle, args.data, args)
    for spec in args.model:
        name, _, path = spec.partition("=")
        if not name or not path or not Path(path).exists():
            raise SystemExit(f"--model {spec}: give NAME=PATH, PATH a checkpoint folder or "
                             f"an ONNX model")
        if name in runs:
            raise SystemExit(f"--model {spec}: {name} names another row already; give "
                             f"another NAME")
        runs[name] = model_right(path, args.data, args.max_length, args)
        models.append(name)
    if not runs:
        raise SystemExit("nothing to score: give run folders or --model NAME=PATH")
    text = render(table(runs), args.data, tuple(models))
    if args.results_md:
        write_section(args.results_md, text, f"by-length-{args.data.stem}")
    print(text)


if __name__ == "__main__":
    from edgetransfer.errors import EdgeTransferError

    try:
        main()
    except EdgeTransferError as e:  # (a bad file or model: edgetransfer's one line)
        raise SystemExit(f"error: {e}") from None
