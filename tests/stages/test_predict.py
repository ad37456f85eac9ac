"""The predict command: a bundle (archive or folder) on texts and files; bad input."""

from __future__ import annotations

from conftest import predictions, write_jsonl


def test_predict_bad_inputs(built, cli, tmp_path):
    code, out = cli("predict", "--bundle", built)
    assert code == 2 and "give texts to classify, or --input FILE" in out
    code, out = cli("predict", "--bundle", tmp_path / "nothing.tar.gz", "hi")
    assert code == 2 and "no such file" in out
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"body": "hi"}])
    code, out = cli("predict", "--bundle", built, "--input", bad)
    assert code == 2 and "no text column" in out and "--text-column" in out
    code, out = cli("predict", "--bundle", built, "--input", bad, "--text-column", "body")
    assert code == 0 and predictions(out)[0]["text"] == "hi"
    not_gz = tmp_path / "not.tar.gz"
    not_gz.write_bytes(b"plain bytes")
    code, out = cli("predict", "--bundle", not_gz, "hi")
    assert code == 2 and "not a complete .tar.gz" in out


def test_predict_takes_pairs_from_named_columns(built, cli, tmp_path):
    rows = [{"q": "is it good", "a": "a great film", "label": "x"},
            {"q": "ok", "a": "awful", "label": "y"}]
    f = write_jsonl(tmp_path / "pairs.jsonl", rows)
    code, out = cli("predict", "--bundle", built.parent / "bundle.tar.gz", "--input", f,
                    "--text-column", "q", "--text-pair-column", "a", "--top-k", "1")
    assert code == 0, out
    got = predictions(out)
    assert [(r["text"], r["text_pair"]) for r in got] == [("is it good", "a great film"),
                                                         ("ok", "awful")]
    assert all(len(r["scores"]) == 1 and r["label"] in r["scores"] for r in got)
    missing = write_jsonl(tmp_path / "half.jsonl", [{"q": "only a question"}])
    code, out = cli("predict", "--bundle", built, "--input", missing, "--text-column", "q",
                    "--text-pair-column", "a")
    assert code == 2 and "line 1: 'a' is missing or empty" in out
