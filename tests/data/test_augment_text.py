"""Text augmentation for distillation: deterministic by seed, neighbours from the teacher's
embeddings, tags kept aligned."""

from __future__ import annotations

import numpy as np
import pytest

from edgetransfer.data import augment_text as at
from edgetransfer.errors import ConfigError

VOCAB = {w: i for i, w in enumerate(["[PAD]", "[MASK]", "good", "great", "fine", "bad",
                                     "awful", "poor", "movie", "film", "##s", "the"])}


def _embeddings() -> np.ndarray:
    """good/great/fine point one way, bad/awful/poor the other, movie/film a third."""
    e = np.zeros((len(VOCAB), 3), np.float32)
    for w, v in {"good": [1, 0.1, 0], "great": [1, 0.2, 0], "fine": [0.9, 0, 0.1],
                 "bad": [-1, 0.1, 0], "awful": [-1, 0.2, 0], "poor": [-0.9, 0, 0.1],
                 "movie": [0, 0, 1], "film": [0, 0.1, 1], "the": [0.3, 0.3, 0.3],
                 "##s": [1, 0.15, 0]}.items():
        e[VOCAB[w]] = v
    return e


def test_neighbours_come_from_the_teachers_embeddings():
    near = at.neighbours(_embeddings(), VOCAB, {"good", "movie", "zzz"}, 2)
    assert near["good"] == ["great", "fine"]  # (never ##s, a piece; never itself)
    assert near["movie"][0] == "film"
    assert "zzz" not in near


def test_copies_are_deterministic_by_seed_and_differ_between_copies():
    aug = at.TextAugment(copies=5, replace=0.5, delete=0.1, swap=0.1)
    near = at.neighbours(_embeddings(), VOCAB, {"good", "movie", "bad"}, 2)
    texts = ["the good movie", "a bad film and a good plot"]
    first = at.expand_texts(texts, aug, near, "[MASK]", seed=1)
    assert first == at.expand_texts(texts, aug, near, "[MASK]", seed=1)
    assert first != at.expand_texts(texts, aug, near, "[MASK]", seed=2)
    assert len(first) == 10 and len(set(first[:5])) > 1
    # a row's copies do not depend on the rows around it
    assert at.expand_texts(texts[1:], aug, near, "[MASK]", seed=1) != first[5:]  # (row index)
    assert all(t for t in first)


def test_replacement_keeps_the_words_capital():
    near = {"good": ["great"]}
    out = at.sentence(["Good", "movie"], at.TextAugment(1, replace=1.0), near, "[MASK]",
                      np.random.default_rng(0))
    assert out == ["Great", "movie"]


def test_tags_stay_aligned_and_mentions_swap_within_their_type():
    rows = [(["Alice", "visited", "New", "York"], ["B-PER", "O", "B-LOC", "I-LOC"]),
            (["Bob", "left", "Paris"], ["B-PER", "O", "B-LOC"])]
    aug = at.TextAugment(copies=8, replace=1.0, mention_swap=1.0)
    near = {"visited": ["saw"], "left": ["quit"]}
    out = at.expand_tagged(rows, aug, near, "[MASK]", seed=0)
    assert out == at.expand_tagged(rows, aug, near, "[MASK]", seed=0)
    pool = at.mentions(rows)
    for words, tags in out:
        assert len(words) == len(tags)
        for kind, first, last in at.entity_spans(tags):
            assert words[first:last + 1] in pool[kind]
        assert [w for w, t in zip(words, tags) if t == "O"][0] in ("saw", "quit")
    swapped = {tuple(w) for w, _ in out[:8]}
    assert ("Bob", "saw", "Paris") in swapped  # every mention swapped for the other one
    assert out[0][1] == ["B-PER", "O", "B-LOC"]


def test_a_preset_is_named_and_bounded():
    assert at.preset("tinybert").copies == 20
    with pytest.raises(ConfigError, match="--augment nope: not a text preset"):
        at.preset("nope")
    with pytest.raises(ConfigError, match="copies 0"):
        at.expand_texts(["x"], at.TextAugment(copies=0), {}, "[MASK]", 0)


def test_a_preset_with_a_floor_copies_only_the_rows_that_long():
    """min_words: the copies go to rows of sentence length; each kept row's copies are the
    ones it gets without the floor (its generator is seeded by its own row)."""
    near = at.neighbours(_embeddings(), VOCAB, {"good", "movie", "bad"}, 2)
    texts = ["good", "the good movie", "a bad film", "bad"]
    floor = at.TextAugment(copies=3, replace=0.5, min_words=3)
    out = at.expand_texts(texts, floor, near, "[MASK]", seed=1)
    every = at.expand_texts(texts, at.TextAugment(copies=3, replace=0.5), near, "[MASK]", 1)
    assert out == every[3:9] and len(out) == 6
    rows = [(["Bob", "left"], ["B-PER", "O"]),
            (["Alice", "visited", "New", "York"], ["B-PER", "O", "B-LOC", "I-LOC"])]
    tagged = at.expand_tagged(rows, at.TextAugment(copies=2, mention_swap=1.0, min_words=3),
                              {}, "[MASK]", seed=0)
    assert len(tagged) == 2 and all(len(w) == len(t) for w, t in tagged)
    assert {w[0] for w, _ in tagged} == {"Bob"}  # (a short row's mention swapped in)
    assert at.preset("long").min_words == 15 and at.preset("eda").min_words == 0
