"""edgetransfer.paths: one file or folder, however it is spelt (./x, ../, a symlink, a hard
link, a path not written yet); and the guards that ask it (an --out overlapping an input)."""

from __future__ import annotations

import os

import pytest

from edgetransfer import paths


@pytest.fixture()
def tree(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "eval.jsonl").write_text('{"text": "a", "label": 0}\n')
    (data / "train.jsonl").write_text('{"text": "b", "label": 1}\n')
    (tmp_path / "link.jsonl").symlink_to(data / "eval.jsonl")
    os.link(data / "eval.jsonl", tmp_path / "hard.jsonl")
    (tmp_path / "datalink").symlink_to(data, target_is_directory=True)
    return tmp_path


@pytest.mark.parametrize("spelling", [
    "data/./eval.jsonl", "data/../data/eval.jsonl", "link.jsonl", "hard.jsonl",
    "datalink/eval.jsonl", "DATA_ABS"])
def test_every_spelling_of_one_file_is_the_same_file(tree, monkeypatch, spelling):
    monkeypatch.chdir(tree)
    spelling = str(tree / "data" / "eval.jsonl") if spelling == "DATA_ABS" else spelling
    assert paths.same(spelling, "data/eval.jsonl")
    assert paths.find_same("data/eval.jsonl", ["data/train.jsonl", spelling]) == spelling
    assert not paths.same(spelling, "data/train.jsonl")


def test_paths_that_do_not_exist_yet_compare_resolved(tree, monkeypatch):
    monkeypatch.chdir(tree)
    assert paths.same("out/verify.json", "./out/../out/verify.json")
    assert paths.same("datalink/new.json", "data/new.json")  # (through the link)
    assert not paths.same("out/a.json", "out/b.json")
    assert not paths.same("data/new.json", "data/eval.jsonl")  # one exists, one not


def test_first_repeat(tree, monkeypatch):
    monkeypatch.chdir(tree)
    assert paths.first_repeat(["data/train.jsonl", "data/eval.jsonl"]) is None
    assert paths.first_repeat(["data/eval.jsonl", "data/train.jsonl", "link.jsonl"]) == \
        ("data/eval.jsonl", "link.jsonl")


def test_inside_and_overlaps(tree, monkeypatch):
    monkeypatch.chdir(tree)
    assert paths.inside("data/eval.jsonl", "data")
    assert paths.inside("data", "data")
    assert paths.inside("datalink/eval.jsonl", "data")  # a link leads into it
    assert paths.inside("data/eval.jsonl", "datalink")
    assert paths.inside("data/not-yet/x.json", "./data")
    assert not paths.inside("data", "data/eval.jsonl")
    assert paths.inside("link.jsonl", "data")  # (a link to a file: judged where it points)
    assert not paths.inside("hard.jsonl", "data")  # a hard link is a file of its own place
    assert paths.overlaps("data", "datalink/sub") and paths.overlaps("datalink/sub", "data")
    assert not paths.overlaps("data", "out")


@pytest.mark.parametrize("given", ["datalink", "data/.", "data/../data"])
def test_an_out_that_overlaps_an_input_by_any_spelling_is_refused(tree, monkeypatch, given):
    from edgetransfer.artifacts import OutputFolder
    from edgetransfer.errors import OutputError

    monkeypatch.chdir(tree)
    for out in ("data", "data/sub", "datalink/sub"):
        with pytest.raises(OutputError, match="overlaps the input"):
            OutputFolder(tree / out, inputs=(tree / given,)).check()
    OutputFolder(tree / "elsewhere", inputs=(tree / given,)).check()  # (no overlap: fine)


def test_an_input_inside_the_partial_folder_is_refused(tree):
    """prepare() removes .NAME.partial: an input there would be gone before it is read."""
    from edgetransfer.artifacts import OutputFolder
    from edgetransfer.errors import OutputError

    work = tree / "models" / ".out.partial"
    work.mkdir(parents=True)
    (work / "model").mkdir()
    with pytest.raises(OutputError, match="overlaps the input"):
        OutputFolder(tree / "models" / "out", inputs=(work / "model",), resume=True).check()


def test_the_stages_guards_use_file_identity(tree, monkeypatch):
    """Every comparison of files in the package goes through edgetransfer.paths."""
    from edgetransfer.measure import runners
    from edgetransfer.modeling import backbones

    monkeypatch.chdir(tree)
    assert runners.same_model_folder("datalink", "data")
    assert backbones._same_model("./datalink/../data", tree / "data")
    assert not runners.same_model_folder("data", tree)
