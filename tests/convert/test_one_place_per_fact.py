"""Each fact export, search, package and target share is stated once and read everywhere
else (issue 26): the CPU families, the platforms, the quantize modes, which of them
calibrate, and the formats' order from the fastest. A copy that drifts fails here."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import click

from edgetransfer import platforms
from edgetransfer.cli.main import cli as group
from edgetransfer.convert import auto_choice, quantize

PACKAGE = Path(__file__).resolve().parents[2] / "edgetransfer"


def _choices(command: str, option: str) -> tuple[str, ...]:
    (param,) = [p for p in group.commands[command].params if p.name == option]
    assert isinstance(param.type, click.Choice)
    return tuple(param.type.choices)


def test_the_quantize_choices_are_the_table():
    assert _choices("export", "quantize") == quantize.CHOICES
    assert set(quantize.CHOICES) == {"int8", *quantize.MODES}
    assert _choices("export", "calibration_method") == quantize.CALIBRATION


def test_the_cpu_families_are_the_quantizers_targets():
    assert _choices("export", "target") == tuple(quantize.TARGETS)
    from edgetransfer.stages.export import ExportConfig

    assert ExportConfig.model_fields["target"].default == quantize.DEFAULT_TARGET
    # each family belongs to a platform bundles are built for
    assert {t.platform for t in quantize.TARGETS.values()} == set(platforms.PLATFORMS)


def test_the_platforms_are_one_table():
    for command in ("package", "search", "target"):
        assert _choices(command, "target") == tuple(platforms.PLATFORMS), command
    assert platforms.of_machine("AMD64") == "linux-x86_64"
    assert platforms.of_machine("arm64") == "linux-aarch64"
    assert platforms.of_machine("riscv64") is None


def test_a_tasks_default_modes_are_the_quantized_formats():
    from edgetransfer.tasks.task import Task

    default = next(f for f in Task.__dataclass_fields__.values() if f.name == "quantize_modes")
    assert default.default == quantize.QUANTIZED
    assert set(quantize.FASTEST_FIRST) <= set(quantize.QUANTIZED)
    assert set(quantize.CALIBRATED) <= set(quantize.QUANTIZED)


def test_search_formats_are_export_modes_ranked_by_the_one_speed_order():
    from edgetransfer.search import space
    from edgetransfer.stages import search

    assert search.SearchConfig.model_fields["formats"].default == list(space.FORMATS)
    assert all(mode in quantize.FORMATS for mode, _ in space.FORMATS.values())
    ranked = sorted(space.variants([1], list(space.FORMATS), [False]), key=search._speed_rank)
    assert [v.format for v in ranked] == ["int8-dynamic", "int8-int4emb", "int8-static",
                                          "int4"]


def test_auto_tries_the_int8_modes_fastest_first_then_fp32():
    assert auto_choice.candidate_modes(quantize.QUANTIZED, calibrated=True) == [
        "int8-dynamic", "int8-static", "none"]
    assert auto_choice.candidate_modes(quantize.QUANTIZED, calibrated=False) == [
        "int8-dynamic", "none"]
    # a CNN's int8 is static: without calibration inputs only fp32 is left
    assert auto_choice.candidate_modes(("int8-static", "fp16"), calibrated=False) == ["none"]


def test_what_calibrates_is_one_rule():
    assert [m for m in quantize.MODES if quantize.calibrates(m)] == ["int8-static"]
    assert [c for c in quantize.CHOICES if quantize.may_calibrate(c)] == [
        "int8", "int8-static", "auto"]


def test_no_module_restates_the_tables():
    """The lists spelt out as literals, anywhere but their one home."""
    copies = {
        r'Literal\[\s*"linux-': "platforms.PLATFORMS",
        r'"x86-avx2"': "convert.quantize.TARGETS",
        r'Literal\[\s*"none",\s*"int8"': "convert.quantize.CHOICES",
        r'\(\s*"int8-dynamic",\s*"int8-static"': "convert.quantize.QUANTIZED / FASTEST_FIRST",
        r'in \(\s*"int8", "int8-static", "auto"\)': "convert.quantize.may_calibrate",
    }
    homes = {PACKAGE / "platforms.py", PACKAGE / "convert" / "quantize.py"}
    found = [f"{path.relative_to(PACKAGE)}: {home}"
             for path in PACKAGE.rglob("*.py") if path not in homes
             for pattern, home in copies.items()
             if re.search(pattern, path.read_text(encoding="utf-8"))]
    assert not found, found


def test_literal_choices_from_a_tuple_keep_their_order():
    # (what the configs rely on: Literal[TUPLE] is Literal["a", "b", ...])
    assert typing.get_args(typing.Literal[quantize.CHOICES]) == quantize.CHOICES
