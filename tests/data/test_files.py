"""data.files.column_names: a file's columns from its header alone, None where it cannot tell."""

from __future__ import annotations

from edgetransfer.data.files import column_names


def test_columns_of_each_format_from_the_first_row(tmp_path):
    (tmp_path / "a.csv").write_text("text,label\nhi,1\n")
    (tmp_path / "a.tsv").write_text("sentence1\tsentence2\tlabel\na\tb\t0\n")
    (tmp_path / "a.jsonl").write_text('\n{"text": "hi", "label": "x"}\n{"broken\n')
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"tokens": [["a"]], "ner_tags": [[0]]}), tmp_path / "a.parquet")
    assert column_names(tmp_path / "a.csv") == ["text", "label"]
    assert column_names(tmp_path / "a.tsv") == ["sentence1", "sentence2", "label"]
    assert column_names(tmp_path / "a.jsonl") == ["text", "label"]  # later lines: not read
    assert column_names(tmp_path / "a.parquet") == ["tokens", "ner_tags"]


def test_unreadable_files_say_nothing_and_leave_it_to_the_full_read(tmp_path):
    (tmp_path / "bad.jsonl").write_text("[1, 2]\n")
    (tmp_path / "latin1.csv").write_bytes("t\xe9xt,label\n".encode("latin-1"))
    (tmp_path / "x.parquet").write_bytes(b"not parquet")
    for name in ("bad.jsonl", "latin1.csv", "x.parquet", "missing.csv", "a.xlsx"):
        assert column_names(tmp_path / name) is None, name
