"""A labelled text-classification task: splits, columns, labels, checks and tokenization.

Every check runs before a model is loaded, so a typo in a column name costs a second, not a
model load. Rows are named the way a user finds them in the file: JSONL line numbers,
CSV/TSV line numbers counting the header, Parquet row indices.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .datafiles import FORMATS, read_table, row_line
from .errors import DataError, EnvironmentProblem

log = logging.getLogger(__name__)

# Column names tried, in order, when the user names none (GLUE, HF datasets conventions).
TEXT_COLUMNS = ("text", "sentence", "sentence1", "question", "question1", "premise")
# (first, second) text columns of pair tasks (GLUE's MRPC/RTE, QNLI, QQP, MNLI), tried first
PAIRS = (("sentence1", "sentence2"), ("question", "sentence"), ("question1", "question2"),
         ("premise", "hypothesis"), ("text", "text_pair"))
PAIR_COLUMNS = dict(PAIRS)
LABEL_COLUMNS = ("label", "labels", "intent", "class")


@dataclass
class Columns:
    text: str
    label: str
    pair: str | None = None


@dataclass
class Task:
    """Splits with columns renamed to text/(text_pair)/label and labels as ids."""

    splits: dict[str, Any]  # name -> datasets.Dataset
    label_names: list[str]
    columns: Columns
    sources: dict[str, str]
    notes: list[str] = field(default_factory=list)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def has_pair(self) -> bool:
        return self.columns.pair is not None

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.label_names))

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.label_names)}


def _is_local(spec: str) -> bool:
    p = Path(spec)
    return p.exists() or p.suffix.lower() in FORMATS or "/" in spec and p.parent.exists()


def _row_name(source: str, index: int) -> str:
    line = row_line(source, index)
    return f"{source}: line {line}" if line else f"{source}: row {index}"


def _read_split(spec: str, hub_split: str):
    if _is_local(spec):
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


def _pick(names: list[str], wanted: str | None, candidates, what: str, source: str, flag: str):
    if wanted is not None:
        if wanted not in names:
            raise DataError(
                f"{source}: no {what} column {wanted!r}; the columns are {names}; "
                f"pass {flag} with one of them"
            )
        return wanted
    for c in candidates:
        if c in names:
            return c
    raise DataError(
        f"{source}: no {what} column found (looked for {list(candidates)}); the columns are "
        f"{names}; pass {flag}"
    )


def _text_columns(names: list[str], source: str, text, pair,
                  text_flag: str = "--text-column") -> tuple[str, str | None]:
    """(text column, pair column or None): given ones checked, known pairs found first."""
    if text is None and pair is None:  # a known pair of columns wins over a lone text column
        text, pair = next(((a, b) for a, b in PAIRS if a in names and b in names), (None, None))
    text_col = _pick(names, text, TEXT_COLUMNS, "text", source, text_flag)
    if pair is None:
        guess = PAIR_COLUMNS.get(text_col)
        pair = guess if guess in names else None
    elif pair not in names:
        raise DataError(
            f"{source}: no text-pair column {pair!r}; the columns are {names}; "
            f"pass --text-pair-column with one of them"
        )
    return text_col, pair


def resolve_columns(names: list[str], source: str, text, pair, label) -> Columns:
    text_col, pair = _text_columns(names, source, text, pair)
    label_col = _pick(names, label, LABEL_COLUMNS, "label", source, "--label-column")
    if label_col in (text_col, pair):
        raise DataError(f"{source}: the column {label_col!r} would be both text and label; "
                        f"pass --text-column and --label-column naming two columns")
    return Columns(text=text_col, label=label_col, pair=pair)


def _check_texts(ds, cols: Columns, source: str) -> None:
    for col in [cols.text] + ([cols.pair] if cols.pair else []):
        values = ds[col]
        bad = [
            i for i, v in enumerate(values)
            if v is None or (isinstance(v, float) and math.isnan(v))
            or not isinstance(v, str) or not v.strip()
        ]
        if bad:
            first = values[bad[0]]
            what = "empty" if isinstance(first, str) else f"{first!r} (not text)"
            raise DataError(
                f"{_row_name(source, bad[0])}: column {col!r} is {what}; "
                f"{len(bad)} such row(s) in all; fill or remove them"
            )


def _normalise_label(v, where: str):
    """int for integral numbers, str for text; anything else is refused."""
    if isinstance(v, bool) or v is None or (isinstance(v, float) and math.isnan(v)):
        raise DataError(f"{where}: label {v!r} is missing or not a class; fill it in")
    if isinstance(v, float):
        if not v.is_integer():
            raise DataError(f"{where}: label {v!r} is not a whole number; use class ids or names")
        v = int(v)
    if isinstance(v, int):
        if v < 0:
            raise DataError(f"{where}: label {v} is negative; class ids start at 0")
        return v
    if isinstance(v, str):
        s = v.strip()
        if not s:
            raise DataError(f"{where}: label is empty; fill it in")
        return s
    raise DataError(f"{where}: label {v!r} is a {type(v).__name__}; use an integer or a name")


def label_names_for(
    train_labels: list, source: str, model_labels: list[str] | None, given_names: list[str] | None
) -> list[str]:
    """The class names, in id order.

    String labels: the checkpoint's own order when it already has a head (ids must not move),
    else sorted, so the same data always gives the same ids. Integer labels: ids are kept;
    names come from --label-names, the checkpoint, or the ids themselves.
    """
    kinds = {type(v) for v in train_labels}
    if len(kinds) > 1:
        i = next(i for i, v in enumerate(train_labels) if type(v) is not type(train_labels[0]))
        raise DataError(
            f"{_row_name(source, i)}: labels mix numbers and names ({train_labels[0]!r} and "
            f"{train_labels[i]!r}); use one kind throughout"
        )
    if model_labels and given_names and list(given_names) != list(model_labels):
        raise DataError(
            f"--label-names {','.join(given_names)}: the checkpoint's head already names its "
            f"classes {list(model_labels)}; drop --label-names, or pass --new-head to replace "
            f"the head"
        )
    if kinds == {str}:
        seen = sorted(set(train_labels))
        if model_labels:
            return list(model_labels)
        if given_names:
            missing = [s for s in seen if s not in given_names]
            if missing:
                raise DataError(f"{source}: labels {missing} are not in --label-names")
            return list(given_names)
        return seen
    n = max(train_labels) + 1
    if model_labels:
        return list(model_labels)
    if given_names:
        if len(given_names) < n:
            raise DataError(
                f"{source}: label ids go up to {n - 1} but --label-names gives {len(given_names)}"
                f" names; give one name per id"
            )
        return list(given_names)
    return [str(i) for i in range(n)]


def _encode_labels(ds, cols: Columns, source: str, names: list[str], fixed_by_model: bool,
                   trained: bool = False):
    """Label ids of every row. `trained`: the model is used as it is (export, verify), so
    --new-head is no way out."""
    index = {name: i for i, name in enumerate(names)}
    ids = []
    for i, v in enumerate(ds[cols.label]):
        where = _row_name(source, i)
        v = _normalise_label(v, where)
        if isinstance(v, str):
            if v not in index:
                hint = (
                    f"the model's classes are {names}; is this data for another task?"
                    if trained else
                    f"the checkpoint's classes are {names}; pass --new-head to replace its head"
                    if fixed_by_model
                    else f"train has {names}; add examples of it to train or drop the row"
                )
                raise DataError(f"{where}: label {v!r} is not a known class; {hint}")
            ids.append(index[v])
        else:
            if v >= len(names):
                hint = (
                    f"the model has {len(names)} classes (ids 0..{len(names) - 1}); is this "
                    f"data for another task?" if trained else
                    f"the checkpoint's head has {len(names)} classes; pass --new-head to replace it"
                    if fixed_by_model
                    else f"train only has ids 0..{len(names) - 1}"
                )
                raise DataError(f"{where}: label {v} does not fit the model; {hint}")
            ids.append(v)
    return ids


def load_task(
    train: str,
    validation: str | None = None,
    test: str | None = None,
    *,
    text_column: str | None = None,
    text_pair_column: str | None = None,
    label_column: str | None = None,
    label_names: list[str] | None = None,
    validation_fraction: float = 0.1,
    seed: int = 42,
    model_labels: list[str] | None = None,
    train_sample: int | None = None,
) -> Task:
    """Read, check and label-encode the splits. `model_labels`: a fixed head's classes."""
    specs = {"train": train, "validation": validation, "test": test}
    raw = {name: _read_split(spec, name) for name, spec in specs.items() if spec}

    cols = resolve_columns(
        list(raw["train"].column_names), train, text_column, text_pair_column, label_column
    )
    log.info("columns: text %r%s, label %r", cols.text,
             f", pair {cols.pair!r}" if cols.pair else "", cols.label)
    for name, ds in raw.items():
        if name != "train":
            for c in [cols.text, cols.label] + ([cols.pair] if cols.pair else []):
                if c not in ds.column_names:
                    raise DataError(
                        f"{specs[name]}: no column {c!r} (train has it); the columns are "
                        f"{list(ds.column_names)}"
                    )
        _check_texts(raw[name], cols, specs[name])

    train_labels = [
        _normalise_label(v, _row_name(train, i)) for i, v in enumerate(raw["train"][cols.label])
    ]
    names = label_names_for(train_labels, train, model_labels, label_names)
    if len(names) < 2 and not model_labels:
        raise DataError(f"{train}: only one class ({names[0]!r}); a classifier needs at least 2")

    splits = {}
    for name, ds in raw.items():
        ids = _encode_labels(ds, cols, specs[name], names, fixed_by_model=bool(model_labels))
        keep = [cols.text] + ([cols.pair] if cols.pair else [])
        ds = ds.select_columns(keep).add_column("label", ids)
        rename = {cols.text: "text"} | ({cols.pair: "text_pair"} if cols.pair else {})
        splits[name] = ds.rename_columns({k: v for k, v in rename.items() if k != v})

    notes = []
    if train_sample and train_sample < len(splits["train"]):
        # sampled after every row was checked, so a bad row anywhere is still reported
        splits["train"] = splits["train"].shuffle(seed=seed).select(range(train_sample))
        notes.append(f"train: a seeded sample of {train_sample} rows (seed {seed})")
    if "validation" not in splits:
        splits["train"], splits["validation"] = _carve_validation(
            splits["train"], names, validation_fraction, seed
        )
        notes.append(
            f"validation: {len(splits['validation'])} rows carved from train "
            f"(fraction {validation_fraction}, seed {seed})"
        )
    unseen = sorted(set(range(len(names))) - set(splits["train"]["label"]))
    if unseen and not model_labels:
        notes.append(f"classes with no train example: {[names[i] for i in unseen]}")
    for note in notes:
        log.warning(note)
    return Task(splits=splits, label_names=names, columns=cols,
                sources={k: v for k, v in specs.items() if v}, notes=notes)


def _carve_validation(ds, names, fraction: float, seed: int):
    from datasets import ClassLabel

    if not 0 < fraction < 1:
        raise DataError(f"--validation-fraction {fraction} must be between 0 and 1")
    n_val = int(round(len(ds) * fraction))
    if n_val < 1 or len(ds) - n_val < 1:
        raise DataError(
            f"train has {len(ds)} rows: too few to carve a validation split at fraction "
            f"{fraction}; pass --validation FILE"
        )
    ds = ds.cast_column("label", ClassLabel(names=names))
    try:  # stratified keeps rare classes in both parts
        parts = ds.train_test_split(test_size=n_val, seed=seed, stratify_by_column="label")
    except ValueError:  # a class with a single example cannot be stratified
        parts = ds.train_test_split(test_size=n_val, seed=seed)
    return parts["train"], parts["test"]


@dataclass
class Truncation:
    counts: dict[str, int]
    longest: dict[str, int]


def tokenize(task: Task, tokenizer, max_length: int, on_long: str = "truncate"):
    """Tokenize every split without padding (the collator pads per batch).

    Texts longer than `max_length` tokens are truncated and counted, or refused when
    `on_long == "error"`.
    """
    counts, longest, out = {}, {}, {}

    def encode(batch):
        pair = batch.get("text_pair")
        full = tokenizer(batch["text"], pair, truncation=False)
        lengths = [len(ids) for ids in full["input_ids"]]
        enc = tokenizer(batch["text"], pair, truncation=True, max_length=max_length)
        enc["n_tokens"] = lengths
        return enc

    import transformers

    # the tokenizer's "sequence length is longer than..." warning is replaced by our count
    previous = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        for name, ds in task.splits.items():
            enc = ds.map(encode, batched=True, remove_columns=[
                c for c in ds.column_names if c != "label"
            ])
            lengths = enc["n_tokens"]
            too_long = [i for i, n in enumerate(lengths) if n > max_length]
            counts[name], longest[name] = len(too_long), max(lengths)
            if too_long and on_long == "error":
                src = task.sources.get(name, task.sources["train"])
                raise DataError(
                    f"{src}: {len(too_long)} text(s) are longer than {max_length} tokens (the "
                    f"longest {max(lengths)}); raise --max-length or allow truncation"
                )
            if too_long:
                log.warning(
                    "%s: %d of %d texts longer than %d tokens were truncated (longest %d)",
                    name, len(too_long), len(lengths), max_length, max(lengths),
                )
            out[name] = enc.remove_columns(["n_tokens"])
    finally:
        transformers.logging.set_verbosity(previous)
    return out, Truncation(counts, longest)


def load_split(spec: str, label_names: list[str] | None, *, text_column: str | None = None,
               text_pair_column: str | None = None, label_column: str | None = None,
               text_flag: str = "--text-column"):
    """One checked split for a trained model: texts (and pairs), labels as the model's ids.

    `label_names=None` reads texts only (calibration data needs no labels). Returns a
    `datasets.Dataset` with text/(text_pair)/(label) columns.
    """
    ds = _read_split(spec, "validation")
    names = list(ds.column_names)
    text, pair = _text_columns(names, spec, text_column, text_pair_column, text_flag)
    cols = Columns(text=text, label=text, pair=pair)
    _check_texts(ds, cols, spec)
    keep = {text: "text"} | ({pair: "text_pair"} if pair else {})
    out = ds.select_columns(list(keep)).rename_columns(
        {k: v for k, v in keep.items() if k != v})
    if label_names is not None:
        cols.label = _pick(names, label_column, LABEL_COLUMNS, "label", spec, "--label-column")
        out = out.add_column("label", _encode_labels(ds, cols, spec, label_names,
                                                     fixed_by_model=True, trained=True))
    return out


def encode_arrays(tokenizer, texts, pairs=None, max_length: int = 128) -> dict:
    """Texts (and pairs) as one padded batch of numpy int64 arrays: what onnxruntime takes
    and what export, verify and the parity probes feed both runtimes."""
    import numpy as np

    enc = tokenizer(list(texts), list(pairs) if pairs else None, padding=True, truncation=True,
                    max_length=max_length, return_tensors="np")
    return {k: v.astype(np.int64) for k, v in enc.items()}


SCORE_BATCH = 32  # rows per call when scoring accuracy


def scoring_batch_size(precision: str) -> int:
    """int8 models are scored one text at a time (one_by_one says why), the others in
    batches: export's accuracy check and verify agree on this."""
    return 1 if precision == "int8" else SCORE_BATCH


def one_by_one(batches):
    """Each row of (feeds, labels) batches alone, its padding cut.

    Dynamic int8 models quantize activations with one scale over the whole batch, padding
    included, so a text's scores depend on its neighbours; deployed, a text is scored alone
    (the bundle's predict.py defaults to batch 1). Accuracy gates score int8 models this way.
    """
    import numpy as np

    for feeds, labels in batches:
        for i in range(len(labels)):
            keep = np.flatnonzero(feeds["attention_mask"][i])  # either padding side
            yield {k: v[i:i + 1, keep] for k, v in feeds.items()}, labels[i:i + 1]
