"""The README's quickstarts, run as written: each command is read out of README.md and run in
a folder laid out like the repository (with ../shared beside it), where the tiny test
backbones stand in for the real ones and tiny data files of the same layout sit at the paths
the quickstarts read. The picture generator is the real one."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from codeblocks import blocks, commands, section
from conftest import make_rows, make_sentences, predictions, write_conll, write_jsonl
from joint_data import rows as joint_rows

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SHARED = ROOT.parent / "shared"
QUICKSTARTS = ("Text classification", "Named entities", "Images", "Several tasks at once")
MAX_LINES = 10  # the bound: from data to a bundle's prediction in ten lines

# What the tiny stand-ins need that the real backbones do not, appended to a command (Click
# takes an option's last value): a random model learns the toy data only at a higher
# learning rate over more epochs, its int8 agrees less with its fp32 than a trained model's
# does, and the timing loops need not be long to be exercised.
TINY = {
    "finetune": ["--lr", "3e-3", "--epochs", "6", "--batch-size", "8", "--patience", "0",
                 "--seed", "0"],
    "export": ["--min-agreement", "0.5", "--max-accuracy-drop", "100"],
    "verify": ["--min-agreement", "0.5", "--max-accuracy-drop", "100", "--iterations", "20",
               "--rounds", "2", "--latency-samples", "8", "--batch-sizes", "1"],
    "package": ["--cold-starts", "1", "--latency-requests", "20"],
}


def quickstart(heading: str):
    return blocks(section(section(README.read_text(encoding="utf-8"), "Quickstart"),
                          heading), "bash")[0]


def test_the_quickstarts_are_short_and_read_files_that_exist():
    text = section(README.read_text(encoding="utf-8"), "Quickstart")
    # said before the first command: packaging without verify needs --unverified
    assert "--unverified" in text[:text.index("```")]
    for heading in QUICKSTARTS:
        block = quickstart(heading)
        assert len(block.code.strip().splitlines()) <= MAX_LINES, heading
        words = [w for c in commands(block.code) for w in c]
        assert words.count("edgetransfer") >= 5, heading  # finetune ... predict
        for word in words:
            if word.startswith("recipes/"):
                assert (ROOT / word).exists(), f"{heading}: {word}"
            if word.startswith("../shared/") and SHARED.is_dir():
                assert (ROOT / word).exists(), f"{heading}: {word}"


@pytest.fixture()
def layout(tmp_path, tiny_backbone, tiny_effnet):
    """tmp/repo (the working folder) and tmp/shared, with tiny data at the README's paths."""
    repo = tmp_path / "repo"
    intents = repo / "recipes" / "data" / "intents"
    for name, n, seed in (("train", 60, 1), ("validation", 24, 2), ("test", 24, 3)):
        write_jsonl(intents / f"{name}.jsonl", make_rows(n, seed))
    shutil.copy(ROOT / "recipes" / "data" / "make_shapes.py", repo / "recipes" / "data")
    conll = tmp_path / "shared" / "data" / "conll2003"
    for name, n, seed in (("train", 60, 1), ("dev", 20, 2), ("test", 20, 3)):
        write_conll(conll / f"{name}.txt", make_sentences(n, seed))
    snips = tmp_path / "shared" / "data" / "snips"
    for name, n, seed in (("train", 120, 1), ("validation", 30, 2), ("test", 30, 3)):
        write_jsonl(snips / f"{name}.jsonl", joint_rows(n, seed))
    return repo, {"minilm-l6": str(tiny_backbone), "efficientnet-lite0": str(tiny_effnet)}


def _run(words: list[str], repo: Path, capsys) -> str:
    """One command of a quickstart, in `repo`: edgetransfer in this process, python as a
    process of its own; its output."""
    if words[0] == "python":
        proc = subprocess.run([sys.executable, *words[1:]], cwd=repo, capture_output=True,
                              text=True)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout
    assert words[0] == "edgetransfer", words
    from edgetransfer.cli import main

    try:
        main(words[1:] + TINY.get(words[1], []))
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    assert code == 0, f"{' '.join(words)}: exit {code}: {out.err[-2000:]}"
    return out.out


@pytest.mark.parametrize("heading", QUICKSTARTS)
def test_each_quickstart_runs_as_written(heading, layout, capsys, monkeypatch):
    repo, stand_ins = layout
    monkeypatch.chdir(repo)
    steps = [[stand_ins.get(w, w) for w in words] for words in commands(quickstart(heading).code)]
    outputs = [_run(words, repo, capsys) for words in steps]

    package = next(w for w in steps if w[:2] == ["edgetransfer", "package"])
    bundle = Path(package[package.index("--out") + 1])
    assert (repo / f"{bundle}.tar.gz").is_file()
    verify = next(w for w in steps if w[:2] == ["edgetransfer", "verify"])
    report = json.loads((repo / verify[verify.index("--out") + 1]).read_text())
    assert report["passed"]
    assert steps[-1][:2] == ["edgetransfer", "predict"]
    rows = predictions(outputs[-1])
    assert len(rows) == 1
    labels = json.loads((repo / bundle / "labels.json").read_text())
    if "intent" in rows[0]:  # (a joint model: every head in one answer)
        heads = {h: [x.split(":", 1)[1] for x in labels if x.startswith(h + ":")]
                 for h in ("intent", "slots")}
        assert rows[0]["intent"]["label"] in heads["intent"]
        assert all(f"B-{s['type']}" in heads["slots"] for s in rows[0]["slots"])
    elif "entities" in rows[0]:
        assert all(e["type"] in {"PER", "LOC"} for e in rows[0]["entities"])
        text = rows[0]["text"]
        assert all(text[e["start"]:e["end"]] == e["text"] for e in rows[0]["entities"])
    else:
        assert rows[0]["label"] in labels
