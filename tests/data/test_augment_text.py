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
    # (edits that are drawn, not forced: the seed decides them, the same seed again alike)
    half = at.TextAugment(copies=8, replace=0.5, mention_swap=0.5)
    drawn = at.expand_tagged(rows, half, near, "[MASK]", seed=0)
    assert drawn == at.expand_tagged(rows, half, near, "[MASK]", seed=0)
    assert drawn != at.expand_tagged(rows, half, near, "[MASK]", seed=1)


def test_entity_words_are_never_replaced_masked_or_deleted():
    """Only O words are edited: an entity word that has neighbours, under edits that would
    take every word, stays with its B-/I- tags (mentions move only by swapping, off here)."""
    rows = [(["Alice", "visited", "New", "York", "today"],
             ["B-PER", "O", "B-LOC", "I-LOC", "O"])]
    near = {"alice": ["carol"], "new": ["old"], "york": ["paris"], "visited": ["saw"],
            "today": ["now"]}
    for edits in (dict(replace=1.0), dict(mask=1.0), dict(delete=0.99)):
        out = at.expand_tagged(rows, at.TextAugment(copies=6, **edits), near, "[MASK]", seed=3)
        for words, tags in out:
            assert [(w, t) for w, t in zip(words, tags) if t != "O"] == [
                ("Alice", "B-PER"), ("New", "B-LOC"), ("York", "I-LOC")], edits
            others = [w for w, t in zip(words, tags) if t == "O"]
            assert all(w not in ("visited", "today") for w in others), (edits, words)


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


def test_a_one_word_sentence_keeps_its_word_when_the_delete_roll_hits():
    """The delete roll on a sentence of one word keeps the word as it is; it does not fall
    through to a replacement (which it did, half the time at delete 0.5)."""
    aug = at.TextAugment(1, delete=0.5)
    near = {"good": ["great"]}
    outs = [at.sentence(["good"], aug, near, "[MASK]", np.random.default_rng(s))
            for s in range(200)]
    assert outs == [["good"]] * 200


def test_a_tagged_copy_is_never_empty():
    """Every word of an all-O sentence deleted: the first stays (the tagger's reader refuses
    a sentence of no words, so `eda` on CoNLL's two-word rows stopped the run)."""
    aug = at.TextAugment(copies=64, delete=0.99)
    rows = [(["yes", "no"], ["O", "O"])] * 4
    out = at.expand_tagged(rows, aug, {}, "[MASK]", seed=0)
    assert all(words and len(words) == len(tags) for words, tags in out)
    assert (["yes"], ["O"]) in out


class _Split(dict):
    """A split as make_rows reads it: columns by name."""

    @property
    def column_names(self):
        return list(self)


class _Data:
    def __init__(self, train: dict, label_names=None):
        self.splits = {"train": _Split(train)}
        self.label_names = label_names


def test_made_rows_repeat_neither_a_training_row_nor_each_other():
    """A copy that edited nothing is its training row; two copies may come out alike: each
    such sentence would be taught twice, so make_rows keeps the first of each."""
    data = _Data({"text": ["the good movie", "the great movie", "good"]})
    aug = at.TextAugment(copies=6, replace=0.5)
    near = at.neighbours(_embeddings(), VOCAB, {"the", "good", "great", "movie"},
                         aug.neighbours)
    rows = at.make_rows("text-classification", data, _embeddings(), VOCAB, aug, seed=3)
    texts = [" ".join(ws) for ws in rows]
    every = at.expand_texts(data.splits["train"]["text"], aug, near, at.MASK, 3)
    assert len(every) == 18 and 0 < len(texts) < 18
    assert len(set(texts)) == len(texts)
    assert not set(texts) & set(data.splits["train"]["text"])
    assert texts == list(dict.fromkeys(t for t in every if t not in data.splits["train"]["text"]))
    # nothing edited at all: nothing new
    assert at.make_rows("text-classification", data, _embeddings(), VOCAB,
                        at.TextAugment(copies=3), seed=3) == []
    tagger = _Data({"tokens": [["Bob", "left"], ["Ann", "left"]], "label": [[1, 0], [1, 0]]},
                   ["O", "B-PER"])
    made = at.make_rows("token-classification", tagger, _embeddings(), VOCAB,
                        at.TextAugment(copies=4, mention_swap=1.0), seed=0)
    assert made == []  # (each copy, its mention swapped for the other, is the other row)


def test_unlabelled_texts_are_copied_after_trains_rows_which_keep_their_copies():
    """make_rows(more=...): train's rows draw the same copies as without `more` (each
    copy's generator is seeded by its row's number), the unlabelled texts' copies follow,
    and none repeats a row given (train's or the unlabelled ones)."""
    data = _Data({"text": ["the good movie", "the great movie"]})
    aug = at.TextAugment(copies=6, replace=0.5)
    alone = at.make_rows("text-classification", data, _embeddings(), VOCAB, aug, seed=3)
    more = ["a bad film", "the poor film", "the good movie"]
    both = at.make_rows("text-classification", data, _embeddings(), VOCAB, aug, seed=3,
                        more=more)
    texts = [" ".join(ws) for ws in both]
    assert both[:len(alone)] == alone and len(both) > len(alone)
    assert any(t.endswith("film") for t in texts)  # (only the unlabelled texts have films)
    assert len(set(texts)) == len(texts) and not set(texts) & {*more, "the great movie"}
    assert at.long_enough(data.splits["train"], at.TextAugment(copies=1, min_words=3),
                          more + ["two words"]) == 5
    with pytest.raises(ConfigError, match="--augment-unlabeled: an unlabelled sentence has "
                                          "no tags to keep its mentions whole"):
        at.check_task("token-classification", _Split({"tokens": []}), "ner", unlabeled=True)


def test_each_model_reads_a_masked_word_as_its_own_mask_token(tmp_path):
    """One set of rows, written once per tokenizer: "[MASK]" for a WordPiece student,
    "<mask>" for an mpnet teacher; one's mask is ordinary text to the other's reader."""
    import json

    data = _Data({"text": ["the good movie", "a good film"]})
    rows = at.make_rows("text-classification", data, _embeddings(), VOCAB,
                        at.TextAugment(copies=4, mask=0.6), seed=0)
    assert any(at.MASK in ws for ws in rows)
    for token in ("[MASK]", "<mask>"):
        path = tmp_path / f"{token}.jsonl"
        assert at.write_rows("text-classification", rows, token, path) == len(rows)
        texts = [json.loads(line)["text"] for line in path.read_text().splitlines()]
        assert texts == [" ".join(token if w == at.MASK else w for w in ws) for ws in rows]
        assert at.MASK not in "".join(texts)
    at.write_rows("token-classification", [["Bob", at.MASK]], "[MASK]", tmp_path / "t.jsonl")
    assert json.loads((tmp_path / "t.jsonl").read_text()) == {"tokens": ["Bob", "[MASK]"]}


def test_a_task_text_augmentation_does_not_edit_is_refused():
    at.check_task("text-classification", _Split({"text": []}), "eda")
    at.check_task("token-classification", _Split({"tokens": []}), "ner")
    with pytest.raises(ConfigError, match="--augment eda: text augmentation is for single-text "
                                          "classification and token classification, not "
                                          "text-classification with a text pair"):
        at.check_task("text-classification", _Split({"text": [], "text_pair": []}), "eda")
    with pytest.raises(ConfigError, match="not image-classification"):
        at.check_task("image-classification", _Split({"image": []}), "eda")


def test_a_sentencepiece_or_bpe_teachers_words_are_its_marked_entries():
    """In a SentencePiece (▁) or byte-level BPE (Ġ) vocabulary the word-initial entries are
    the whole words and the unmarked ones are pieces: neighbours are words, written bare."""
    for mark in ("\u2581", "\u0120"):
        vocab = {(mark + w if w in ("good", "great", "fine", "bad", "movie", "film", "the")
                  else w): i for w, i in VOCAB.items()}
        vocab["ing"] = len(vocab)  # (a piece: unmarked)
        table = np.vstack([_embeddings(), [[1, 0.1, 0.01]]]).astype(np.float32)
        near = at.neighbours(table, vocab, {"good", "movie", "ing"}, 2)
        assert near["good"] == ["great", "fine"] and near["movie"][0] == "film"
        assert "ing" not in near and "ing" not in near["good"]
