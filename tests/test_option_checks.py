"""Every option is checked before the expensive work (reading data, loading a model,
training, timing), and a refused one is named as the user spelt it: the flag on the command
line, the key in a recipe. The expensive steps are replaced by tripwires here, so a check
that came too late fails the test instead of costing minutes."""

from __future__ import annotations

import os

import pytest
import yaml
from conftest import make_classifier


class Tripwire(Exception):
    """Raised by a stand-in for an expensive step: the check came too late."""


def trip(monkeypatch, *targets):
    """Replace each `module.function` with one that raises Tripwire, also where another
    module imported it by name (the task modules bind the data readers); returns the
    calls."""
    import importlib
    import sys

    from edgetransfer import tasks

    tasks.get("text-classification")  # (every task module imported now, not under a tripwire)
    calls = []

    def make(name):
        def tripped(*a, **k):
            calls.append(name)
            raise Tripwire(name)
        return tripped

    for target in targets:
        module, name = target.rsplit(".", 1)
        original = getattr(importlib.import_module(module), name)
        tripped = make(target)
        for m in list(sys.modules.values()):
            if getattr(m, "__name__", "").startswith("edgetransfer") and \
                    getattr(m, name, None) is original:
                monkeypatch.setattr(m, name, tripped)
    return calls


def refused(code, text, *words, exit_code=2):
    assert code == exit_code, text
    assert "Traceback" not in text and "Tripwire" not in text, text
    errors = [line for line in text.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, text
    for w in words:
        assert w in errors[0], (w, errors[0])
    return errors[0]


@pytest.fixture(scope="module")
def teacher(tiny_backbone, tmp_path_factory):
    """A 2-layer classifier over the data's classes (neg, neu, pos)."""
    return make_classifier(tiny_backbone, tmp_path_factory.mktemp("teacher") / "m", seed=0)


@pytest.fixture()
def no_work(monkeypatch):
    """Loading a model or reading a data file is a tripwire."""
    return trip(monkeypatch, "edgetransfer.modeling.backbones.load_trained",
                "edgetransfer.modeling.backbones.load_model",
                "edgetransfer.data.splits.read_split")


# --- export --prune-vocab: an empty list, the eval data under another name

@pytest.mark.parametrize("corpus", [",", " , ", ",,"])
def test_an_empty_corpus_list_is_refused_before_any_work(cli, teacher, data_dir, tmp_path,
                                                         monkeypatch, corpus):
    calls = trip(monkeypatch, "edgetransfer.modeling.backbones.resolve")
    code, text = cli("export", "--model", teacher, "--out", tmp_path / "o", "--quantize",
                     "none", "--prune-vocab", corpus, "--eval-data", data_dir / "test.jsonl")
    refused(code, text, "--prune-vocab", "names no file")
    assert calls == [] and not (tmp_path / "o").exists()


@pytest.mark.parametrize("spelling", ["dot", "dotdot", "symlink", "hardlink"])
def test_the_eval_data_in_the_corpus_is_found_under_any_spelling(cli, teacher, data_dir,
                                                                 tmp_path, monkeypatch,
                                                                 spelling):
    evals = data_dir / "test.jsonl"
    corpus = {"dot": f"{data_dir}/./test.jsonl",
              "dotdot": f"{data_dir}/../{data_dir.name}/test.jsonl",
              "symlink": tmp_path / "link.jsonl", "hardlink": tmp_path / "hard.jsonl"}[spelling]
    if spelling == "symlink":
        corpus.symlink_to(evals)
    if spelling == "hardlink":
        os.link(evals, corpus)
    calls = trip(monkeypatch, "edgetransfer.modeling.backbones.resolve")
    code, text = cli("export", "--model", teacher, "--out", tmp_path / "o", "--prune-vocab",
                     f"{data_dir / 'train.jsonl'},{corpus}", "--eval-data", evals)
    refused(code, text, "is also --eval-data", "never saw")
    assert calls == [] and not (tmp_path / "o").exists()


def test_a_corpus_file_given_twice_is_refused(cli, teacher, data_dir, tmp_path):
    train = data_dir / "train.jsonl"
    code, text = cli("export", "--model", teacher, "--out", tmp_path / "o", "--prune-vocab",
                     f"{train},{data_dir}/./train.jsonl", "--eval-data",
                     data_dir / "test.jsonl")
    refused(code, text, "--prune-vocab", "are the same file")


def test_export_refuses_a_max_length_beyond_the_models_positions(cli, teacher, data_dir,
                                                                  tmp_path, no_work):
    code, text = cli("export", "--model", teacher, "--out", tmp_path / "o", "--max-length",
                     "100000", "--eval-data", data_dir / "test.jsonl")
    refused(code, text, "--max-length 100000", "takes at most 128 tokens")
    assert no_work == [] and not (tmp_path / "o").exists()


# --- search: every option before the teacher is trained or timed

def _recipe(tmp_path, backbone, data):
    doc = {"name": "s", "model": str(backbone), "output": str(tmp_path / "models" / "s"),
           "data": {"train": str(data / "train.jsonl"),
                    "validation": str(data / "validation.jsonl"),
                    "test": str(data / "test.jsonl")},
           "finetune": {"epochs": 1, "batch_size": 8}, "distill": {"epochs": 1}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


@pytest.fixture()
def no_search_work(monkeypatch):
    """Training a step, timing the teacher, cutting a student: tripwires."""
    return trip(monkeypatch, "edgetransfer.pipeline.execute",
                "edgetransfer.stages.search._teacher_figures", "edgetransfer.stages.search._cut")


@pytest.mark.parametrize("args, words", [
    (["--depths", "9"], ["--depths 9: the teacher has 2 layers; give 1"]),
    (["--depths", "0"], ["--depths 0: the teacher has 2 layers; give 1"]),
    (["--depths", "1,2"], ["--depths 1,2: the teacher has 2 layers"]),
    (["--depths", "1,a"], ["--depths 1,a:", "valid integer"]),
    (["--depths", "1", "--formats", "int9"], ["--formats int9: int9 is not one"]),
    (["--depths", "1", "--prune", "maybe"], ["--prune maybe:"]),
    (["--depths", "1", "--threads", "0"], ["--threads 0:"]),
    (["--depths", "1", "--threads", "100000"], ["--threads 100000:", "less than or equal"]),
    (["--depths", "1", "--device", "-oProxyCommand=x"], ["--device '-oProxyCommand=x'"]),
    (["--depths", "1", "--remote-python", "/usr/bin/python3"],
     ["--remote-python /usr/bin/python3: goes with --device"]),
    (["--depths", "1", "--budget", "speed=1ms"], ["--budget speed=1ms: cannot read"]),
])
def test_search_refuses_a_bad_option_before_the_teacher_is_trained_or_timed(
        cli, tiny_backbone, data_dir, tmp_path, no_search_work, args, words):
    recipe = _recipe(tmp_path, tiny_backbone, data_dir)
    budget = [] if "--budget" in args else ["--budget", "kept=0.5"]
    code, text = cli("search", recipe, *budget, *args)
    refused(code, text, *words)
    assert no_search_work == []
    assert not (tmp_path / "models").exists()  # nothing written


def test_search_out_that_is_a_file_is_refused(cli, tiny_backbone, data_dir, tmp_path,
                                               no_search_work):
    recipe = _recipe(tmp_path, tiny_backbone, data_dir)
    (tmp_path / "taken").write_text("x")
    code, text = cli("search", recipe, "--budget", "kept=0.5", "--depths", "1", "--out",
                     tmp_path / "taken")
    refused(code, text, "--out", "is a file")
    assert no_search_work == [] and (tmp_path / "taken").read_text() == "x"


def test_a_format_given_twice_is_one_candidate():
    from edgetransfer.search import space

    names = [v.name for v in space.variants([1, 1], ["int4", "int4"], [False, False])]
    assert names == ["1L-int4"]


# --- finetune and distill: ranges, and the model's size, before data or model

@pytest.mark.parametrize("extra, words", [
    (["--seed", "-1"], ["--seed -1:"]),
    (["--seed", str(2**32)], [f"--seed {2**32}:"]),
    (["--epochs", "1e9"], ["--epochs 1000000000.0:", "less than or equal to 1000"]),
    (["--epochs", "0"], ["--epochs 0.0:"]),
    (["--batch-size", str(10**9)], [f"--batch-size {10**9}:"]),
    (["--batch-size", "0"], ["--batch-size 0:"]),
    (["--max-length", "100000"], ["--max-length 100000:", "takes at most 128"]),
    (["--image-size", "100000"], ["--image-size 100000:"]),
    (["--method", "lora", "--lora-r", "100000"], ["--lora-r 100000: more than the model's "
                                                  "width (32)"]),
    (["--freeze-layers", "99"], ["--freeze-layers 99: the model has only 2 layers"]),
])
def test_finetune_options_are_checked_before_data_or_model(cli, tiny_backbone, data_dir,
                                                           tmp_path, no_work, extra, words):
    out = tmp_path / "o"
    code, text = cli("finetune", "--model", tiny_backbone, "--train", data_dir / "train.jsonl",
                     "--out", out, *extra)
    refused(code, text, *words)
    assert no_work == [] and not out.exists()


@pytest.mark.parametrize("extra, words", [
    (["--student-layers", "9"], ["--student-layers 9: choose between 1 and 2"]),
    (["--keep-layers", "0,9"], ["--keep-layers 0,9: the teacher has layers 0..1"]),
    (["--keep-layers", "1,0"], ["--keep-layers 1,0: give distinct layers"]),
    (["--keep-layers", "0,x"], ["--keep-layers 0,x: give layer numbers"]),  # (no "Value error")
    (["--student-layers", "1", "--keep-layers", "0"], ["both choose the student"]),
    (["--teacher-batch-size", "0"], ["--teacher-batch-size 0:"]),
    (["--teacher-batch-size", str(10**9)], [f"--teacher-batch-size {10**9}:"]),
])
def test_distill_options_are_checked_before_data_or_model(cli, teacher, data_dir, tmp_path,
                                                          no_work, extra, words):
    out = tmp_path / "o"
    code, text = cli("distill", "--teacher", teacher, "--train", data_dir / "train.jsonl",
                     "--out", out, *extra)
    line = refused(code, text, *words)
    assert "Value error" not in line
    assert no_work == [] and not out.exists()


def test_distill_refuses_the_teacher_as_its_own_student(cli, teacher, data_dir, tmp_path,
                                                       no_work):
    code, text = cli("distill", "--teacher", teacher, "--student", f"{teacher}/.",
                     "--train", data_dir / "train.jsonl", "--out", tmp_path / "o")
    refused(code, text, "--student", "is the --teacher itself")
    assert no_work == []


@pytest.mark.parametrize("where", ["out", "partial", "teacher", "file"])
def test_distill_refuses_a_teacher_cache_it_would_lose_or_that_writes_an_input(
        cli, teacher, data_dir, tmp_path, no_work, where):
    out = tmp_path / "o"
    cache = {"out": out / "cache", "partial": tmp_path / ".o.partial" / "cache",
             "teacher": teacher / "cache", "file": tmp_path / "cache-file"}[where]
    if where == "file":
        cache.write_text("x")
    code, text = cli("distill", "--teacher", teacher, "--train", data_dir / "train.jsonl",
                     "--out", out, "--teacher-cache", cache)
    refused(code, text, f"--teacher-cache {cache}")
    assert no_work == [] and not out.exists() and not (teacher / "cache").exists()


def test_a_file_given_as_two_kinds_of_data_is_warned_about(data_dir, tmp_path, caplog):
    from edgetransfer.data import splits

    link = tmp_path / "link.jsonl"
    link.symlink_to(data_dir / "train.jsonl")
    said = splits.warn_shared({"train": str(data_dir / "train.jsonl"), "validation": str(link),
                               "test": f"{data_dir}/./test.jsonl",
                               "unlabeled": str(data_dir / "test.jsonl")})
    assert said == [f"--train {data_dir / 'train.jsonl'} is also --validation: the best "
                    f"checkpoint is chosen on rows it trains on",
                    f"--unlabeled {data_dir / 'test.jsonl'} is also --test: its rows are "
                    f"left out, the student is not taught the teacher's answers on the rows "
                    f"it is tested on"]
    # a hub id names a dataset, not a split: never compared
    assert splits.warn_shared({"train": "glue:sst2", "validation": "glue:sst2"}) == []


# --- verify: the files it writes, the provider, the numbers, before any model is loaded

@pytest.fixture()
def no_loading(monkeypatch):
    return trip(monkeypatch, "edgetransfer.measure.runners.load")


def _verify(cli, teacher, data, *extra):
    return cli("verify", "--reference", teacher, "--candidate", f"same={teacher}", "--data",
               data, *extra)


@pytest.mark.parametrize("case", ["out-is-data", "junit-is-out", "summary-is-data",
                                  "update-baseline-is-out", "out-is-a-model-file",
                                  "out-is-baseline"])
def test_verify_refuses_to_write_over_an_input_or_its_own_other_output(
        cli, teacher, data_dir, tmp_path, monkeypatch, no_loading, case):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "test.jsonl"
    data.write_bytes((data_dir / "test.jsonl").read_bytes())
    baseline = tmp_path / "baseline.json"
    baseline.write_text("{}")
    args = {"out-is-data": ["--out", "./test.jsonl"],
            "junit-is-out": ["--out", "v.json", "--junit", "./v.json"],
            "summary-is-data": ["--summary", f"{tmp_path}/../{tmp_path.name}/test.jsonl"],
            "update-baseline-is-out": ["--out", "v.json", "--update-baseline", "v.json"],
            "out-is-a-model-file": ["--out", teacher / "config.json"],
            "out-is-baseline": ["--out", "baseline.json", "--baseline", "baseline.json"]}[case]
    before = {p: p.read_bytes() for p in (data, baseline, teacher / "config.json")}
    code, text = _verify(cli, teacher, data, *args)
    refused(code, text, {"out-is-data": "--out test.jsonl: is the --data file",
                         "junit-is-out": "--junit v.json: is also --out",
                         "summary-is-data": "is the --data file",
                         "update-baseline-is-out": "--update-baseline v.json: is also --out",
                         "out-is-a-model-file": "a file of a model verified here",
                         "out-is-baseline": "--out baseline.json: is the --baseline file"}[case])
    assert no_loading == []
    assert {p: p.read_bytes() for p in before} == before


@pytest.mark.parametrize("extra, words, exit_code", [
    (["--seed", "-1"], ["--seed -1:"], 2),
    (["--batch-sizes", "1,a"], ["--batch-sizes 1,a:"], 2),
    (["--batch-sizes", "0,32"], ["--batch-sizes 0,32:"], 2),
    (["--batch-sizes", str(10**9)], [f"--batch-sizes {10**9}:"], 2),
    (["--iterations", str(10**9)], [f"--iterations {10**9}:"], 2),
    (["--iterations", "10", "--rounds", "100"], ["--rounds 100: more than the iterations"], 2),
    (["--threads", "0"], ["--threads 0:"], 2),
    (["--max-latency-regression", "fast"], ["--max-latency-regression fast"], 2),
    (["--max-length", "100000"], ["--max-length 100000:", "takes at most 128 tokens"], 2),
    (["--provider", "NoSuchExecutionProvider"],
     ["--provider NoSuchExecutionProvider:", "is not available here"], 4),
])
def test_verify_options_are_checked_before_any_model_is_loaded(cli, teacher, data_dir, tmp_path,
                                                               no_loading, extra, words,
                                                               exit_code):
    out = tmp_path / "v.json"
    code, text = _verify(cli, teacher, data_dir / "test.jsonl", "--out", out, *extra)
    refused(code, text, *words, exit_code=exit_code)
    assert no_loading == [] and not out.exists()


# --- predict and package: the same bounds

@pytest.mark.parametrize("command, extra, words", [
    ("predict", ["--bundle", "b", "--threads", str(10**6), "hi"], [f"--threads {10**6}:"]),
    ("predict", ["--bundle", "b", "--batch-size", "0", "hi"], ["--batch-size 0:"]),
    ("package", ["--model", "m", "--out", "o", "--threads", "0"], ["--threads 0:"]),
    ("package", ["--model", "m", "--out", "o", "--cold-starts", str(10**9)],
     [f"--cold-starts {10**9}:"]),
    ("package", ["--model", "m", "--out", "o", "--latency-requests", str(10**9)],
     [f"--latency-requests {10**9}:"]),
    ("export", ["--model", "m", "--out", "o", "--threads", str(10**6)], [f"--threads {10**6}:"]),
])
def test_counts_that_would_cost_unbounded_time_are_bounded(cli, tmp_path, monkeypatch, command,
                                                           extra, words):
    monkeypatch.chdir(tmp_path)
    code, text = cli(command, *extra)
    refused(code, text, *words)
    assert os.listdir(tmp_path) == []


# --- run: a recipe's settings, before its first step

def _pipeline_recipe(tmp_path, backbone, data, **sections):
    doc = {"name": "r", "model": str(backbone), "output": str(tmp_path / "models" / "r"),
           "data": {"train": str(data / "train.jsonl"),
                    "validation": str(data / "validation.jsonl"),
                    "test": str(data / "test.jsonl")},
           "finetune": {"epochs": 1, "batch_size": 8}} | sections
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


@pytest.mark.parametrize("override, words", [
    ("distill.student_layers=9", ["distill.student_layers 9: choose between 1 and 2"]),
    ("distill.keep_layers=0,9", ["distill.keep_layers 0,9: the teacher has layers 0..1"]),
    ("data.max_length=100000", ["data.max_length 100000:", "takes at most 128 tokens"]),
    ("data.image_size=100000", ["data.image_size 100000:"]),
    ("export.0.prune_vocab=,", ["export.prune_vocab ',': names no file"]),
    ("export.0.opset=9", ["export.opset 9: too low"]),
    ("verify.rounds=1000", ["verify.rounds 1000: more than the iterations (200)"]),
    ("finetune.epochs=1e9", ["finetune.epochs"]),
])
def test_a_recipe_setting_is_refused_before_the_first_step_and_named_by_its_key(
        cli, tiny_backbone, data_dir, tmp_path, monkeypatch, override, words):
    calls = trip(monkeypatch, "edgetransfer.pipeline.execute")
    recipe = _pipeline_recipe(tmp_path, tiny_backbone, data_dir, distill={"epochs": 1},
                              export=[{"quantize": "int8"}], verify={})
    for command in ("validate", "run"):
        code, text = cli(command, recipe, override)
        line = refused(code, text, f"{recipe}:", *words)
        assert "--" not in line.split(f"{recipe}:", 1)[1].split(":")[0], line  # the key
        assert calls == []
    assert not (tmp_path / "models" / "r" / "teacher").exists()

