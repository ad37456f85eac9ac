"""Read the splits a task names (local files or hub datasets), name rows, carve validation.

Task-free: which columns a split must have and what a row must hold is the task's business
(edgetransfer.tasks); this module only reads, samples and splits.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .. import paths
from ..errors import DataError, EnvironmentProblem
from .files import FORMATS, read_table, row_line

log = logging.getLogger(__name__)
SPLITS = ("train", "validation", "test")


def is_local(spec: str) -> bool:
    p = Path(spec)
    return p.exists() or p.suffix.lower() in FORMATS or "/" in spec and p.parent.exists()


# Data a run keeps apart, and what giving one file for both costs (a warning, not a refusal:
# a smoke test may mean it). Not --unlabeled and --train: distill leaves out the unlabelled
# rows train or validation holds (so a train file is both, beside a --train-sample of it)
APART = {
    ("train", "validation"): "the best checkpoint is chosen on rows it trains on",
    ("train", "test"): "the test figures are of rows the model trained on",
    # (distill leaves such rows out of --unlabeled's: the same file gives none)
    ("unlabeled", "validation"): "its rows are left out, the student is not taught the "
                                 "teacher's answers on the rows it is chosen on",
    ("unlabeled", "test"): "its rows are left out, the student is not taught the teacher's "
                           "answers on the rows it is tested on",
}


def warn_shared(specs: dict[str, str | None]) -> list[str]:
    """Warn where one local file (however spelt: ./x, a link) is given as two kinds of data
    that should hold different rows (APART); returns the warnings. A hub id names a dataset,
    not a split, so it is never compared."""
    local = {k: v for k, v in specs.items() if v and is_local(v) and Path(v).exists()}
    said = []
    for (a, b), cost in APART.items():
        if a in local and b in local and paths.same(local[a], local[b]):
            said.append(f"--{a} {local[a]} is also --{b}: {cost}")
            log.warning("%s", said[-1])
    return said


def row_name(source: str, index: int) -> str:
    """How a user finds data row `index` of `source`: its line in a text file, else its row."""
    line = row_line(source, index)
    return f"{source}: line {line}" if line else f"{source}: row {index}"


def read_split(spec: str, hub_split: str):
    """A local file (checked first, see data.files) or a hub dataset id, as a Dataset."""
    if is_local(spec):
        return read_table(Path(spec))
    # A hub dataset id, optionally "name:config" (needs the network).
    import datasets

    name, _, config = spec.partition(":")
    try:
        return datasets.load_dataset(name, config or None, split=hub_split)
    except Exception as e:  # offline, unknown id, missing split
        raise EnvironmentProblem(
            f"{spec}: not a local file and could not be loaded from the hub "
            f"({type(e).__name__}); give a local CSV/TSV/JSONL/Parquet path"
        ) from e


def read_splits(train: str, validation: str | None, test: str | None) -> tuple[dict, dict]:
    """(split name -> Dataset as read, split name -> the spec it came from)."""
    specs = {k: v for k, v in zip(SPLITS, (train, validation, test)) if v}
    return {name: read_split(spec, name) for name, spec in specs.items()}, specs


def pick_column(names: list[str], wanted: str | None, candidates, what: str, source: str,
                flag: str) -> str:
    """The column named by `flag`, checked, or the first of `candidates` the file has."""
    if wanted is not None:
        if wanted not in names:
            raise DataError(f"{source}: no {what} column {wanted!r}; the columns are {names}; "
                            f"pass {flag} with one of them")
        return wanted
    for c in candidates:
        if c in names:
            return c
    raise DataError(f"{source}: no {what} column found (looked for {list(candidates)}); the "
                    f"columns are {names}; pass {flag}")


def require_columns(raw: dict, specs: dict, columns: list[str]) -> None:
    """Every split holds the columns found in train."""
    for name, ds in raw.items():
        for c in columns:
            if c not in ds.column_names:
                raise DataError(f"{specs[name]}: no column {c!r} (train has it); the columns "
                                f"are {list(ds.column_names)}")


def sample_and_carve(splits: dict, *, train_sample: int | None, validation_fraction: float,
                     seed: int, stratify: list[str] | None = None) -> list[str]:
    """Sample train and carve validation from it, in place; the notes to show the user.

    Sampled after every row was checked, so a bad row anywhere is still reported.
    `stratify`: class names of an integer "label" column, to keep rare classes in both parts.
    """
    notes = []
    if train_sample and train_sample < len(splits["train"]):
        splits["train"] = splits["train"].shuffle(seed=seed).select(range(train_sample))
        notes.append(f"train: a seeded sample of {train_sample} rows (seed {seed})")
    if "validation" not in splits:
        splits["train"], splits["validation"] = carve_validation(
            splits["train"], validation_fraction, seed, stratify)
        notes.append(f"validation: {len(splits['validation'])} rows carved from train "
                     f"(fraction {validation_fraction}, seed {seed})")
    return notes


def carve_validation(ds, fraction: float, seed: int, stratify: list[str] | None = None):
    if not 0 < fraction < 1:
        raise DataError(f"--validation-fraction {fraction} must be between 0 and 1")
    n_val = int(round(len(ds) * fraction))
    if n_val < 1 or len(ds) - n_val < 1:
        raise DataError(
            f"train has {len(ds)} rows: too few to carve a validation split at fraction "
            f"{fraction}; pass --validation FILE"
        )
    if stratify:
        from datasets import ClassLabel

        ds = ds.cast_column("label", ClassLabel(names=stratify))
        try:  # stratified keeps rare classes in both parts
            parts = ds.train_test_split(test_size=n_val, seed=seed, stratify_by_column="label")
            return parts["train"], parts["test"]
        except ValueError:  # a class with a single example cannot be stratified
            pass
    parts = ds.train_test_split(test_size=n_val, seed=seed)
    return parts["train"], parts["test"]
