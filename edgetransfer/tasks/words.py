"""Words to model rows and back: sub-token alignment and windows over long sentences.

A sentence is a list of words; it becomes one model row, or several overlapping windows
when its sub-tokens exceed --max-length (bundle/runtime/predict.py's plan_windows, the one
rule for training, evaluation and the bundled runtime; never cut). Beside the model inputs
each row carries:

- "label": per sub-token, the word's tag id on the first sub-token of each word the window
  scores, its inside tag on the first sub-token of each further tokenizer word it splits
  into (rows_of says why), IGNORE elsewhere (other continuation sub-tokens too, unless
  --label-all-subtokens);
- "word_index": per sub-token, the word's number in its sentence on the first sub-token of
  each word the window scores, -1 elsewhere;
- "example": the sentence's number.

`per_example` takes any per-position output (logits, labels) back to one array per
sentence, one entry per word in word order: what metrics, parity and distillation read.
"""

from __future__ import annotations

import logging

import numpy as np

from ..bundle.runtime.predict import plan_windows
from ..data.labels import IGNORE
from ..errors import DataError, ModelError
from .task import EXAMPLE

log = logging.getLogger(__name__)

WORD_INDEX = "word_index"
INDEX = (WORD_INDEX, EXAMPLE)  # the columns that map positions back to words, not inputs
NOT_SCORED = -1


def require_fast(tokenizer, where: str = "the model") -> None:
    """Word alignment needs a fast tokenizer's word_ids()."""
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(f"{where}: its tokenizer is not a fast one (no tokenizer.json), and "
                         f"tagging words needs one to map sub-tokens to words; save the "
                         f"model with a fast tokenizer")


def rows_of(tokenizer, sentences: list[list[str]], max_length: int, labels=None, *,
            inside: list[int] | None = None, all_subtokens: bool = False,
            first_example: int = 0) -> tuple[dict, list[int]]:
    """(model rows as a dict of lists, each sentence's sub-token count: those above
    --max-length less the special tokens were windowed).

    `labels`: per sentence, one tag id per word (None: no "label" column). `inside`: the id
    each tag continues with (tags.inside_of): a data word that the tokenizer splits into
    several of its own words (at punctuation: "Anglo-Dutch", "U.S.") has its tag on the first
    and the inside tag on the others, since the bundled runtime tags the tokenizer's words
    and would otherwise read untrained positions; with `all_subtokens`
    (--label-all-subtokens) every continuation sub-token takes the inside tag too.
    """
    require_fast(tokenizer)
    sentences = [list(s) for s in sentences]  # (a datasets Column is not a list)
    labels = None if labels is None else [list(ls) for ls in labels]
    budget = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    full = tokenizer(sentences, is_split_into_words=True, add_special_tokens=False)
    pieces, plans, counts = [], [], []
    for i, words in enumerate(sentences):
        lengths = [0] * len(words)
        for w in full.word_ids(i):
            if w is not None:
                lengths[w] += 1
        # a word the tokenizer drops (a lone control character) is read as unknown, so
        # every word has a first sub-token and is scored
        words = [w if n else (tokenizer.unk_token or w) for w, n in zip(words, lengths)]
        counts.append(sum(max(n, 1) for n in lengths))
        windows = plan_windows([max(n, 1) for n in lengths], budget)
        for start, end, own, own_end in windows:
            pieces.append(words[start:end])
            plans.append((i, start, own, own_end))
    enc = tokenizer(pieces, is_split_into_words=True, truncation=True, max_length=max_length)
    # WordPiece marks a sub-token that continues a word ("##"); one without the mark after a
    # word's first starts another of the tokenizer's words. Tokenizers without such a mark
    # (byte-level BPE) label the first sub-token only.
    prefix = getattr(getattr(tokenizer.backend_tokenizer, "model", None),
                     "continuing_subword_prefix", None)
    rows = {k: list(v) for k, v in enc.items()}
    rows[WORD_INDEX], rows[EXAMPLE] = [], []
    if labels is not None:
        rows["label"] = []
    for j, (i, start, own, own_end) in enumerate(plans):
        index, tags, previous = [], [], None
        tokens = enc.tokens(j)
        for position, w in enumerate(enc.word_ids(j)):
            word = None if w is None else start + w
            scored = word is not None and own <= word < own_end
            first = scored and w != previous
            index.append(word if first else NOT_SCORED)
            if labels is not None:
                split_off = (scored and not first and bool(prefix)
                             and not tokens[position].startswith(prefix))
                continues = inside is not None and (split_off or (scored and all_subtokens))
                tags.append(labels[i][word] if first
                            else inside[labels[i][word]] if continues else IGNORE)
            previous = w
        rows[WORD_INDEX].append(index)
        rows[EXAMPLE].append(first_example + i)
        if labels is not None:
            rows["label"].append(tags)
    return rows, counts


def pad(tokenizer, rows: dict) -> dict:
    """Rows of lists as right-padded numpy int64 arrays (what both runtimes take)."""
    width = max(len(ids) for ids in rows["input_ids"])
    fill = {"input_ids": tokenizer.pad_token_id or 0, WORD_INDEX: NOT_SCORED, "label": IGNORE}
    out = {}
    for key, values in rows.items():
        if key == EXAMPLE:
            out[key] = np.asarray(values, dtype=np.int64)
            continue
        arr = np.full((len(values), width), fill.get(key, 0), dtype=np.int64)
        for r, v in enumerate(values):
            arr[r, :len(v)] = v
        out[key] = arr
    return out


def encode(tokenizer, rows: dict, max_length: int = 128) -> dict:
    """Sentences (rows["tokens"]) as one padded batch of numpy feeds, windows and all, with
    the word_index / example arrays per_example reads (runners feed only model inputs)."""
    feeds, _ = rows_of(tokenizer, [list(t) for t in rows["tokens"]], max_length)
    return pad(tokenizer, feeds)


def per_example(values, index: dict) -> list[np.ndarray]:
    """Per-position outputs of some rows ([rows, positions, ...], ragged or padded) as one
    array per sentence: each scored word's entry, in word order, windows joined."""
    parts: dict[int, list] = {}
    for row, (words, example) in enumerate(zip(index[WORD_INDEX], index[EXAMPLE])):
        words = np.asarray(words)
        at = np.flatnonzero(words >= 0)
        parts.setdefault(int(example), []).append((words[at], np.asarray(values[row])[at]))
    out = []
    for example in sorted(parts):
        words = np.concatenate([w for w, _ in parts[example]])
        vals = np.concatenate([v for _, v in parts[example]])
        out.append(vals[np.argsort(words, kind="stable")])
    return out


def to_rows(values, index: dict) -> list[np.ndarray]:
    """`per_example`'s inverse: one array per sentence (an entry per word) as one per row of
    `index` (rows another tokenizer made of the same sentences), each of the row's length,
    each word's entry at the first sub-token of the word and zeros elsewhere (positions a
    word-level loss does not read). The words are the data's in both (is_split_into_words),
    so word k is word k whatever either tokenizer makes of it: a sentence the two split into
    different word counts (raw unlabelled text split by two pre-tokenizers) is refused.
    Sentences are matched in order of their numbers, as `per_example` lists them, so any
    numbering the two share will do (unlabelled sentences with some left out)."""
    counts: dict[int, int] = {}
    for words, example in zip(index[WORD_INDEX], index[EXAMPLE]):
        counts[int(example)] = max(counts.get(int(example), 0), max(words, default=-1) + 1)
    entry = {example: i for i, example in enumerate(sorted(counts))}
    for example, n in counts.items():
        if n != len(values[entry[example]]):
            raise DataError(f"sentence {example + 1} of the transfer set: the teacher's "
                            f"tokenizer reads {len(values[entry[example]])} words in it, the "
                            f"student's {n}; give unlabelled sentences as words (a tokens "
                            f"column) so both read the same words")
    out = []
    for words, example in zip(index[WORD_INDEX], index[EXAMPLE]):
        words, per_word = np.asarray(words), np.asarray(values[entry[int(example)]])
        row = np.zeros((len(words),) + per_word.shape[1:], dtype=per_word.dtype)
        at = np.flatnonzero(words >= 0)
        row[at] = per_word[words[at]]
        out.append(row)
    return out


def split_words(tokenizer, texts: list[str]) -> list[list[str]]:
    """Raw texts as words, split where the tokenizer's pre-tokenizer splits (spaces and
    punctuation): the words the bundled runtime tags, so training sees the same."""
    require_fast(tokenizer)
    enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    out = []
    for i, text in enumerate(texts):
        spans: dict[int, list[int]] = {}
        for w, (a, b) in zip(enc.word_ids(i), enc["offset_mapping"][i]):
            if w is not None:
                spans.setdefault(w, [a, b])[1] = b
        out.append([text[a:b] for a, b in spans.values()])
    return out


class Collator:
    """transformers' token-classification collator (pads input ids and per-token labels),
    minus the index columns; cached teacher logits (one [real tokens, labels] list per row)
    are padded alongside, with "teacher_mask" marking the scored positions."""

    def __init__(self, tokenizer):
        import copy

        from transformers import DataCollatorForTokenClassification

        # right padding always: rows map back to words by position from the left
        # (per_example reads the unpadded word_index lists), whatever the model's own side
        tokenizer = copy.copy(tokenizer)
        tokenizer.padding_side = "right"
        self.inner = DataCollatorForTokenClassification(tokenizer, label_pad_token_id=IGNORE)

    def __call__(self, features):
        import torch

        teacher = [f.get("teacher_logits") for f in features]
        index = [f.get(WORD_INDEX) for f in features]
        batch = self.inner([{("labels" if k == "label" else k): v for k, v in f.items()
                             if k not in INDEX and k != "teacher_logits"} for f in features])
        if teacher[0] is not None:
            width, k = batch["input_ids"].shape[1], len(teacher[0][0])
            logits = torch.zeros(len(features), width, k)
            mask = torch.zeros(len(features), width, dtype=torch.bool)
            for r, (rows, words) in enumerate(zip(teacher, index)):
                rows = torch.as_tensor(rows, dtype=torch.float32)
                logits[r, :len(rows)] = rows
                mask[r, :len(words)] = torch.as_tensor(words) >= 0
            batch["teacher_logits"], batch["teacher_mask"] = logits, mask
        return batch


def check_words(tokens, where: str) -> list[str]:
    """A sentence's words: a non-empty list of non-empty strings."""
    if not isinstance(tokens, (list, tuple)) or not tokens:
        raise DataError(f"{where}: the sentence has no words; give a non-empty list of words")
    bad = next((k for k, t in enumerate(tokens) if not isinstance(t, str) or not t.strip()),
               None)
    if bad is not None:
        raise DataError(f"{where}: word {bad + 1} ({tokens[bad]!r}) is not a non-empty string; "
                        f"give each word as text")
    return list(tokens)
