"""bench/by_length.py: rows bucketed by their words, each run's accuracy per bucket."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import by_length  # noqa: E402


def test_rows_bucketed_by_words_and_scored_per_run(tmp_path):
    assert [by_length.bucket(n) for n in (0, 1, 9, 10, 14, 15, 24, 25, 80)] == [
        "1-9", "1-9", "1-9", "10-14", "10-14", "15-24", "15-24", "25+", "25+"]
    data = tmp_path / "v.tsv"
    words, gold = (3, 4, 12, 16, 30), ["1", "0", "0", "0", "0"]
    result = by_length.table({
        name: [(n, said == g) for n, said, g in zip(words, answers, gold)]
        for name, answers in (("a", ["1", "0", "1", "0", "0"]),
                              ("b", ["0", "0", "0", "1", "0"]))})
    assert result["a"] == {"1-9": [2, 2], "10-14": [0, 1], "15-24": [1, 1], "25+": [1, 1],
                           "all": [4, 5]}
    text = by_length.render(result, data)
    assert "| run | 1-9 words (2) | 10-14 words (1) | 15-24 words (1) | 25+ words (1) | all (5) |" \
        in text
    assert "| b | 0.5000 | 1.0000 | 0.0000 | 1.0000 | 0.6000 |" in text
    assert "scored as verify scores it" not in text
    assert "; b: a model without a bundle" in by_length.render(result, data, ("b",))


def test_a_model_without_a_bundle_answers_as_verify_scores_it(tiny_backbone, tmp_path):
    import torch
    from conftest import make_classifier, torch_scores
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    texts = ["good fine great", "awful bad sad movie it was", "a plain one", "so so",
             "river engine seven", "boring dull weak", "lovely superb window", "paper"]
    # (a random head answers one class for everything; this one's rows are the main
    # directions in which the texts' pooled states differ, so its answers differ by text
    # and reading the wrong column or scoring another way would show)
    folder = make_classifier(tiny_backbone, tmp_path / "clf", seed=3)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        pooled = model.bert(**tok(texts, padding=True, return_tensors="pt")).pooler_output
        centre = pooled.mean(0)
        ways = torch.linalg.svd(pooled - centre).Vh[:2]
        rows = torch.stack([ways[0], -ways[0], ways[1]]) * 1000
        model.classifier.weight.copy_(rows)
        model.classifier.bias.copy_(-rows @ centre)
    model.save_pretrained(folder, safe_serialization=True)
    names = ["neg", "neu", "pos"]
    expected = [names[i] for i in torch_scores(folder, texts).argmax(-1)]
    decoy = names[int(torch_scores(folder, ["not this one"]).argmax(-1)[0])]
    assert len(set(expected)) > 1 and any(e != decoy for e in expected)
    words = [len(t.split()) for t in texts]
    data = tmp_path / "v.tsv"
    data.write_text("review\tlabel\tsentence\n"
                    + "".join(f"{t}\tpos\tnot this one\n" for t in texts))
    columns = SimpleNamespace(text_column="review", label_column="label")
    got = by_length.model_right(str(folder), data, 128, columns)
    assert got == [(n, e == "pos") for n, e in zip(words, expected)]
    assert got != [(n, decoy == "pos") for n in words]
    # (a file that writes the classes as their numbers, 0-2, reads them as class ids)
    data.write_text("review\tlabel\tsentence\n" + "".join(
        f"{t}\t{i % 3}\tnot this one\n" for i, t in enumerate(texts)))
    got = by_length.model_right(str(folder), data, 128, columns)
    assert got == [(n, names.index(e) == i % 3) for i, (n, e) in enumerate(zip(words,
                                                                               expected))]


def test_runs_are_scored_and_labels_the_bundle_lacks_are_refused(
        built, monkeypatch, capsys, tmp_path):
    import shutil

    import pytest

    from edgetransfer.errors import DataError

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(built.with_suffix(".tar.gz"), run / "bundle.tar.gz")
    texts = ["good fine great", "a long sentence of many more words than ten in all of it"]
    data = tmp_path / "v.tsv"
    data.write_text("sentence\tlabel\n" + "".join(f"{t}\tpositive\n" for t in texts))
    monkeypatch.setattr(sys, "argv", ["by_length.py", "--data", str(data), str(run)])
    by_length.main()  # (the fixture's head answers "positive")
    out = capsys.readouterr().out
    assert "| run | 1-9 words (1) | 10-14 words (1) | 15-24 words (0) |" in out
    assert "| run | 1.0000 | 1.0000 |  |  | 1.0000 |" in out
    # (the file writes the classes as numbers: class ids, 0 negative, 1 positive)
    data.write_text("sentence\tlabel\n" + "".join(f"{t}\t{i}\n" for i, t in enumerate(texts)))
    by_length.main()
    assert "| run | 0.0000 | 1.0000 |  |  | 0.5000 |" in capsys.readouterr().out
    # (a label that is none of the bundle's classes: the project's one line, naming the row)
    data.write_text("sentence\tlabel\n" + "".join(f"{t}\thappy\n" for t in texts))
    with pytest.raises(DataError, match=r"v.tsv.*label 'happy' is not a known class"):
        by_length.main()
