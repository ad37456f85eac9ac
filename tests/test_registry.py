"""The stage registry: a stage is its module plus its entry; everything else (a command
and its options, a recipe section, an API function, the pipeline's wiring) follows from
them, and `beyond_module_and_entry` lists what would not: nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgetransfer import registry, tasks

ROOT = Path(__file__).resolve().parents[1]


def beyond_module_and_entry(stage: registry.Stage) -> list[str]:
    """What `stage` lacks that its module and its registry entry do not give it: each an
    edit elsewhere a new stage would need (tests/test_new_stage.py: nothing). The module
    keeps its side: a config, `HELP`, its entry and, for a pipeline step, `plan()`."""
    import click

    from edgetransfer import api
    from edgetransfer.cli import cli
    from edgetransfer.recipe import schema

    module, config = stage.load(), stage.config_class()
    assert callable(getattr(module, stage.entry)) and isinstance(module.HELP, str)
    assert not stage.wired - set(config.model_fields), "wires fields the config lacks"
    if stage.step:
        assert callable(getattr(module, "plan", None)), "no plan() for the pipeline"
    lacking = []
    command = cli.get_command(click.Context(cli), stage.name)
    if command is None or command.help != module.HELP:
        lacking.append("a command (cli/main.py)")
    elif set(config.model_fields) - {p.name for p in command.params}:
        lacking.append("options for its settings (cli/flags.py)")
    if stage.step and stage.name not in schema().model_fields:
        lacking.append("a recipe section (recipe.py)")
    if getattr(api, stage.name, None) is None:
        lacking.append("an API function (api.py)")
    return lacking


@pytest.mark.parametrize("stage", registry.stages(), ids=lambda s: s.name)
def test_a_stage_needs_nothing_beyond_its_module_and_entry(stage):
    assert beyond_module_and_entry(stage) == []


@pytest.mark.parametrize("stage", [s for s in registry.stages() if s.module is None],
                         ids=lambda s: s.name)
def test_every_shipped_stage_has_its_tests(stage):
    """The house's rule for its own stages (not wiring: nothing breaks without it)."""
    assert (ROOT / "tests" / "stages" / f"test_{stage.name}.py").is_file(), "no test file"


def test_the_readme_names_only_commands_that_exist():
    """README's stage table is prose (status, docs links), written by hand: a row must name
    a real command, but a new stage needs no row to work; `edgetransfer --help` lists every
    stage from the registry."""
    from edgetransfer.cli.main import PIPELINES

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    named = re.findall(r"^\| [^|]+ \| `edgetransfer ([a-z-]+)` \|", readme, re.MULTILINE)
    commands = {s.name for s in registry.stages()} | set(PIPELINES)
    assert named and not set(named) - commands


def test_a_stage_or_task_is_registered_once():
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(registry.get("export"))
    task = tasks.get("text-classification")
    assert tasks.register(task) is task  # the same object again: harmless
    with pytest.raises(ValueError, match="registered twice"):
        from dataclasses import replace

        tasks.register(replace(task, summary="another"))
