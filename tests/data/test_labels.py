"""Class labels: the one id2label parser, names in id order, ids checked against the model."""

from __future__ import annotations

import pytest

from edgetransfer.data import labels
from edgetransfer.errors import DataError


def test_id2label_names_in_id_order():
    assert labels.id2label_names({"1": "pos", "0": "neg"}, "c.json") == ["neg", "pos"]
    assert labels.id2label_names({0: "a", 1: "b", 2: "c"}, "c.json") == ["a", "b", "c"]
    assert labels.id2label_names({}, "c.json") == []


@pytest.mark.parametrize("bad, words", [
    ({"a": "x"}, "id2label must map class ids (0, 1, ...) to names"),
    (["x", "y"], "id2label must map class ids"),
    ({"0": "a", "2": "b"}, "id2label's ids are [0, 2]; they must be 0..N-1"),
])
def test_id2label_that_is_not_ids_0_to_n(bad, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        labels.id2label_names(bad, "c.json")


def test_names_sorted_or_as_the_head_has_them():
    assert labels.names_for(["b", "a", "b"], "t.jsonl", None, None) == ["a", "b"]
    assert labels.names_for(["b", "a"], "t.jsonl", ["b", "a"], None) == ["b", "a"]
    assert labels.names_for([0, 2], "t.jsonl", None, None) == ["0", "1", "2"]


def test_a_label_the_trained_model_lacks_is_named():
    with pytest.raises(DataError, match="label 'maybe' is not a known class; the model's"):
        labels.encode(["yes", "maybe"], "eval.jsonl", ["no", "yes"], fixed_by_model=True,
                      trained=True)
    assert labels.encode(["yes", 0], "eval.jsonl", ["no", "yes"], fixed_by_model=True) == [1, 0]
