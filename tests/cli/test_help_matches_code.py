"""Every `--help` option that names a metric, a default or a choice says what the code that
decides it does (issue 27: `--patience` said "accuracy" for NER, `search --prune` showed
`False,True`, `--model` left out efficientnet-lite0, the top-level help listed the commands
twice). The options come from the registry's commands, so a new stage or option is checked
too; each rule fails once, naming every option that breaks it."""

from __future__ import annotations

import re
import typing

import click

from edgetransfer import registry, tasks
from edgetransfer.cli.flags import _unwrap
from edgetransfer.cli.main import cli as group


def _options():
    """(command, its Click option, the config field it is made from, the config), for every
    option of every registered stage's command."""
    for stage in registry.stages():
        config = stage.config_class()
        for param in group.commands[stage.name].params:
            field = config.model_fields.get(param.name)
            if isinstance(param, click.Option) and field is not None:
                yield stage.name, param, field, config


OPTIONS = list(_options())


def _each(check) -> None:
    """Run `check(stage, param, field, config)` on every option: it returns what is wrong,
    or None; the test fails once, listing every option that is wrong."""
    problems = [f"{stage} {param.opts[0]}: {problem}"
                for stage, param, field, config in OPTIONS
                if (problem := check(stage, param, field, config))]
    assert problems == []


def _help(field) -> str:
    return field.description or ""


def _builtin_tasks() -> list:
    """The tasks edgetransfer ships (not a toy task another test may have registered)."""
    tasks.get(tasks.DEFAULT)  # (registers the built-in ones)
    return [t for t in tasks._TASKS.values()
            if getattr(t.claims, "__module__", "").startswith("edgetransfer.tasks.")]


def test_the_options_are_found():
    assert len(OPTIONS) > 100 and {s for s, *_ in OPTIONS} == {s.name for s in registry.stages()}


# --- the command list

def test_the_top_level_help_lists_every_command_once(cli):
    code, out = cli("--help")
    assert code == 0
    listed = [line.split()[0] for line in out.splitlines() if re.match(r"^  [a-z]+  ", line)]
    assert sorted(listed) == sorted(group.commands), out
    stages = [s.name for s in registry.stages()]
    assert listed[:len(stages)] == stages  # the stages first, in the pipeline's order


# --- choices

def test_a_choice_is_the_configs_literal_and_a_help_that_describes_choices_has_all():
    def check(stage, param, field, config):
        kind, _ = _unwrap(field.annotation)
        if typing.get_origin(kind) is not typing.Literal:
            return "a Click choice without a Literal" if isinstance(param.type,
                                                                     click.Choice) else None
        choices = [str(a) for a in typing.get_args(kind)]
        if list(param.type.choices) != choices:
            return f"--help offers {param.type.choices}, the config takes {choices}"
        # a help that describes choices one by one ("none: ...; int8: ...") describes all
        described = [c for c in choices
                     if re.search(rf"(^|[\s;(]){re.escape(c)}:", _help(field))]
        if len(described) >= 2 and described != choices:
            return f"the help describes {described} of {choices}"
        return None

    _each(check)


def test_search_formats_and_prune_are_the_ones_the_search_space_takes():
    from edgetransfer.search import space
    from edgetransfer.stages.search import SearchConfig

    fields = SearchConfig.model_fields
    listed = re.sub(r"\([^)]*\)", "", _help(fields["formats"]))  # (asides: "int8 layers")
    assert re.findall(r"\b(int[48][\w-]*)", listed) == list(space.FORMATS)
    assert set(fields["formats"].default) <= set(space.FORMATS)
    prune = next(p for p in group.commands["search"].params if p.name == "prune")
    assert prune.default == "no,yes" and "no, yes or both (no,yes)" in _help(fields["prune"])


# --- defaults

def test_a_shown_default_is_typed_as_a_user_types_it_and_reads_as_the_configs():
    def check(stage, param, field, config):
        if param.required or param.is_flag or param.default in (None, ()):
            return None
        shown = str(param.default)
        if re.search(r"\b(True|False|None)\b|[\[\]']", shown):
            return f"--help shows {shown!r}: Python's spelling, not what a user types"
        instance = config.model_construct()
        config.__pydantic_validator__.validate_assignment(instance, param.name, param.default)
        if getattr(instance, param.name) != field.default:
            return f"{shown!r} reads as {getattr(instance, param.name)!r}, not {field.default!r}"
        return None

    _each(check)


def test_a_number_a_help_gives_as_its_default_is_the_configs():
    """The project's way to give a default its reason, "(1: the edge-device case)", and a
    "[default: N]" of a field that has one, name the value the config holds."""
    def check(stage, param, field, config):
        default = field.default
        numbers = default if isinstance(default, list) else [default]
        if not all(isinstance(n, (int, float)) and not isinstance(n, bool) for n in numbers):
            return None
        given = (re.findall(r"(?:\(|; )(-?\d[\d.e+-]*): ", _help(field))
                 + re.findall(r"\[default: (-?\d[\d.e+-]*)\]", _help(field)))
        wrong = [g for g in given if float(g) not in [float(n) for n in numbers]]
        return f"the help gives {wrong} as the default, the config {default}" if wrong else None

    _each(check)


def _named(text: str, key: str) -> float:
    """The number a help gives after `key` ("fp16 5e-2", "full 1e-4")."""
    match = re.search(rf"\b{re.escape(key)}:? (\d[\d.e+-]*)", text)
    assert match, f"{key!r} has no number in: {text}"
    return float(match.group(1).rstrip("."))


def test_tolerances_named_in_help_are_the_parity_gates():
    from edgetransfer.measure import parity
    from edgetransfer.measure.gates import PROBE_ONLY_INT8_AGREEMENT
    from edgetransfer.stages.export import ExportConfig
    from edgetransfer.stages.verify import VerifyConfig

    for config in (ExportConfig, VerifyConfig):
        atol = _help(config.model_fields["atol"])
        agreement = _help(config.model_fields["min_agreement"])
        for precision in ("fp32", "fp16"):
            assert _named(atol, precision) == parity.TOLERANCES[precision][0]
        for precision in ("fp32", "fp16", "int8"):
            assert _named(agreement, precision) == parity.TOLERANCES[precision][1]
    export = _help(ExportConfig.model_fields["min_agreement"])
    assert f"{PROBE_ONLY_INT8_AGREEMENT:g} on the probe rows alone" in export


def test_learning_rates_named_in_help_are_the_methods_defaults():
    from edgetransfer.stages.finetune import DEFAULT_LR, FinetuneConfig

    text = _help(FinetuneConfig.model_fields["lr"])
    for method, lr in DEFAULT_LR.items():
        assert _named(text, method) == lr


def test_default_columns_named_in_help_are_the_ones_the_readers_try():
    from edgetransfer.bundle.runtime.pixels import IMAGE_COLUMNS
    from edgetransfer.data.labels import LABEL_COLUMNS
    from edgetransfer.tasks.text import TEXT_COLUMNS
    from edgetransfer.tasks.token_classification import TAG_COLUMNS, TOKEN_COLUMNS

    tried = {"text_column": ", ".join(TEXT_COLUMNS), "label_column": ", ".join(LABEL_COLUMNS),
             "tokens_column": " or ".join(TOKEN_COLUMNS), "tag_column": ", ".join(TAG_COLUMNS),
             "image_column": ", ".join(IMAGE_COLUMNS)}

    def check(stage, param, field, config):
        if param.name in tried and stage != "predict":  # (predict: the bundle's own copy)
            return None if tried[param.name] in _help(field) else f"not {tried[param.name]}"
        return None

    _each(check)


def test_defaults_of_the_image_size_and_the_device_python_are_the_codes():
    from edgetransfer.device import target_check
    from edgetransfer.modeling.efficientnet_lite import VARIANTS
    from edgetransfer.options import DataOptions, TargetOptions

    sides = [f"{'efficientnet' if i == 0 else ''}-{name.split('-')[-1]}: {v.resolution}"
             for i, (name, v) in enumerate(VARIANTS.items())]
    assert f"{', '.join(sides)}]" in _help(DataOptions.model_fields["image_size"])
    text = _help(TargetOptions.model_fields["target_python"])
    for python, (release, _) in target_check.SYSTEMS.items():
        assert f"{python} {release}" in text
    assert f"[default: {target_check.DEFAULT_PYTHON} for linux-aarch64" in text


# --- names: backbones, tasks, metrics

def test_the_backbone_help_names_every_built_in_backbone():
    from edgetransfer.modeling.backbones import BUILTIN
    from edgetransfer.stages.finetune import FinetuneConfig

    text = _help(FinetuneConfig.model_fields["model"])
    assert [name for name in BUILTIN if f"'{name}'" not in text] == []


def test_a_task_named_in_help_is_a_registered_task():
    names = {t.name for t in _builtin_tasks()}

    def check(stage, param, field, config):
        named = re.findall(r"\b[a-z]+(?:-[a-z]+)*-(?:classification|regression)\b",
                           _help(field))
        return f"names {set(named) - names}" if set(named) - names else None

    _each(check)


# How option helps name each task's primary metric (the Task's `primary` key)
METRIC_WORDS = {"accuracy": r"\baccuracy\b", "entity_f1": r"\bentity[- ]F1\b"}
# A help about one task starts by saying so; it may name that task's metric alone
SCOPES = {"Token classification:": "token-classification",
          "Image classification:": "image-classification"}


def test_every_primary_metric_has_the_words_help_names_it_by():
    missing = {t.primary for t in _builtin_tasks()} - set(METRIC_WORDS)
    assert not missing, f"add how --help names {missing} to METRIC_WORDS"


def test_a_help_names_no_metric_that_a_task_it_serves_lacks():
    """An option that serves every task names every task's primary metric or none (so
    "accuracy" alone, for a tagger judged by entity F1, fails); one scoped to a task names
    only that task's."""
    by_name = {t.name: t for t in _builtin_tasks()}

    def check(stage, param, field, config):
        text = re.sub(r"--[a-z0-9-]+", "", _help(field))  # (flags: --max-accuracy-drop)
        named = {key for key, words in METRIC_WORDS.items()
                 if re.search(words, text, re.IGNORECASE)}
        if not named:
            return None
        scope = next((task for prefix, task in SCOPES.items() if text.startswith(prefix)),
                     None)
        serves = {by_name[scope].primary} if scope else {t.primary for t in by_name.values()}
        return (f"names {sorted(named)}; the tasks it serves are judged by {sorted(serves)}"
                if named != serves else None)

    _each(check)
