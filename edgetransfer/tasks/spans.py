"""A tagger's answer read back onto gold words: how a token-classification model is scored.

A tagger's bundle takes raw text and prints entity spans with character offsets
(bundle/runtime/predict.py `_entities`: the tokenizer's words, first sub-token, IOB2 with
the conlleval repair). Its figure is taken from that answer, in one way:

1. each gold sentence's words are joined by single spaces, the text a user would give,
   each word's first character offset recorded;
2. the runtime reads the text and prints its entity spans;
3. a gold word takes the type of the span that covers its first character; the first
   word of a span is B-, each further one I-; a word no span covers is O;
4. the task's metrics (seqeval, strict IOB2) score those word tags against the gold ones.

So a gold word the runtime splits ("U.S." as U . S .) is one word, tagged by the span its
first character falls in; an I- the model put first is already an entity (the runtime's
repair); a span over two gold words tags both. A span that starts inside a gold word (its
first character left out) does not tag that word.
"""

from __future__ import annotations

import numpy as np

from ..data.tags import OUTSIDE


def join(words: list[str]) -> tuple[str, list[int]]:
    """(the words joined by single spaces, each word's first character offset)."""
    starts, at = [], 0
    for w in words:
        starts.append(at)
        at += len(w) + 1
    return " ".join(words), starts


def word_tags(entities: list[dict], starts: list[int]) -> list[str]:
    """IOB2 tags of the words starting at `starts`, from the runtime's entity spans
    ({"type", "start", "end"}): the rule in this module's docstring."""
    tags = [OUTSIDE] * len(starts)
    for e in entities:
        inside = [i for i, s in enumerate(starts) if e["start"] <= s < e["end"]]
        for k, i in enumerate(inside):
            tags[i] = f"{'I' if k else 'B'}-{e['type']}"
    return tags


def tag_ids(tags: list[str], label_names: list[str]) -> np.ndarray:
    """Tag names as the model's label ids (a type the labels hold only as I- reads so)."""
    index = {n: i for i, n in enumerate(label_names)}
    return np.array([index[t] if t in index else index[f"I-{t[2:]}"] for t in tags],
                    dtype=np.int64)


def predictions(predictor, ds, batch_size: int = 1) -> list[np.ndarray]:
    """Per sentence, its gold words' tag ids (`ds["tokens"]`) from what the runtime's
    Predictor prints for the sentence's joined text."""
    joined = [join(list(words)) for words in ds["tokens"]]
    rows = predictor.predict([text for text, _ in joined], batch_size=batch_size)
    return [tag_ids(word_tags(row["entities"], starts), predictor.labels)
            for row, (_, starts) in zip(rows, joined)]
