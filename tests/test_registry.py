"""The stage registry: every stage has a command, a recipe section, a test file, a README row."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgetransfer import registry, tasks

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("stage", registry.stages(), ids=lambda s: s.name)
def test_every_stage_is_wired_everywhere(stage):
    from edgetransfer.cli import cli
    from edgetransfer.recipe import schema

    assert stage.name in cli.commands, "no command"
    assert cli.commands[stage.name].help == stage.load().HELP
    config = stage.config_class()
    assert not stage.wired - set(config.model_fields), "wires fields the config lacks"
    if stage.step:
        assert stage.name in schema().model_fields, "no recipe section"
        assert callable(getattr(stage.load(), "plan", None)), "no plan() for the pipeline"
    assert (ROOT / "tests" / "stages" / f"test_{stage.name}.py").is_file(), "no test file"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"| `edgetransfer {stage.name}` |" in readme, "no README row"


def test_a_stage_or_task_is_registered_once():
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(registry.get("export"))
    task = tasks.get("text-classification")
    assert tasks.register(task) is task  # the same object again: harmless
    with pytest.raises(ValueError, match="registered twice"):
        from dataclasses import replace

        tasks.register(replace(task, summary="another"))


def test_no_stage_imports_another():
    for module in (ROOT / "edgetransfer" / "stages").glob("*.py"):
        text = module.read_text(encoding="utf-8")
        for other in registry.stages():
            if other.name != module.stem:
                assert f"from .{other.name} import" not in text, module.name
                assert f"stages.{other.name} import" not in text, module.name
                assert f"from . import {other.name}" not in text, module.name
