"""A joint task's data: one file of sentences (a list of words each) with one label column
per head: a class per sentence for a sentence head (SNIPS's intent), an IOB2 tag per word
for a word head (its slots).

A row whose value in a head's column is null, or absent, has no gold label for that head:
its loss for that head is masked (IGNORE) and the head's metrics skip it. A column that no
row fills is refused, as are tags of another length than the words, with the row named.

Encoded rows are tasks.words' rows (sub-tokens, windows, word_index, example) with one
"label" column holding, per row, {head: its gold ids}: an id for a sentence head (every
window of a sentence carries it), one per sub-token for a word head.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ...bundle.runtime.predict import HEAD_SEP
from ...data import labels as class_labels
from ...data import tags as iob
from ...data.splits import pick_column, read_split, read_splits, row_name, sample_and_carve
from ...errors import ConfigError, DataError
from .. import text, words
from ..task import TaskData
from ..token_classification import TOKEN_COLUMNS
from .model import SENTENCE

log = logging.getLogger(__name__)
IGNORE = class_labels.IGNORE
# a flat label name is "HEAD:label" (config.json's id2label, label_names, labels.json), the
# separator the bundled runtime splits them at
SEP = HEAD_SEP


def flat(heads) -> list[str]:
    """Every head's labels as one list ("intent:PlayMusic", ...), the label_names every
    stage threads through and config.json's id2label."""
    return [f"{h.name}{SEP}{label}" for h in heads for label in h.labels]


def split_flat(names: list[str]) -> dict[str, list[str]]:
    """flat()'s inverse: head name -> its labels, in order."""
    out: dict[str, list[str]] = {}
    for name in names:
        head, _, label = name.partition(SEP)
        out.setdefault(head, []).append(label)
    return out


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def _sentences(ds, source: str, column: str | None) -> list[list[str]]:
    """Each row's words: its tokens column, else its text split at white space (a head's own
    file may hold texts: an intent dataset)."""
    if column is None:
        from ..text import text_columns

        text = text_columns(list(ds.column_names), source, None, None)[0]
        return [words.check_words(str(t or "").split(), row_name(source, i))
                for i, t in enumerate(ds[text])]
    return [words.check_words(ws, row_name(source, i)) for i, ws in enumerate(ds[column])]


def _column_values(ds, head, source: str) -> list:
    """The head's column, None where a row lacks it (or the file lacks the column: the
    file's rows are then unlabelled for the head; `load` refuses a column no train file
    has)."""
    if head.label_column not in ds.column_names:
        return [None] * len(ds)
    return list(ds[head.label_column])


def _tags(values: list, sentences, source: str, head) -> list:
    """Per row: IOB2 tags, one per word, or None (no gold tags for this head)."""
    out = []
    for i, (ts, ws) in enumerate(zip(values, sentences)):
        if _missing(ts):
            out.append(None)
            continue
        if not isinstance(ts, (list, tuple)) or len(ts) != len(ws):
            got = len(ts) if isinstance(ts, (list, tuple)) else type(ts).__name__
            raise DataError(f"{row_name(source, i)}: {len(ws)} words but {got} "
                            f"{head.label_column} tags; give one tag per word")
        checked = [iob.check(t, f"{row_name(source, i)}, word {k + 1}", head.label_column)
                   for k, t in enumerate(ts)]
        out.append(iob.to_iob2(checked)[0])
    return out


def _classes(values: list, source: str) -> list:
    return [None if _missing(v) else class_labels.normalise(v, row_name(source, i))
            for i, v in enumerate(values)]


def _ids(head, values: list, source: str, names: list[str], trained: bool) -> list:
    index = {n: i for i, n in enumerate(names)}
    hint = ("the model has these; is this data for another task?" if trained else
            "train never has it; add examples of it to train or drop the row")
    out = []
    for i, v in enumerate(values):
        if v is None:
            out.append(None)
            continue
        for k, t in enumerate(v if isinstance(v, list) else [v]):
            if t not in index:
                where = row_name(source, i) + (f", word {k + 1}" if isinstance(v, list) else "")
                known = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
                raise DataError(f"{where}: {head.name} label {t!r} is not one of the "
                                f"{len(names)} the head knows ({known}); {hint}")
        out.append([index[t] for t in v] if isinstance(v, list) else index[v])
    return out


def _label_names(head, train_values: list, source: str) -> list[str]:
    seen = [v for v in train_values if v is not None]
    if not seen:
        raise DataError(f"{source}: the column {head.label_column!r} (head {head.name!r}) is "
                        f"empty in every row; fill it, or name another column")
    if head_kind(head) == SENTENCE:
        names = class_labels.names_for(seen, source, None, None)
        names = [str(n) for n in names]
    else:
        names = iob.label_order({t for ts in seen for t in ts})
    if len(names) < 2:
        raise DataError(f"{source}: the head {head.name!r} has one label only ({names[0]!r}) "
                        f"in {head.label_column!r}; it needs at least 2")
    return names


def head_kind(head) -> str:
    from .. import get

    return get(head.kind).head


def _read_file(ds, source: str, heads, tokens_column: str | None, only: str | None = None):
    """(words per row, {head: values, None where a row has no label}); `only`: the head
    whose own file this is (the other heads' labels are not read from it). Words are the
    tokens column's, else the text column's split at white space."""
    names = list(ds.column_names)
    has_tokens = tokens_column is not None or any(c in names for c in TOKEN_COLUMNS)
    column = (pick_column(names, tokens_column, TOKEN_COLUMNS, "tokens", source,
                          "--tokens-column") if has_tokens else None)
    sentences = _sentences(ds, source, column)
    values = {}
    for h in heads:
        raw = (_column_values(ds, h, source) if only in (None, h.name)
               else [None] * len(sentences))
        values[h.name] = (_classes(raw, source) if head_kind(h) == SENTENCE
                          else _tags(raw, sentences, source, h))
    return sentences, values


SPLITS = ("train", "validation", "test")


def sources_of(values, heads, flag: str = "--head-data") -> list:
    """--head-data's NAME:SPLIT=PATH values, checked against the heads."""
    out, names = [], {h.name for h in heads}
    for v in values or []:
        key, sep, path = str(v).partition("=")
        name, _, split = key.partition(":")
        if not sep or not path or split not in SPLITS:
            raise ConfigError(f"{flag} {v}: write NAME:SPLIT=PATH, SPLIT one of "
                              f"{', '.join(SPLITS)} (e.g. slots:train=slots.jsonl)")
        if name not in names:
            raise ConfigError(f"{flag} {v}: no head {name!r}; the heads are "
                              f"{', '.join(sorted(names))}")
        out.append(Source(name, split, path))
    return out


@dataclass(frozen=True)
class Source:
    """A head's own data file for one split (--head-data NAME:SPLIT=PATH)."""

    head: str
    split: str
    path: str


def _joined(parts: list) -> tuple[list, dict]:
    sentences, values = [], {}
    for ss, vs in parts:
        sentences += ss
        for k, v in vs.items():
            values.setdefault(k, []).extend(v)
    return sentences, values


def _sampled(parts: list, sources: list[str], rule: str, temperature: float, seed: int):
    """The train files' rows mixed by the sampling rule: `proportional` keeps every row
    (each file weighs its size); `temperature` draws N rows in all, file i's share
    n_i^(1/T) / sum_j n_j^(1/T) (T=1 is proportional; larger T evens the files out, the
    smaller file's rows drawn again), seeded."""
    if rule == "proportional" or len(parts) < 2:
        return _joined(parts), None
    sizes = np.array([len(ss) for ss, _ in parts], dtype=float)
    share = sizes ** (1 / temperature)
    share /= share.sum()
    rng = np.random.default_rng(seed)
    counts = np.round(share * sizes.sum()).astype(int)
    picked = []
    for (ss, vs), k in zip(parts, counts):
        n = len(ss)
        rows = np.concatenate([rng.permutation(n)[:min(k, n)],
                               rng.integers(0, n, max(k - n, 0))]).astype(int)
        picked.append(([ss[i] for i in rows], {h: [v[i] for i in rows] for h, v in vs.items()}))
    note = (f"train: sampled by temperature {temperature:g}: "
            + ", ".join(f"{src} {n} of {int(size)} rows" for src, n, size
                        in zip(sources, counts, sizes)))
    return _joined(picked), note


def load(opts, heads, model_labels: list[str] | None = None, sources=()) -> TaskData:
    """Read and check every split, the shared files and each head's own (`sources`), the
    train files mixed by --sampling; each head's labels from train (or the model's)."""
    from datasets import Dataset

    raw, specs = read_splits(opts.train, opts.validation, opts.test)
    tokens = getattr(opts, "tokens_column", None)
    read = {name: [_read_file(ds, specs[name], heads, tokens)] for name, ds in raw.items()}
    names_of = {name: [specs[name]] for name in raw}
    # the train columns that may label each head: the shared file's, and its own files'
    columns = {h.name: set(raw["train"].column_names) for h in heads}
    for src in sources:
        ds = read_split(src.path, src.split)
        read.setdefault(src.split, []).append(_read_file(ds, src.path, heads, tokens,
                                                         src.head))
        names_of.setdefault(src.split, []).append(src.path)
        specs.setdefault(f"{src.split}:{src.head}", src.path)
        if src.split == "train":
            columns[src.head] |= set(ds.column_names)
    seed = getattr(opts, "seed", 42)
    joined = {name: _joined(parts) for name, parts in read.items() if name != "train"}
    joined["train"], sampled = _sampled(read["train"], names_of["train"],
                                        getattr(opts, "sampling", "proportional"),
                                        getattr(opts, "sampling_temperature", 2.0), seed)
    fixed = split_flat(model_labels) if model_labels else None
    labelled = []
    for h in heads:
        if h.label_column not in columns[h.name]:
            raise DataError(f"{specs['train']}: no column {h.label_column!r} for the head "
                            f"{h.name!r} in any train file; the columns are "
                            f"{list(raw['train'].column_names)}; name its column "
                            f"({h.name}=KIND:COLUMN), or give the head its own file "
                            f"(--head-data {h.name}:train=PATH)")
        names = (fixed or {}).get(h.name) or _label_names(h, joined["train"][1][h.name],
                                                          specs["train"])
        labelled.append(type(h)(h.name, h.kind, h.column, h.weight, tuple(names)))
    splits = {}
    for name, (sentences, values) in joined.items():
        where = " + ".join(names_of[name])
        ids = {h.name: _ids(h, values[h.name], where, list(h.labels), bool(fixed))
               for h in labelled}
        splits[name] = Dataset.from_dict({
            "tokens": sentences,
            **{f"{LABEL_PREFIX}{h.name}": ids[h.name] for h in labelled}})
    notes = ([sampled] if sampled else []) + sample_and_carve(
        splits, train_sample=opts.train_sample, validation_fraction=opts.validation_fraction,
        seed=seed)
    for h in labelled:
        missing = sum(v is None for v in splits["train"][f"{LABEL_PREFIX}{h.name}"])
        if missing:
            notes.append(f"head {h.name}: {missing} train row(s) have no label; they are "
                         f"masked out of its loss")
    for note in notes:
        log.warning(note)
    return TaskData(splits=splits, label_names=flat(labelled),
                    columns={"tokens": "tokens", **{h.name: h.label_column for h in labelled}},
                    sources=specs, notes=notes)


LABEL_PREFIX = "label_"  # a read split's column of one head's ids (None: no gold label)


def read_eval(spec: str, label_names: list[str] | None, heads, opts=None):
    """One split for a trained model: "tokens", "text" (the words joined: what the bundled
    runtime reads) and "label" ({head: ids or IGNORE}) unless `label_names` is None."""
    from datasets import Dataset

    ds = read_split(spec, "validation")
    sentences, values = _read_file(ds, spec, heads if label_names is not None else [],
                                   getattr(opts, "tokens_column", None))
    rows = {"tokens": sentences, "text": [" ".join(ws) for ws in sentences]}
    if label_names is not None:
        per_head = split_flat(label_names)
        ids = {h.name: _ids(h, values[h.name], spec, per_head[h.name], True) for h in heads}
        unlabelled = next((h for h in heads if all(v is None for v in ids[h.name])), None)
        if unlabelled is not None:
            raise DataError(f"{spec}: no row has the head {unlabelled.name!r}'s label (column "
                            f"{unlabelled.label_column!r}); a joint model is scored on data "
                            f"labelled for every head")
        rows["label"] = [{h.name: _gold(ids[h.name][i], h, len(sentences[i]))
                          for h in heads} for i in range(len(sentences))]
    return Dataset.from_dict(rows)


def _gold(value, head, n_words: int):
    """A head's gold ids of one example, IGNORE where it has none."""
    if value is not None:
        return value
    return IGNORE if head_kind(head) == SENTENCE else [IGNORE] * n_words


def prepare(td: TaskData, tokenizer, opts, heads):
    """Every split as model rows (tasks.words), with {head: ids} per row."""
    from datasets import Dataset

    per_head = split_flat(td.label_names)
    out, counts, longest = {}, {}, {}
    budget = opts.max_length - tokenizer.num_special_tokens_to_add(pair=False)
    for name, ds in td.splits.items():
        sentences = [list(s) for s in ds["tokens"]]
        rows, lengths = words.rows_of(tokenizer, sentences, opts.max_length)
        labels = [{} for _ in rows["input_ids"]]
        for h in heads:
            values = list(ds[f"{LABEL_PREFIX}{h.name}"])
            if head_kind(h) == SENTENCE:
                for r, example in enumerate(rows[words.EXAMPLE]):
                    v = values[example]
                    labels[r][h.name] = IGNORE if v is None else v
            else:
                tags = [v if v is not None else [IGNORE] * len(s)
                        for v, s in zip(values, sentences)]
                tagged, _ = words.rows_of(tokenizer, sentences, opts.max_length, tags,
                                          inside=_inside(per_head[h.name]))
                for r, ids in enumerate(tagged["label"]):
                    labels[r][h.name] = ids
        rows["label"] = labels
        counts[name], longest[name] = sum(n > budget for n in lengths), max(lengths)
        if counts[name] and getattr(opts, "refuse_long", False):
            raise DataError(f"{td.sources.get(name, td.sources['train'])}: {counts[name]} "
                            f"sentence(s) are longer than {opts.max_length} tokens; raise "
                            f"--max-length or drop --refuse-long (they are then windowed)")
        out[name] = Dataset.from_dict(rows)
    return out, text.Truncation(counts, longest, kind="windowed")


def _inside(names: list[str]) -> list[int]:
    """The continuation id of each tag; IGNORE maps to itself (rows_of indexes by id)."""
    inside = iob.inside_of(names)
    return _IgnoreSafe(inside)


class _IgnoreSafe(list):
    """inside_of's list, indexed by IGNORE too (a masked word's split-off pieces)."""

    def __getitem__(self, i):
        return IGNORE if i == IGNORE else super().__getitem__(i)


class Collator:
    """tasks.words' collator for the inputs, with "labels" as {head: padded ids} and each
    head's cached teacher outputs padded beside (a word head's with its scored mask)."""

    def __init__(self, tokenizer, heads, teacher_columns: dict[str, str]):
        self.inner = words.Collator(tokenizer)
        self.heads, self.teacher_columns = heads, teacher_columns

    def __call__(self, features):
        import torch

        keep = [{k: v for k, v in f.items() if k in ("input_ids", "attention_mask",
                                                      "token_type_ids")} for f in features]
        batch = self.inner(keep)
        width = batch["input_ids"].shape[1]
        if features[0].get("label") is not None:
            labels = {}
            for h in self.heads:
                values = [f["label"][h.name] for f in features]
                if head_kind(h) == SENTENCE:
                    labels[h.name] = torch.tensor(values, dtype=torch.long)
                else:
                    t = torch.full((len(features), width), IGNORE, dtype=torch.long)
                    for r, v in enumerate(values):
                        t[r, :len(v)] = torch.as_tensor(v)
                    labels[h.name] = t
            batch["labels"] = labels
        for h in self.heads:
            column = self.teacher_columns[h.name]
            if features[0].get(column) is None:
                continue
            rows = [torch.as_tensor(f[column], dtype=torch.float32) for f in features]
            if head_kind(h) == SENTENCE:
                batch[column] = torch.stack(rows)
                continue
            k = rows[0].shape[-1]
            values = torch.zeros(len(features), width, k)
            mask = torch.zeros(len(features), width, dtype=torch.bool)
            for r, (v, f) in enumerate(zip(rows, features)):
                values[r, :len(v)] = v
                index = torch.as_tensor(f[words.WORD_INDEX])
                mask[r, :len(index)] = index >= 0
            batch[column] = values
            batch[f"teacher_mask_{h.name}"] = mask
        return batch
