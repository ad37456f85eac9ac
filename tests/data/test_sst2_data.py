"""The real SST-2 files in ../shared/data (skipped where a clone does not have them)."""

from __future__ import annotations

from pathlib import Path

import pytest

SST2 = Path(__file__).resolve().parents[3] / "shared/data/sst2"
pytestmark = pytest.mark.skipif(not (SST2 / "validation.tsv").exists(),
                                reason="../shared/data/sst2 is absent")


def test_sst2_tsv_reads_every_row_unquoted():
    from edgetransfer.tasks.text_classification import load as load_task

    task = load_task(str(SST2 / "validation.tsv"), str(SST2 / "validation.tsv"),
                     label_names=["negative", "positive"])
    val = task.splits["validation"]
    assert len(val) == 872  # GLUE's validation split, as the README says
    assert sorted(set(val["label"])) == [0, 1] and sum(val["label"]) == 444
    assert task.columns["text"] == "sentence" and task.label_names == ["negative", "positive"]
    # texts with quote characters stay whole (TSV is read with quoting off)
    assert all(t.strip() for t in val["text"])
