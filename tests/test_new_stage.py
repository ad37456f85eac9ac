"""A new stage is its module plus one registry entry: two toy stages, defined here and
registered, get their commands (options from their configs), their recipe sections, their
API functions, and run as pipeline steps wired by a typed reference (a toy kind, `Sketch`,
made by the first and taken by the second); `beyond_module_and_entry` lists nothing else.
Nothing under edgetransfer/ is edited for them, and they are unregistered after."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field
from test_registry import beyond_module_and_entry

from edgetransfer import registry
from edgetransfer.artifacts import write_manifest
from edgetransfer.records.references import OnnxModel, Reference


class Sketch(Reference):
    """What the toy `sketch` step makes: a folder with sketch.txt."""


# --- the toy stages' modules, as a plugin would write them ----------------------------

class SketchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    words: int = Field(3, ge=1, le=50, description="How many words to write.")
    out: Path = Field(description="Output folder.")


def sketch_run(cfg: SketchConfig) -> Path:
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "sketch.txt").write_text(" ".join(["word"] * cfg.words), encoding="utf-8")
    write_manifest(cfg.out, "sketch", cfg.model_dump(mode="json"), {}, {}, packages=())
    return cfg.out


def sketch_plan(section, w) -> list[dict]:
    out = w.root / "sketch"
    return [{"label": "sketch", "config": section.model_dump() | {"out": out}, "inputs": {},
             "makes": [Sketch(folder=out)]}]


class TallyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: Path = Field(description="A sketch folder.")
    shout: bool = Field(False, description="Count in capitals.")
    out: Path = Field(description="Output folder.")


def tally_run(cfg: TallyConfig) -> Path:
    words = (cfg.source / "sketch.txt").read_text(encoding="utf-8").split()
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "tally.json").write_text(json.dumps({"words": len(words), "shout": cfg.shout}))
    write_manifest(cfg.out, "tally", cfg.model_dump(mode="json"), {}, {"source": str(cfg.source)},
                   packages=())
    return cfg.out


def tally_plan(section, w) -> list[dict]:
    sketch = w.newest(Sketch)  # (one there: the entry's `needs`)
    out = w.root / "tally"
    config = section.model_dump() | {"source": sketch.folder, "out": out}
    return [{"label": "tally", "config": config, "inputs": {"source": str(sketch.folder)}}]


def _module(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    return module


MODULES = {
    "toy_stages.sketch": _module("toy_stages.sketch", SketchConfig=SketchConfig, run=sketch_run,
                                 plan=sketch_plan, HELP="Write a few words."),
    "toy_stages.tally": _module("toy_stages.tally", TallyConfig=TallyConfig, run=tally_run,
                                plan=tally_plan, HELP="Count a sketch's words."),
}
# the one entry each
ENTRIES = [
    registry.Stage("sketch", "write a few words", "SketchConfig", wired=frozenset({"out"}),
                   makes=(Sketch,), module="toy_stages.sketch"),
    registry.Stage("tally", "count a sketch's words", "TallyConfig",
                   wired=frozenset({"source", "out"}), takes=(Sketch,), needs=(Sketch,),
                   module="toy_stages.tally"),
]


@pytest.fixture()
def toy_stages(monkeypatch):
    from edgetransfer.cli import cli

    for name, module in MODULES.items():
        monkeypatch.setitem(sys.modules, name, module)
    for entry in ENTRIES:
        registry.register(entry)
    try:
        yield ENTRIES
    finally:
        for entry in ENTRIES:
            registry.unregister(entry.name)
            cli.commands.pop(entry.name, None)


def _recipe(tmp_path: Path, file: str = "toy", **sections) -> Path:
    (tmp_path / "train.jsonl").write_text('{"text": "a", "label": 0}\n', encoding="utf-8")
    doc = {"name": "toy", "output": str(tmp_path / "models" / "toy"),
           "data": {"train": "train.jsonl"}} | sections
    path = tmp_path / f"{file}.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def test_a_new_stage_needs_nothing_beyond_its_module_and_entry(toy_stages):
    for stage in toy_stages:
        assert beyond_module_and_entry(stage) == [], stage.name


def test_its_command_has_an_option_per_setting(toy_stages, cli, tmp_path):
    code, out = cli("tally", "--help")
    assert code == 0 and "Count a sketch's words." in out
    assert "--source" in out and "--shout" in out and "Count in capitals." in out
    code, out = cli("--help")
    assert "sketch" in out and "write a few words" in out
    code, _ = cli("sketch", "--words", "4", "--out", tmp_path / "s")
    assert code == 0 and (tmp_path / "s" / "sketch.txt").read_text() == "word word word word"
    code, out = cli("sketch", "--words", "0", "--out", tmp_path / "s")
    assert code == 2 and "--words" in out


def test_its_api_function_is_made_from_its_entry(toy_stages, tmp_path):
    from edgetransfer import api

    api.sketch(words=2, out=tmp_path / "s")
    assert (tmp_path / "s" / "sketch.txt").read_text() == "word word"


def test_the_recipe_takes_its_section_and_the_pipeline_wires_it(toy_stages, cli, tmp_path):
    from edgetransfer import pipeline, recipe

    assert {"sketch", "tally"} <= set(recipe.schema().model_fields)
    path = _recipe(tmp_path, sketch={"words": 5}, tally={"shout": True})
    code, out = cli("run", path)
    assert code == 0, out
    root = tmp_path / "models" / "toy"
    assert json.loads((root / "tally" / "tally.json").read_text()) == {"words": 5,
                                                                      "shout": True}
    code, out = cli("run", path)  # unchanged: both reused
    assert code == 0 and out.count("unchanged, reusing") == 2
    code, out = cli("run", path, "sketch.words=7")  # the change reaches the step after it
    assert code == 0 and "unchanged" not in out
    assert json.loads((root / "tally" / "tally.json").read_text())["words"] == 7
    # a setting the pipeline wires is not the recipe's to set
    code, out = cli("validate", _recipe(tmp_path, "wired", sketch={}, tally={"source": "x"}))
    assert code == 2 and "tally.source" in out
    loaded, _ = recipe.load(path)
    steps = pipeline.plan(loaded, path, root)
    assert [p.step for p in steps][-2:] == ["sketch", "tally"]


def test_a_step_without_what_it_takes_is_refused_before_any_runs(toy_stages, cli, tmp_path):
    code, out = cli("validate", _recipe(tmp_path, tally={}))
    assert code == 2
    assert "toy.yaml: tally: no step before it makes the Sketch it takes; add the section " \
        "`sketch:`" in out


def test_a_plan_reads_only_the_kinds_its_entry_takes(toy_stages, tmp_path, monkeypatch):
    from edgetransfer import pipeline, recipe

    monkeypatch.setattr(MODULES["toy_stages.tally"], "plan",
                        lambda section, w: w.all(OnnxModel) and [])
    path = _recipe(tmp_path, sketch={}, tally={})
    loaded, _ = recipe.load(path)
    with pytest.raises(TypeError, match="tally: plan\\(\\) asks for OnnxModel"):
        pipeline.plan(loaded, path, tmp_path / "m")


def test_unregistered_it_is_gone(toy_stages, cli):
    from edgetransfer import recipe

    registry.unregister("tally")
    assert "tally" not in recipe.schema().model_fields
    registry.register(ENTRIES[1])  # (the fixture takes it away again)
