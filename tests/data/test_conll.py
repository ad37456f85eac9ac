"""CoNLL column files and IOB tags: what is read, what is repaired, what is refused."""

from __future__ import annotations

import pytest

from edgetransfer.data import conll, tags
from edgetransfer.data.files import read_table
from edgetransfer.errors import DataError

CONLL = """-DOCSTART- -X- -X- O

EU NNP B-ORG
rejects VBZ O
German JJ B-MISC

Peter\tNNP\tB-PER
Blackburn\tNNP\tI-PER
"""


def test_a_conll_file_reads_one_row_per_sentence(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text(CONLL)
    ds = read_table(path)
    assert ds["tokens"] == [["EU", "rejects", "German"], ["Peter", "Blackburn"]]
    assert ds["column3"] == [["B-ORG", "O", "B-MISC"], ["B-PER", "I-PER"]]
    assert ds["column2"][0] == ["NNP", "VBZ", "JJ"]
    assert conll.columns_of(path) == ["tokens", "column2", "column3"]


@pytest.mark.parametrize("text, message", [
    ("EU NNP B-ORG\nrejects O\n", "train.txt: line 2 has 2 columns, the lines before have 3"),
    ("-DOCSTART- -X- O\n\n-DOCSTART- -X- O\n", "holds only -DOCSTART- lines, no sentences"),
    ("\n\n", "the file is empty; it needs one word a line"),
])
def test_bad_conll_files_are_refused_with_the_line(tmp_path, text, message):
    path = tmp_path / "train.txt"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_table(path)


def test_iob1_is_repaired_to_iob2_and_counted():
    fixed, at = tags.to_iob2(["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG", "I-LOC"])
    assert fixed == ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "B-ORG", "B-LOC"]
    assert at == [0, 3, 5, 6]
    assert tags.to_iob2(["B-PER", "I-PER", "O"]) == (["B-PER", "I-PER", "O"], [])


def test_a_non_iob_tag_is_refused_with_a_hint():
    with pytest.raises(DataError, match=r"x: tag 'NNP' is not an IOB tag .* --tag-column"):
        tags.check("NNP", "x")


def test_label_order_and_continuations():
    order = tags.label_order({"I-PER", "B-LOC", "O", "B-PER", "I-LOC", "B-MISC"})
    assert order == ["O", "B-LOC", "I-LOC", "B-MISC", "B-PER", "I-PER"]
    inside = tags.inside_of(order)
    assert [order[i] for i in inside] == ["O", "I-LOC", "I-LOC", "B-MISC", "I-PER", "I-PER"]
