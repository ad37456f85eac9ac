"""The real CoNLL-2003 files in ../shared/data (skipped where a clone does not have them)."""

from __future__ import annotations

from pathlib import Path

import pytest

CONLL = Path(__file__).resolve().parents[3] / "shared/data/conll2003"
pytestmark = pytest.mark.skipif(not (CONLL / "test.txt").exists(),
                                reason="../shared/data/conll2003 is absent")


def test_test_txt_reads_with_the_articles_supports():
    from edgetransfer.tasks import get

    task = get("token-classification")
    names = ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    ds = task.read_eval(str(CONLL / "test.txt"), names)
    assert len(ds) == 3453  # sentences, -DOCSTART- lines skipped (the README's counts)
    gold = list(ds["label"])
    report = task.metrics(gold, gold, names)
    token = report["token_report"]
    assert report["words"] == 46435 and token["micro avg"]["support"] == 46435
    assert token["B-LOC"]["support"] == 1668 and token["O"]["support"] == 38323
    assert report["entity_f1"] == 1.0
    assert sum(r["support"] for r in report["per_type"].values()) == 5648  # entities
