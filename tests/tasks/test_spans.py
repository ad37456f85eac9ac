"""A tagger's entity spans read back onto gold words (tasks/spans.py): the rule, and the
runtime's own answer read by it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgetransfer.tasks import get, spans

TASK = get("token-classification")
LABELS = ["O", "B-LOC", "I-LOC"]
WORDS = ["U.S.", "officials", "met", "New", "York", "police"]
GOLD = ["B-LOC", "O", "O", "B-LOC", "I-LOC", "O"]


def _entity(text: str, part: str, kind: str = "LOC", after: int = 0) -> dict:
    start = text.index(part, after)
    return {"type": kind, "start": start, "end": start + len(part)}


def test_words_are_joined_by_single_spaces_with_their_offsets():
    text, starts = spans.join(WORDS)
    assert text == "U.S. officials met New York police"
    assert [text[s:s + len(w)] for s, w in zip(starts, WORDS)] == WORDS


def _tags(entities, words=WORDS):
    text, starts = spans.join(words)
    return spans.word_tags(entities, starts, [s + len(w) for s, w in zip(starts, words)])


def test_a_span_tags_the_words_it_covers_whole():
    text, _ = spans.join(WORDS)
    # the runtime's words are U . S . : a span over all of them tags the one gold word
    assert _tags([_entity(text, "U.S.")]) == (["B-LOC"] + ["O"] * 5, [])
    # a span across two words: B- then I-
    assert _tags([_entity(text, "New York")]) == (["O", "O", "O", "B-LOC", "I-LOC", "O"], [])
    # two spans side by side: each its own entity
    assert _tags([_entity(text, "New"), _entity(text, "York")])[0][3:5] == ["B-LOC", "B-LOC"]
    assert spans.tag_ids(["B-LOC", "I-LOC", "O"], LABELS).tolist() == [1, 2, 0]


def test_a_span_that_cuts_a_word_is_an_entity_no_gold_one_equals():
    text, _ = spans.join(WORDS)
    # "U.S" (the last "." left out) and "S." (starting inside the word) tag nothing: each is
    # a printed entity matching none
    assert _tags([_entity(text, "U.S")]) == (["O"] * 6, ["LOC"])
    assert _tags([_entity(text, "S.")]) == (["O"] * 6, ["LOC"])
    # a hyphenated word printed as two entities (AL- and AIN): both wrong, the word missed
    words = ["AL-AIN", ",", "United"]
    text, _ = spans.join(words)
    tags, cut = _tags([_entity(text, "AL-"), _entity(text, "AIN")], words)
    assert tags == ["O", "O", "O"] and cut == ["LOC", "LOC"]


def test_the_entity_figures_count_the_cut_spans_as_predicted():
    """Scored so, the figures are those of matching the printed spans to the gold spans by
    type and character offsets: one gold entity, one found, one more printed that cuts a
    word: precision 1/2, recall 1."""
    gold = [[1, 0, 0, 1, 2, 0]]
    found = spans.tag_ids(["B-LOC", "O", "O", "B-LOC", "I-LOC", "O"], LABELS).view(spans.Tags)
    found.cut = ("LOC",)
    report = TASK.metrics(gold, [found], LABELS)
    assert report["entity_precision"] == pytest.approx(2 / 3)
    assert report["entity_recall"] == 1.0
    assert report["per_type"]["LOC"]["precision"] == pytest.approx(2 / 3, abs=1e-4)
    plain = TASK.metrics(gold, [np.asarray(found)], LABELS)
    assert plain["entity_precision"] == 1.0  # (the same tags without the cut span)


@pytest.fixture(scope="module")
def runtime(tiny_backbone):
    """The runtime's Predictor around a model that tags by token: every piece of "U.S.",
    "new" and "york" I-LOC (no B- anywhere), everything else O."""
    from tokenizers import Tokenizer

    from edgetransfer.bundle import spec
    from edgetransfer.bundle.runtime.predict import Predictor
    from edgetransfer.modeling import backbones

    tokenizer = Tokenizer.from_file(str(tiny_backbone / "tokenizer.json"))
    inside = {"u", ".", "s", "new", "york"}

    def model(feeds):
        ids = feeds["input_ids"]
        logits = np.zeros(ids.shape + (len(LABELS),), dtype=np.float32)
        for index, token_id in np.ndenumerate(ids):
            logits[index + (2 if tokenizer.id_to_token(int(token_id)) in inside else 0,)] = 5
        return {"logits": logits}

    preprocessor = backbones.load_tokenizer(backbones.resolve(str(tiny_backbone)))
    config = json.loads((tiny_backbone / "config.json").read_text())
    made = spec.build(TASK, tiny_backbone, config, *spec.of_preprocessor(TASK, preprocessor),
                      num_labels=len(LABELS), max_length=32)
    return Predictor.around(model, made, LABELS, tiny_backbone)


def test_the_runtimes_spans_score_the_gold_words(runtime):
    """The runtime splits "U.S." into four words and repairs the I- it starts with; "New
    York" is one span over two gold words: read back, every gold tag is matched."""
    text, _ = spans.join(WORDS)
    entities = runtime.predict([text])[0]["entities"]
    assert [e["text"] for e in entities] == ["U.S.", "New York"]
    (predicted,) = spans.predictions(runtime, {"tokens": [WORDS]})
    assert [LABELS[i] for i in predicted] == GOLD
    gold = [[LABELS.index(t) for t in GOLD]]
    assert TASK.metrics(gold, [predicted], LABELS)["entity_f1"] == 1.0
    # the same answer read strictly off the model's own per-word tags (I-LOC I-LOC ...)
    # would have found no entity at all: the repair is the runtime's, and scored as such
    strict = [np.array([2, 0, 0, 2, 2, 0])]
    assert TASK.metrics(gold, strict, LABELS)["entity_f1"] == 0.0
