"""A tagger's answer read back onto gold words: how a token-classification model is scored.

A tagger's bundle takes raw text and prints entity spans with character offsets
(bundle/runtime/predict.py `_entities`: the tokenizer's words, first sub-token, IOB2 with
the conlleval repair). Its figure is taken from that answer, in one way:

1. each gold sentence's words are joined by single spaces, the text a user would give,
   each word's first and last character offsets recorded;
2. the runtime reads the text and prints its entity spans;
3. a span that starts at a gold word's first character and ends at a gold word's last
   tags those words: the first B-, each further one I-; a word no such span covers is O;
4. a span that cuts a gold word (starts or ends inside it) is a printed entity that no gold
   entity equals: it tags no word, and the entity figures count it as predicted, matching
   none (`Tags.cut`);
5. the task's metrics score those word tags against the gold ones (entities strict IOB2).

So the entity figures are exactly what matching the printed spans to the gold spans by type
and character offsets gives (bench/scoring_path.py checks it independently): a gold word the
runtime splits ("AL-AIN" as AL - AIN) is found only where one span covers it whole; two
spans over it are two wrong entities. The word-level figures (token_micro_f1) read the
tags of step 3.
"""

from __future__ import annotations

import numpy as np

from ..data.tags import OUTSIDE


class Tags(np.ndarray):
    """A sentence's word tag ids, with `cut`: the types of the printed spans that cut a gold
    word (rule 4), which the entity figures count as predicted entities matching none."""

    cut: tuple[str, ...] = ()


def cut_of(prediction) -> tuple[str, ...]:
    """The cut spans' types of a sentence's prediction (none for plain tag ids)."""
    return getattr(prediction, "cut", ())


def join(words: list[str]) -> tuple[str, list[int]]:
    """(the words joined by single spaces, each word's first character offset)."""
    starts, at = [], 0
    for w in words:
        starts.append(at)
        at += len(w) + 1
    return " ".join(words), starts


def word_tags(entities: list[dict], starts: list[int], ends: list[int]
              ) -> tuple[list[str], list[str]]:
    """(IOB2 tags of the words at `starts`..`ends`, the types of the spans that cut a
    word) from the runtime's entity spans ({"type", "start", "end"}): the rules above."""
    tags, cut = [OUTSIDE] * len(starts), []
    first, last = {s: i for i, s in enumerate(starts)}, {e: i for i, e in enumerate(ends)}
    for e in entities:
        if e["start"] not in first or e["end"] not in last:
            cut.append(e["type"])
            continue
        for k, i in enumerate(range(first[e["start"]], last[e["end"]] + 1)):
            tags[i] = f"{'I' if k else 'B'}-{e['type']}"
    return tags, cut


def tag_ids(tags: list[str], label_names: list[str]) -> np.ndarray:
    """Tag names as the model's label ids (a type the labels hold only as I- reads so)."""
    index = {n: i for i, n in enumerate(label_names)}
    return np.array([index[t] if t in index else index[f"I-{t[2:]}"] for t in tags],
                    dtype=np.int64)


def predictions(predictor, ds, batch_size: int = 1) -> list[Tags]:
    """Per sentence, its gold words' tag ids (`ds["tokens"]`) from what the runtime's
    Predictor prints for the sentence's joined text, and the spans that cut a word."""
    joined = [(join(list(words)), words) for words in ds["tokens"]]
    rows = predictor.predict([text for (text, _), _ in joined], batch_size=batch_size)
    out = []
    for row, ((_, starts), words) in zip(rows, joined):
        ends = [s + len(w) for s, w in zip(starts, words)]
        tags, cut = word_tags(row["entities"], starts, ends)
        ids = tag_ids(tags, predictor.labels).view(Tags)
        ids.cut = tuple(cut)
        out.append(ids)
    return out
