"""A recipe, an override, a record or a config is untrusted input (issue 25): a YAML bomb, a
deep nest, an oversized file, a value of the wrong type, a megabyte of text is one short line
naming the file and the fix, exit 2, fast, no traceback, nothing written."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

GOOD = "name: x\ndata: {train: a.jsonl}\n"

LAUGHS = GOOD + (  # a "billion laughs": 9**9 values from a few hundred bytes
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(f"{b}: &{b} [{', '.join(['*' + a] * 9)}]\n"
              for a, b in zip("abcdefgh", "bcdefghi"))
    + "finetune: {epochs: *i}\n")


def _one_line(code, out, words, longest=800):
    """Exit 2, one `error:` line holding `words`, short, no traceback."""
    assert code == 2, out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), out[:2000]
    assert words in lines[0], lines[0][:2000]
    assert len(lines[0]) <= longest, f"{len(lines[0])} characters: {lines[0][:300]}"
    assert "Traceback" not in out
    return lines[0]


def _validate(cli, tmp_path, text, *overrides):
    path = tmp_path / "r.yaml"
    path.write_text(text, encoding="utf-8")
    return cli("validate", path, *overrides)


# --- YAML: unbounded expansion


def test_a_billion_laughs_is_refused_fast_in_one_short_line(cli, tmp_path):
    started = time.perf_counter()
    code, out = _validate(cli, tmp_path, LAUGHS)
    took = time.perf_counter() - started
    line = _one_line(code, out, "its aliases (*name) expand the document to more than 100,000 "
                                "values; write the values out instead of nesting aliases",
                     longest=300)
    assert "r.yaml, line " in line and "lol" not in line
    assert took < 2, f"{took:.1f} s"


@pytest.mark.parametrize("text,words", [
    (GOOD + "v: &v 1\nfinetune: {lora_targets: [" + ", ".join(["*v"] * 101) + "]}\n",
     "the document uses more than 100 aliases (*name)"),
    (GOOD + "finetune: &f {epochs: [*f]}\n",
     "an alias (*name) refers to the value it is part of"),
    (GOOD + "finetune: {epochs: " + "[" * 200 + "]" * 200 + "}\n",
     "the document nests deeper than 64 levels; flatten it"),
    (GOOD + "finetune: {epochs: " + "[" * 20000 + "]" * 20000 + "}\n",
     "the document nests deeper than 64 levels"),
    (GOOD + "a: &a " + "[" * 40 + "]" * 40 + "\nb: &b " + "[" * 40 + "*a" + "]" * 40
     + "\nfinetune: {}\n", "nests deeper than 64 levels once its aliases are followed"),
    (GOOD + "finetune: {epochs: " + "9" * 5000 + "}\n", "a number has more than 4300 digits"),
], ids=["aliases", "self_reference", "deep", "very_deep", "deep_by_alias", "huge_int"])
def test_a_recipe_beyond_a_cap_is_one_line(cli, tmp_path, text, words):
    line = _one_line(*_validate(cli, tmp_path, text), words, longest=300)
    assert line.startswith(f"error: {tmp_path / 'r.yaml'}")


def test_a_recipe_over_64_kib_is_refused_before_it_is_parsed(cli, tmp_path):
    started = time.perf_counter()
    code, out = _validate(cli, tmp_path, GOOD + "finetune: {lora_targets: ["
                          + ", ".join(["x"] * 2**20) + "]}\n")
    _one_line(code, out, "r.yaml: is larger than the 64 KiB a recipe may be")
    assert time.perf_counter() - started < 2


def test_anchors_within_the_caps_still_work_and_aliases_are_copies(tmp_path):
    from edgetransfer import recipe as recipes

    path = tmp_path / "r.yaml"
    path.write_text(GOOD + "export:\n  - &c {quantize: none, max_accuracy_drop: 2, name: a}\n"
                    "  - *c\n  - {<<: *c, name: c}\n", encoding="utf-8")
    loaded, raw = recipes.load(path, ["export.1.name=b"])  # (shared, both would be b)
    assert [v.name for v in loaded.export] == ["a", "b", "c"]
    assert {v.quantize for v in loaded.export} == {"none"}


def test_an_override_is_read_within_the_same_caps(cli, tmp_path):
    bomb = "&a [x,x,x,x,x,x,x,x,x,x]"  # 10 -> 10**6 values in five lines of aliases
    value = "[" + ", ".join(["[" + ", ".join(["*a"] * 10) + "]"] * 10) + "]"
    code, out = _validate(cli, tmp_path, GOOD + "finetune: {}\n",
                          f"finetune.lora_targets=[{bomb}, {value}, {value}, {value}]")
    _one_line(code, out, "the document uses more than 100 aliases")
    code, out = _validate(cli, tmp_path, GOOD + "finetune: {}\n",
                          "finetune.epochs=" + "[" * 100 + "]" * 100)
    line = _one_line(code, out, "error: override 'finetune.epochs=[[[[", longest=400)
    assert "(216 characters): the document nests deeper than 64 levels" in line


# --- messages that echo input: capped


@pytest.mark.parametrize("text,overrides,words", [
    (GOOD + "finetune: {epochs: " + "x" * 60_000 + "}\n", (),
     "finetune.epochs: Input should be a valid number, unable to parse string as a number "
     "(got 'xxxx"),
    (GOOD + "finetune: {}\n", ("finetune.epochs=" + "y" * 50_000,), "... (50,000 characters))"),
    (GOOD + "finetune: {}\n", ("finetune.lora_targets=[" + "x," * 40_000 + "]",),
     "characters): the value is longer than a whole recipe may be (64 KiB)"),
    (GOOD + "finetune: {}\n", ("z" * 100_000,), "error: override 'zzzz"),
    (GOOD + "finetune: {}\n", ("finetune." + "k" * 100_000 + ".x=1",),
     "unknown key finetune.kkkk"),
    (GOOD + "finetune: {epochs: " + json.dumps(list(range(5_000))) + "}\n", (),
     "(got [0, 1, 2, 3, 4, 5, ...] (5,000 items))"),
    ("name: x\ndata: {train: a.jsonl}\ntask: " + "t" * 60_000 + "\nfinetune: {}\n", (),
     "... (60,000 characters): no such task"),
    (GOOD + "finetune: {epochs: \"a\\nb\\x1b[2J\\u2028c\"}\n", (), r"(got 'a\nb\x1b[2J\u2028c')"),
    (GOOD + "1: 2\nfinetune: {}\n", (), "r.yaml: 1: a key is 1, not text"),
    ("name: " + "n" * 1000 + "\ndata: {train: a.jsonl}\nfinetune: {}\n", (),
     "name: String should have at most 100 characters"),
], ids=["long_value", "long_override", "huge_override", "long_bad_override", "long_key",
        "long_list", "long_task", "control_characters", "int_key", "long_name"])
def test_messages_show_a_capped_value_on_one_line(cli, tmp_path, text, overrides, words):
    code, out = _validate(cli, tmp_path, text, *overrides)
    _one_line(code, out, words)
    assert "\x1b" not in out


def test_the_cli_prints_at_most_one_capped_line_whatever_the_message(cli, tmp_path,
                                                                       monkeypatch):
    from edgetransfer import recipe as recipes
    from edgetransfer.errors import ConfigError

    def huge(*a, **k):
        raise ConfigError("r.yaml: " + "w" * 1_000_000 + "\nsecond line\x1b[2J")
    monkeypatch.setattr(recipes, "load", huge)
    code, out = _validate(cli, tmp_path, GOOD)
    line = _one_line(code, out, "r.yaml: www", longest=2100)
    assert line.endswith("(998,024 more characters cut)"), line[-80:]


def test_a_megabyte_command_line_value_is_capped_by_click_too(cli):
    code, out = cli("finetune", "--epochs", "e" * 1_000_000)
    assert code == 2 and "Traceback" not in out
    assert len(out) < 3000 and "more characters cut" in out


# --- the JSON records a user may hand us: report, pipeline state, baseline, configs


def _pipeline_folder(root: Path, verify) -> Path:
    (root / "verify").mkdir(parents=True)
    (root / "pipeline.json").write_text(json.dumps({"steps": {}}))
    (root / "verify" / "verify.json").write_text(
        verify if isinstance(verify, str) else json.dumps(verify))
    return root


_MODEL = {"name": "m", "kind": "onnx", "precision": "fp32", "size_bytes": 1000,
          "metrics": {"accuracy": 0.9}, "latency": {"batch1": {"p50_ms": 1, "p90_ms": 2}}}


@pytest.mark.parametrize("verify,words", [
    ("[1, 2]", "verify.json: holds a JSON array, not an object; run the step that writes it "
               "again, or remove the file"),
    ("[" * 100_000 + "]" * 100_000, "verify.json: nests deeper than 64 levels"),
    ('{"a": ' * 500 + "1" + "}" * 500, "verify.json: nests deeper than 64 levels"),
    ("{not json", "verify.json: is not valid JSON (line 1, column 2"),
    (b"\xff\xfe{}", "verify.json: is not UTF-8 text"),
    ({"candidates": []}, "verify.json: the field 'reference' is missing"),
    ({"reference": _MODEL | {"size_bytes": "big"}, "candidates": [], "failures": []},
     "verify.json: the field 'reference.size_bytes' is a string ('big'), not an integer"),
    ({"reference": _MODEL, "candidates": "x" * 10_000, "failures": []},
     "verify.json: the field 'candidates' is a string"),
], ids=["a_list", "deep", "deep_objects", "not_json", "not_utf8", "missing_field",
        "wrong_type", "string_for_list"])
def test_report_refuses_a_damaged_record_in_one_line(cli, tmp_path, verify, words):
    root = tmp_path / "models" / "x"
    if isinstance(verify, bytes):
        _pipeline_folder(root, "{}")
        (root / "verify" / "verify.json").write_bytes(verify)
    else:
        _pipeline_folder(root, verify)
    code, out = cli("report", root)
    _one_line(code, out, words)
    assert not (root / "report.md").exists() and not (root / "report.json").exists()


def test_report_refuses_an_oversized_record(cli, tmp_path):
    root = _pipeline_folder(tmp_path / "r", "{}")
    with (root / "verify" / "verify.json").open("wb") as f:
        f.truncate(16 * 2**20 + 1)  # (sparse: no 16 MiB written)
    code, out = cli("report", root)
    _one_line(code, out, "verify.json: is larger than the 16 MiB a JSON file may be")


def test_a_damaged_pipeline_state_is_checked_afresh(tmp_path, caplog):
    from edgetransfer import pipeline

    for text in ("[1]", '{"steps": [1]}', '{"steps": {"a": "b"}}', "[" * 50_000):
        (tmp_path / "pipeline.json").write_text(text)
        assert pipeline._load_state(tmp_path) == {"steps": {}}
    assert "pipeline.json" in caplog.text and "checked afresh" in caplog.text


@pytest.mark.parametrize("content,words", [
    ("[" * 50_000 + "]" * 50_000, "nests deeper than 64 levels; rewrite it with --update-baseline"),
    ('{"format": "edgetransfer-latency-baseline/1", "created": "x", "machine": {}, '
     '"threads": 1, "provider": "CPU", "workload_p50_ms": Infinity, "models": {}}',
     "field workload_p50_ms: Input should be a finite number"),
    ('{"format": "' + "f" * 100_000 + '"}', "... (100,000 characters) is not"),
], ids=["deep", "infinity", "long_format"])
def test_a_hostile_baseline_is_one_short_line(tmp_path, content, words):
    from edgetransfer.errors import ConfigError
    from edgetransfer.measure import baseline as baselines

    bad = tmp_path / "b.json"
    bad.write_text(content)
    with pytest.raises(ConfigError) as e:
        baselines.read(bad)
    assert f"--baseline {bad}" in str(e.value) and words in str(e.value)
    assert len(str(e.value)) < 600 and "\n" not in str(e.value)


def _checkpoint(folder: Path, config) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(config if isinstance(config, str)
                                        else json.dumps(config))
    return folder


BERT = {"model_type": "bert", "architectures": ["BertForSequenceClassification"],
        "id2label": {"0": "neg", "1": "pos"}}


@pytest.mark.parametrize("config,words", [
    ('{"a": ' * 5000 + "1" + "}" * 5000, "config.json: nests deeper than 64 levels; the "
                                          "checkpoint is damaged"),
    ('{"a": ' * 100 + "1" + "}" * 100, "config.json: nests deeper than 64 levels"),
    (BERT | {"model_type": ["bert"]}, "config.json: model_type is ['bert'], not a name"),
    (BERT | {"vocab_size": 1e300}, "config.json: vocab_size is 1e+300, not a whole number"),
    (BERT | {"hidden_size": "768"}, "config.json: hidden_size is '768', not a whole number"),
    (BERT | {"id2label": {str(i): "x" for i in range(1, 5000)}},
     "config.json: id2label's ids are [1, 2, 3, 4, 5, 6, ...] (4,999 items)"),
], ids=["very_deep", "deep", "model_type_list", "huge_size", "string_size", "many_ids"])
def test_a_hostile_config_json_is_one_line(cli, tmp_path, config, words):
    model = _checkpoint(tmp_path / "ckpt", config)
    (tmp_path / "train.jsonl").write_text('{"text": "a", "label": "pos"}\n' * 4)
    out = tmp_path / "out"
    code, text = cli("finetune", "--model", model, "--train", tmp_path / "train.jsonl",
                     "--out", out)
    _one_line(code, text, words)
    assert not out.exists()


@pytest.mark.parametrize("header", [b"[1, 2]", b"[" * 5000 + b"]" * 5000, b'{"w": 5}',
                                    b"\xff" * 10])
def test_a_safetensors_header_of_another_shape_is_damaged_not_a_crash(tmp_path, header):
    from edgetransfer.errors import ModelError
    from edgetransfer.modeling import backbones

    f = tmp_path / "model.safetensors"
    f.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 64)
    with pytest.raises(ModelError, match="has a damaged header"):
        backbones.check_safetensors(f)
    f.write_bytes((200_000_000).to_bytes(8, "little") + b"{}")
    with pytest.raises(ModelError, match="more than the 100,000,000 safetensors allows"):
        backbones.check_safetensors(f)


@pytest.mark.parametrize("record,words", [
    ({"quantization": [1]}, "export.json: the field 'quantization' is an array ([1]), not an "
                            "object; export the model again"),
    ({"quantization": {"mode": 8}}, "export.json: the field 'quantization.mode' is a number"),
    ({"source": {"path": "/etc"}}, "export.json: the field 'source' is an object"),
    ("[]", "export.json: holds a JSON array, not an object"),
])
def test_an_export_record_of_another_shape_is_refused_before_loading(tmp_path, record, words):
    from edgetransfer.errors import ModelError
    from edgetransfer.measure import runners

    folder = _checkpoint(tmp_path / "onnx", BERT)
    (folder / "model.onnx").write_bytes(b"not read: the record is checked first")
    (folder / "export.json").write_text(record if isinstance(record, str)
                                        else json.dumps(record))
    with pytest.raises(ModelError) as e:
        runners.load(str(folder), threads=1, provider="CPUExecutionProvider",
                     task="text-classification")
    assert words in str(e.value)


def test_a_task_record_of_another_shape_is_no_task(tmp_path):
    from edgetransfer import tasks

    for text in ("[1]", '{"task": ["x"]}', "[" * 50_000, '{"task": {"a": 1}}'):
        (tmp_path / "artifact.json").write_text(text)
        assert tasks.recorded(tmp_path) is None


def test_a_jsonl_row_nested_past_the_cap_is_named(tmp_path):
    from edgetransfer.data import files
    from edgetransfer.errors import DataError

    f = tmp_path / "train.jsonl"
    rows = ['{"text": "a", "label": "pos"}'] * 5
    f.write_text("\n".join(rows + ['{"text": "a", "label": "pos", "meta": '
                                   + "[" * 70 + "]" * 70 + "}"]) + "\n")
    with pytest.raises(DataError, match=r"train.jsonl: line 6 is nested too deeply to be a row "
                                        r"\(more than 64 levels\)"):
        files.check_file(f)
    f.write_text("[" * 50_000 + "\n")
    assert files.column_names(f) is None  # (the full read names it)


@pytest.mark.parametrize("budget,words", [
    ("latency=1e999ms", "'1e999' is not a number"), ("kept=nan", "'nan' is not a number"),
    ("latency=1e307s", "must be a finite number above 0"),
    ("speed=" + "s" * 100_000, "... (100,006 characters)"),
])
def test_a_budget_of_no_finite_number_or_of_a_megabyte_is_one_short_line(budget, words):
    from edgetransfer.errors import ConfigError
    from edgetransfer.search import budget as budgets

    with pytest.raises(ConfigError) as e:
        budgets.parse(budget)
    assert words in str(e.value) and len(str(e.value)) < 700


def test_a_pipe_in_place_of_a_record_is_refused_not_waited_on(tmp_path):
    import os

    from edgetransfer.errors import ModelError
    from edgetransfer.measure import runners

    folder = tmp_path / "onnx"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"x")
    os.mkfifo(folder / "config.json")  # (reading it would block until a writer came)
    with pytest.raises(ModelError, match="config.json: is not a regular file"):
        runners.load(str(folder), threads=1, provider="CPUExecutionProvider")
