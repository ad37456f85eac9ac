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
