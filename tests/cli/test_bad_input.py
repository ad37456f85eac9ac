"""Bad input: one line naming the file/field/row and the fix, exit 2, no traceback, nothing
written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import make_rows, tiny_args, write_jsonl


def _good(tmp_path: Path) -> Path:
    d = tmp_path / "d"
    write_jsonl(d / "train.jsonl", make_rows(30, seed=1))
    write_jsonl(d / "validation.jsonl", make_rows(9, seed=2))
    return d


def _case_empty_file(d):
    (d / "train.jsonl").write_bytes(b"")
    return "train.jsonl: the file is empty"


def _case_header_only_csv(d):
    (d / "train.csv").write_text("text,label\n")
    return "train.csv: has a header but no rows", ["--train", d / "train.csv"]


def _case_missing_column(d):
    write_jsonl(d / "train.jsonl", [{"sentence_text": "hi", "label": "a"}] * 3)
    return "no text column found (looked for ['text', 'sentence'"


def _case_named_column_absent(d):
    return "no label column 'intent_id'; the columns are ['text', 'label']", \
        ["--label-column", "intent_id"]


def _case_validation_lacks_column(d):
    write_jsonl(d / "validation.jsonl", [{"text": "x"}] * 3)
    return "validation.jsonl: no column 'label' (train has it)"


def _case_unseen_string_label(d):
    write_jsonl(d / "validation.jsonl", make_rows(3, seed=2) + [{"text": "hm", "label": "meh"}])
    return "validation.jsonl: line 4: label 'meh' is not a known class"


def _case_not_utf8(d):
    raw = (d / "train.jsonl").read_bytes().splitlines(keepends=True)
    raw[2] = (raw[2].replace(b"the", b"th\xe9", 1) if b"the" in raw[2]
              else b'{"text": "caf\xe9", "label": "pos"}\n')
    (d / "train.jsonl").write_bytes(b"".join(raw))
    return "train.jsonl: line 3, byte offset"


def _case_truncated_jsonl(d):
    with (d / "train.jsonl").open("a") as f:
        f.write('{"text": "cut off he\n')
    return "train.jsonl: line 31 is not valid JSON"


def _case_ragged_csv(d):
    (d / "train.csv").write_text("text,label\nfine day,pos\nbad,day,neg\n")
    return "train.csv: line 3 has 3 fields, the header has 2", ["--train", d / "train.csv"]


def _case_wrong_delimiter(d):
    (d / "train.tsv").write_text("text,label\nfine day,pos\n")
    return "looks comma-separated: give it the suffix .csv", ["--train", d / "train.tsv"]


def _case_empty_text(d):
    write_jsonl(d / "train.jsonl", make_rows(5) + [{"text": "  ", "label": "pos"}])
    return "train.jsonl: line 6: column 'text' is empty; 1 such row(s)"


def _case_null_text(d):
    write_jsonl(d / "train.jsonl", make_rows(5) + [{"text": None, "label": "pos"}])
    return "train.jsonl: line 6: column 'text' is None (not text)"


def _case_mixed_labels(d):
    write_jsonl(d / "train.jsonl", make_rows(4) + [{"text": "x y", "label": 3}])
    return "labels mix numbers and names"


def _case_one_class(d):
    write_jsonl(d / "train.jsonl", make_rows(6, classes=("pos",)))
    return "only one class ('pos'); a classifier needs at least 2"


def _case_unknown_suffix(d):
    (d / "train.xlsx").write_text("hello\n")
    return "train.xlsx: unknown file type '.xlsx'", ["--train", d / "train.xlsx"]


def _case_missing_file(d):
    return "nope.jsonl: no such file", ["--train", d / "nope.jsonl"]


def _case_refuse_long(d):
    write_jsonl(d / "train.jsonl", make_rows(6) + [{"text": "word " * 200, "label": "pos"}])
    return "1 text(s) are longer than 32 tokens", ["--max-length", "32", "--refuse-long"]


def _case_bad_setting(d):
    return "--lora-dropout 1.5: Input should be less than 1", ["--lora-dropout", "1.5"]


def _case_freeze_too_many(d):
    return "--freeze-layers 5: the model has only 2 layers", ["--freeze-layers", "5"]


def _case_lora_targets(d):
    return ("--lora-targets q_proj: no such Linear module; the model's are "
            "intermediate.dense, key, output.dense, query, value"), \
        ["--method", "lora", "--lora-targets", "q_proj"]


def _case_max_length_beyond_positions(d):
    # the tiny model has 128 positions
    return "takes at most 128 tokens; lower it", ["--max-length", "512"]


def _case_blank_lines_only(d):
    (d / "train.jsonl").write_text("\n  \n\n")
    return "train.jsonl: the file is empty"


def _case_zero_row_parquet(d):
    import pandas as pd

    pd.DataFrame({"text": pd.Series([], dtype=str),
                  "label": pd.Series([], dtype=str)}).to_parquet(d / "train.parquet")
    return "train.parquet: holds no rows", ["--train", d / "train.parquet"]


def _case_nan_label(d):
    with (d / "train.jsonl").open("a") as f:
        f.write('{"text": "so so", "label": NaN}\n')
    return "train.jsonl: line 31: label None is missing or not a class; fill it in"


def _case_nan_text(d):
    with (d / "validation.jsonl").open("a") as f:
        f.write('{"text": NaN, "label": "pos"}\n')
    return "validation.jsonl: line 10: column 'text' is None (not text)"


def _case_nan_text_parquet(d):
    import numpy as np
    import pandas as pd

    rows = make_rows(6)
    rows[4]["text"] = np.nan
    pd.DataFrame(rows).to_parquet(d / "train.parquet")
    return "train.parquet: row 4: column 'text' is None (not text)", \
        ["--train", d / "train.parquet"]


def _case_label_id_beyond_train(d):
    rows = [{"text": r["text"], "label": i % 3} for i, r in enumerate(make_rows(12))]
    write_jsonl(d / "train.jsonl", rows)
    write_jsonl(d / "validation.jsonl", rows[:3] + [{"text": "x y", "label": 7}])
    return "validation.jsonl: line 4: label 7 does not fit the model; train only has ids 0..2"


def _case_negative_label(d):
    write_jsonl(d / "train.jsonl", [{"text": r["text"], "label": i % 2}
                                    for i, r in enumerate(make_rows(6))] +
                [{"text": "x", "label": -1}])
    return "train.jsonl: line 7: label -1 is negative; class ids start at 0"


def _case_csv_missing_label_column(d):
    (d / "train.csv").write_text("text,category\nfine day,pos\nbad day,neg\n")
    return "train.csv: no label column found (looked for ['label', 'labels', 'intent', " \
        "'class'])", ["--train", d / "train.csv"]


def _case_not_utf8_csv(d):
    (d / "train.csv").write_bytes(b"text,label\nfine day,pos\ncaf\xe9 au lait,neg\n")
    return "train.csv: line 3, byte offset 27 (column 4): byte 0xe9 is not UTF-8", \
        ["--train", d / "train.csv"]


def _case_deeply_nested_jsonl(d):
    with (d / "train.jsonl").open("a") as f:
        f.write('{"text": ' + "[" * 5000 + "]" * 5000 + ', "label": "pos"}\n')
    return "train.jsonl: line 31 is nested too deeply to be a row"


def _case_duplicate_key_jsonl(d):
    with (d / "train.jsonl").open("a") as f:
        f.write('{"text": "a", "text": "b", "label": "pos"}\n')
    return "train.jsonl: line 31 names the key 'text' twice; keep one"


def _case_lone_surrogate_jsonl(d):
    with (d / "train.jsonl").open("a") as f:
        f.write('{"text": "broken \\ud800 text", "label": "pos"}\n')
    return "train.jsonl: line 31: 'text' holds an unpaired UTF-16 surrogate escape"


def _case_duplicate_csv_header(d):
    (d / "train.csv").write_text("text,text,label\na,b,pos\nc,d,neg\n")
    return "train.csv: the header names the column 'text' twice", ["--train", d / "train.csv"]


def _case_text_column_is_the_label(d):
    return "the column 'label' would be both text and label", ["--text-column", "label"]


CASES = [v for k, v in sorted(globals().items()) if k.startswith("_case_")]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__[6:] for c in CASES])
def test_bad_input_gives_one_line_and_exit_2(case, cli, tiny_backbone, tmp_path):
    d = _good(tmp_path)
    got = case(d)
    expected, extra = (got, []) if isinstance(got, str) else got
    before = {p: p.read_bytes() for p in d.iterdir()}
    out = tmp_path / "out"
    args = tiny_args(tiny_backbone, d, out)
    if "--train" in extra:  # replace the train file
        i = extra.index("--train")
        args[args.index("--train") + 1] = extra[i + 1]
        extra = extra[:i] + extra[i + 2:]
    code, err = cli(*args, *extra)
    assert code == 2, err
    assert expected in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err
    assert not out.exists() and not (tmp_path / ".out.partial").exists()
    assert {p: p.read_bytes() for p in d.iterdir()} == before, "inputs must not be modified"


def test_long_texts_are_truncated_and_counted(cli, tiny_backbone, tmp_path, caplog):
    d = _good(tmp_path)
    write_jsonl(d / "train.jsonl", make_rows(30, seed=1) + [{"text": "good " * 100,
                                                             "label": "pos"}] * 2)
    out = tmp_path / "out"
    code, err = cli(*tiny_args(tiny_backbone, d, out, "--max-length", "32")[1:])  # not -q
    assert code == 0, err
    assert "train: 2 of 32 texts longer than 32 tokens were truncated (longest 102)" in err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["truncated"]["train"] == 2 and metrics["longest_tokens"]["train"] == 102


def test_labels_that_do_not_fit_the_checkpoint_head(cli, tiny_classifier, tmp_path):
    d = tmp_path / "d"
    rows = [{"text": r["text"], "label": i % 3} for i, r in enumerate(make_rows(12))]
    write_jsonl(d / "train.jsonl", rows)
    write_jsonl(d / "validation.jsonl", rows[:6])
    code, err = cli(*tiny_args(tiny_classifier, d, tmp_path / "out"))
    assert code == 2
    assert ("train.jsonl: line 3: label 2 does not fit the model; the checkpoint's head has 2 "
            "classes; pass --new-head to replace it") in err
    code, err = cli(*tiny_args(tiny_classifier, d, tmp_path / "out", "--new-head"))
    assert code == 0, err


def test_string_labels_map_onto_the_checkpoint_classes(cli, tiny_classifier, tmp_path):
    d = tmp_path / "d"
    rows = [{"text": r["text"], "label": ["negative", "positive"][i % 2]}
            for i, r in enumerate(make_rows(12))]
    write_jsonl(d / "train.jsonl", rows)
    write_jsonl(d / "validation.jsonl", rows[:4] + [{"text": "so so", "label": "neutral"}])
    code, err = cli(*tiny_args(tiny_classifier, d, tmp_path / "out"))
    assert code == 2
    assert "validation.jsonl: line 5: label 'neutral' is not a known class; the checkpoint's " \
        "classes are ['negative', 'positive']" in err


@pytest.mark.parametrize("kind", ["pickle", "lfs", "remote_code", "empty_weights"])
def test_unsafe_or_broken_checkpoints_are_refused(kind, cli, tiny_backbone, copy_of, tmp_path):
    model = copy_of(tiny_backbone)
    weights = model / "model.safetensors"
    if kind == "pickle":
        weights.rename(model / "pytorch_model.bin")
        expected = "has only pickle weights (pytorch_model.bin)"
    elif kind == "lfs":
        weights.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:ab\n")
        expected = "is a git-LFS pointer, not weights; run `git lfs pull`"
    elif kind == "empty_weights":
        weights.write_bytes(b"")
        expected = "is empty or truncated (0 bytes)"
    else:
        config = json.loads((model / "config.json").read_text())
        config["auto_map"] = {"AutoModel": "evil.Model"}
        (model / "config.json").write_text(json.dumps(config))
        expected = "asks to run its own code (auto_map in config.json); refused"
    d = _good(tmp_path)
    code, err = cli(*tiny_args(model, d, tmp_path / "out"))
    assert code == 2 and expected in err and "Traceback" not in err


def test_debug_shows_the_traceback(cli, tiny_backbone, tmp_path):
    d = _good(tmp_path)
    args = tiny_args(tiny_backbone, d, tmp_path / "out", "--lora-dropout", "2")
    from edgetransfer.errors import ConfigError

    with pytest.raises(ConfigError):
        cli("--debug", *args)


def test_carved_validation_is_stratified_and_seeded(tmp_path):
    from edgetransfer.tasks.text_classification import load as load_task

    write_jsonl(tmp_path / "train.jsonl", make_rows(90, seed=1))
    a = load_task(str(tmp_path / "train.jsonl"), validation_fraction=0.2, seed=7)
    b = load_task(str(tmp_path / "train.jsonl"), validation_fraction=0.2, seed=7)
    assert len(a.splits["validation"]) == 18 and len(a.splits["train"]) == 72
    assert sorted(a.splits["validation"]["label"]) == [0] * 6 + [1] * 6 + [2] * 6
    assert a.splits["validation"]["text"] == b.splits["validation"]["text"]


def test_csv_tsv_parquet_read_alike(tmp_path):
    import pandas as pd

    from edgetransfer.tasks.text_classification import load as load_task

    rows = make_rows(12)
    frame = pd.DataFrame(rows)
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_csv(tmp_path / "t.tsv", index=False, sep="\t")
    frame.to_parquet(tmp_path / "t.parquet")
    write_jsonl(tmp_path / "t.jsonl", rows)
    tasks = {s: load_task(str(tmp_path / f"t.{s}"), validation_fraction=0.25, seed=3)
             for s in ("csv", "tsv", "parquet", "jsonl")}
    seen = {(tuple(t.label_names), tuple(t.splits["train"]["text"]),
             tuple(t.splits["train"]["label"]), tuple(t.splits["validation"]["text"]))
            for t in tasks.values()}
    assert len(seen) == 1
    assert len(tasks["csv"].splits["train"]) == 9


def test_row_numbers_count_blank_lines_and_multiline_fields(tmp_path):
    from edgetransfer.errors import DataError
    from edgetransfer.tasks.text_classification import load as load_task

    (tmp_path / "t.jsonl").write_text('{"text": "a b", "label": "x"}\n\n'
                                      '{"text": "c", "label": "y"}\n{"text": "", "label": "x"}\n')
    with pytest.raises(DataError, match=r"t.jsonl: line 4: column 'text' is empty"):
        load_task(str(tmp_path / "t.jsonl"))
    (tmp_path / "t.csv").write_text('text,label\n"two\nlines",x\n\nok,y\n,x\n')
    with pytest.raises(DataError, match=r"t.csv: line 6: column 'text' is empty"):
        load_task(str(tmp_path / "t.csv"))


@pytest.mark.parametrize("columns,expected", [
    (("question", "sentence"), ("question", "sentence")),  # QNLI
    (("question1", "question2"), ("question1", "question2")),  # QQP
    (("sentence1", "sentence2"), ("sentence1", "sentence2")),  # MRPC, RTE
    (("sentence",), ("sentence", None)),  # SST-2
])
def test_pair_columns_are_found(tmp_path, columns, expected):
    from edgetransfer.tasks.text_classification import load as load_task

    rows = [{c: f"{c} {i}" for c in columns} | {"label": i % 2} for i in range(8)]
    write_jsonl(tmp_path / "t.jsonl", rows)
    task = load_task(str(tmp_path / "t.jsonl"), validation_fraction=0.25)
    assert (task.columns["text"], task.columns["text_pair"]) == expected


def test_jsonl_with_a_line_separator_inside_a_text(tmp_path):
    from edgetransfer.tasks.text_classification import load as load_task

    (tmp_path / "t.jsonl").write_text(
        '{"text": "one\u2028two", "label": "a"}\n{"text": "three", "label": "b"}\n'
        '{"text": "four", "label": "a"}\n{"text": "five", "label": "b"}\n', encoding="utf-8")
    (tmp_path / "raw.jsonl").write_bytes((tmp_path / "t.jsonl").read_text(
        encoding="utf-8").encode("utf-8").replace(b"\\u2028", "\u2028".encode("utf-8")))
    task = load_task(str(tmp_path / "raw.jsonl"), validation_fraction=0.25)
    assert sum(len(s) for s in task.splits.values()) == 4
