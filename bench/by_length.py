"""Accuracy by sentence length: each run's bundle (its int8 student, as shipped) on a
labelled file, by the words in each row.

    python bench/by_length.py --data ../shared/data/sst2/validation.tsv RUN_DIR [RUN_DIR ...]
        [--model teacher=RUN_DIR/teacher]

Where a student follows its teacher on short rows and falls behind on long ones (SST-2:
train's phrases against validation.tsv's sentences), a lever aimed at the long rows (`distill
--augment long`) should move the long buckets, not the short: this says which moved. The
bundles answer through `edgetransfer predict`'s own path (the runtime shipped, one text a
call), so each figure is what the device would answer; a bucket's figure comes with its
count. `--model NAME=PATH` adds a model that has no bundle (a run's teacher checkpoint, an
ONNX export), scored as verify scores it (measure/shipped.py: the bundle's reading of the
text, over the model's own runtime), so the teacher's row says which buckets the student
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


def read_rows(path: Path, text_column: str, label_column: str) -> list[tuple[str, str]]:
    """(text, label) per row, read as edgetransfer reads a data file (data/splits.py)."""
    from edgetransfer.data.splits import read_split

    ds = read_split(str(path), "test")
    return [(t, str(y)) for t, y in zip(ds[text_column], ds[label_column])]


def answers(bundle: Path, texts: list[str]) -> list[str]:
    """The bundle's label for each text (edgetransfer predict's path)."""
    from edgetransfer.stages.predict import PredictConfig, predictions

    return [row["label"] for row in predictions(PredictConfig(bundle=bundle), texts)]


def model_answers(spec: str, data: Path, max_length: int, gold: list[str],
                  columns=None) -> list[str]:
    """A checkpoint's or ONNX model's answer for each row of `data`, as verify scores it,
    written as the file writes that label (`gold`, read_rows' labels: a head may name the
    file's "1" "positive"); `columns`: anything with text_column / label_column."""
    from edgetransfer.measure import runners, shipped

    model = runners.load(spec, threads=2, provider="CPUExecutionProvider")
    if model.task.name != "text-classification":
        raise SystemExit(f"--model {spec}: a {model.task.name} model; this table is of "
                         f"single-text classification")
    ds = model.task.read_eval(str(data), model.label_names, columns)
    if "text_pair" in ds.column_names or len(ds) != len(gold):
        raise SystemExit(f"--model {spec}: {data} reads as {len(ds)} rows of pairs or "
                         f"another count than {len(gold)}; give --text-column and a file of "
                         f"single texts")
    ids = shipped.predictions(model.task, shipped.of_runner(model), ds, model.label_names,
                              max_length, model.precision)
    as_file = {int(i): g for i, g in zip(ds["label"], gold)}  # (the model's id -> the file's)
    return [as_file.get(int(i), model.label_names[i]) for i in ids]


def table(rows: list[tuple[str, str]], runs: dict[str, list[str]]) -> dict:
    """{run: {bucket: (right, n)}} and "all"."""
    out = {}
    for name, labels in runs.items():
        got: dict[str, list[int]] = {}
        for (text, gold), label in zip(rows, labels):
            for key in (bucket(len(text.split())), "all"):
                right, n = got.get(key, [0, 0])
                got[key] = [right + (label == gold), n + 1]
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
    rows = read_rows(args.data, args.text_column, args.label_column)
    runs = {}
    for folder in args.runs:
        bundle = folder / "bundle.tar.gz"
        if not bundle.is_file():
            raise SystemExit(f"{folder}: no bundle.tar.gz; finish the run (its package step)")
        runs[folder.name] = answers(bundle, [t for t, _ in rows])
    for spec in args.model:
        name, _, path = spec.partition("=")
        if not name or not path or not Path(path).exists():
            raise SystemExit(f"--model {spec}: give NAME=PATH, PATH a checkpoint folder or "
                             f"an ONNX model")
        if name in runs:
            raise SystemExit(f"--model {spec}: {name} names another row already; give "
                             f"another NAME")
        runs[name] = model_answers(path, args.data, args.max_length, [g for _, g in rows],
                                   args)
    if not runs:
        raise SystemExit("nothing to score: give run folders or --model NAME=PATH")
    labels = {g for _, g in rows}
    for name, said in runs.items():
        if not labels & set(said):  # (a bundle that names the file's classes otherwise)
            raise SystemExit(f"{name}: answers {sorted(set(said))[:5]}, none of which "
                             f"{args.data} holds ({sorted(labels)[:5]}); give a file that "
                             f"writes its labels as the model names them")
    text = render(table(rows, runs), args.data,
                  tuple(spec.partition("=")[0] for spec in args.model))
    if args.results_md:
        write_section(args.results_md, text, f"by-length-{args.data.stem}")
    print(text)


if __name__ == "__main__":
    from edgetransfer.errors import EdgeTransferError

    try:
        main()
    except EdgeTransferError as e:  # (a bad file or model: edgetransfer's one line)
        raise SystemExit(f"error: {e}") from None
