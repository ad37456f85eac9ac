"""The parts every task over text shares: text columns, checks, tokenization, numpy feeds.

A text task (classification now; token classification, regression next) builds its Task
from these and adds what is its own (labels, metrics, losses). The bundled runtime
(bundle/runtime/predict.py) keeps a copy of TEXT_COLUMNS; a test holds the two equal.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from ..data.splits import pick_column, read_split, row_name
from ..errors import DataError

log = logging.getLogger(__name__)

# Column names tried, in order, when the user names none (GLUE, HF datasets conventions).
TEXT_COLUMNS = ("text", "sentence", "sentence1", "question", "question1", "premise")
# (first, second) text columns of pair tasks (GLUE's MRPC/RTE, QNLI, QQP, MNLI), tried first
PAIRS = (("sentence1", "sentence2"), ("question", "sentence"), ("question1", "question2"),
         ("premise", "hypothesis"), ("text", "text_pair"))
PAIR_COLUMNS = dict(PAIRS)
INPUT_COLUMNS = ("text", "text_pair")  # what a split holds after reading, beside "label"

# Texts of mixed lengths, so with padding, that the parity gate always runs.
PROBE_TEXTS = (
    "ok",
    "please turn the lights off in the kitchen",
    "what will the weather be like tomorrow afternoon in the mountains, and should I bring "
    "an umbrella or a coat for the walk back home after dinner",
    "set a timer for ten minutes",
    "this film was a complete waste of time",
    "an unexpectedly moving and beautifully shot story",
)
PROBE_ROWS = tuple({"text": t} for t in PROBE_TEXTS)


def text_columns(names: list[str], source: str, text, pair,
                 text_flag: str = "--text-column") -> tuple[str, str | None]:
    """(text column, pair column or None): given ones checked, known pairs found first."""
    if text is None and pair is None:  # a known pair of columns wins over a lone text column
        text, pair = next(((a, b) for a, b in PAIRS if a in names and b in names), (None, None))
    text_col = pick_column(names, text, TEXT_COLUMNS, "text", source, text_flag)
    if pair is None:
        guess = PAIR_COLUMNS.get(text_col)
        pair = guess if guess in names else None
    elif pair not in names:
        raise DataError(f"{source}: no text-pair column {pair!r}; the columns are {names}; "
                        f"pass --text-pair-column with one of them")
    return text_col, pair


def has_text(columns: list[str]) -> bool:
    return any(c in columns for c in TEXT_COLUMNS)


def check_texts(ds, columns: list[str], source: str) -> None:
    """Every text is a non-empty string; the first bad row is named, with a count."""
    for col in columns:
        values = ds[col]
        bad = [i for i, v in enumerate(values)
               if v is None or (isinstance(v, float) and math.isnan(v))
               or not isinstance(v, str) or not v.strip()]
        if bad:
            first = values[bad[0]]
            what = "empty" if isinstance(first, str) else f"{first!r} (not text)"
            raise DataError(f"{row_name(source, bad[0])}: column {col!r} is {what}; "
                            f"{len(bad)} such row(s) in all; fill or remove them")


def inputs_of(ds, text: str, pair: str | None):
    """`ds` reduced to its text (and pair) columns, renamed text/text_pair."""
    keep = {text: "text"} | ({pair: "text_pair"} if pair else {})
    return ds.select_columns(list(keep)).rename_columns(
        {k: v for k, v in keep.items() if k != v})


def read_texts(spec: str, text_column: str | None = None,
               text_pair_column: str | None = None, text_flag: str = "--text-column"):
    """One split's texts (and pairs), checked: (Dataset with text/(text_pair), raw Dataset)."""
    ds = read_split(spec, "validation")
    text, pair = text_columns(list(ds.column_names), spec, text_column, text_pair_column,
                              text_flag)
    check_texts(ds, [text] + ([pair] if pair else []), spec)
    return inputs_of(ds, text, pair), ds


@dataclass
class Truncation:
    """Per split: how many texts were longer than --max-length, and the longest (in tokens);
    `kind` says what became of them (metrics.json's key for `counts`)."""

    counts: dict[str, int]
    longest: dict[str, int]
    kind: str = "truncated"


def tokenize(splits: dict, sources: dict, tokenizer, max_length: int,
             on_long: str = "truncate"):
    """Tokenize every split without padding (the collator pads per batch).

    Texts longer than `max_length` tokens are truncated and counted, or refused when
    `on_long == "error"`. Columns other than the inputs (the label) are kept.
    """
    import transformers

    counts, longest, out = {}, {}, {}

    def encode(batch):
        pair = batch.get("text_pair")
        full = tokenizer(batch["text"], pair, truncation=False)
        enc = tokenizer(batch["text"], pair, truncation=True, max_length=max_length)
        enc["n_tokens"] = [len(ids) for ids in full["input_ids"]]
        return enc

    # the tokenizer's "sequence length is longer than..." warning is replaced by our count
    previous = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        for name, ds in splits.items():
            enc = ds.map(encode, batched=True,
                         remove_columns=[c for c in ds.column_names if c in INPUT_COLUMNS])
            lengths = enc["n_tokens"]
            too_long = [i for i, n in enumerate(lengths) if n > max_length]
            counts[name], longest[name] = len(too_long), max(lengths)
            if too_long and on_long == "error":
                src = sources.get(name, sources["train"])
                raise DataError(f"{src}: {len(too_long)} text(s) are longer than {max_length} "
                                f"tokens (the longest {max(lengths)}); raise --max-length or "
                                f"allow truncation")
            if too_long:
                log.warning("%s: %d of %d texts longer than %d tokens were truncated "
                            "(longest %d)", name, len(too_long), len(lengths), max_length,
                            max(lengths))
            out[name] = enc.remove_columns(["n_tokens"])
    finally:
        transformers.logging.set_verbosity(previous)
    return out, Truncation(counts, longest)


def encode_arrays(tokenizer, rows: dict, max_length: int = 128) -> dict:
    """Rows (text, and text_pair for pairs) as one padded batch of numpy int64 arrays: what
    onnxruntime takes, and what export, verify and the parity probes feed both runtimes."""
    import numpy as np

    pairs = rows.get("text_pair")
    enc = tokenizer(list(rows["text"]), list(pairs) if pairs is not None else None,
                    padding=True, truncation=True, max_length=max_length, return_tensors="np")
    return {k: v.astype(np.int64) for k, v in enc.items()}


def collator(tokenizer):
    from transformers import DataCollatorWithPadding

    return DataCollatorWithPadding(tokenizer)


def read_unlabeled(spec: str, column: str | None, tokenizer, max_length: int, data, ignore):
    """Unlabelled texts, checked and tokenized, each labelled `ignore` (no gold label)."""
    from datasets import Dataset

    if data.columns.get("text_pair"):
        raise DataError("--unlabeled: takes single texts; this task has text pairs")
    rows, _ = read_texts(spec, column, None, text_flag="--unlabeled-column")
    texts = list(rows["text"])
    enc = dict(tokenizer(texts, truncation=True, max_length=max_length))
    enc["label"] = [ignore] * len(texts)
    log.info("unlabelled: %d texts from %s", len(texts), spec)
    return Dataset.from_dict(enc)
