"""Recipes: a pipeline as validated data, with `key=value` overrides from the command line.

A recipe names the task, the backbone, the data and the steps (the stage registry's
pipeline steps, in its order) with their settings. Each step's section is generated from
that stage's own config (minus the fields the pipeline wires from one step to the next),
so the recipe, the CLI and the docs share one definition, one set of defaults and one
validation. Unknown keys
are refused with a "did you mean"; YAML is read as plain data (safe_load's types, no Python
tags) within the caps of `untrusted` (size, nesting, aliases), and a message echoes at most a
few hundred characters of a value; values YAML 1.1 reads as strings (`lr: 1e-4`) are
coerced by the schema or refused.

Importing this module does not import torch: `edgetransfer validate` stays instant.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from . import registry
from .errors import ConfigError
from .options import ColumnOptions, comma_list

# a recipe's and a variant's name name folders: well under a file system's 255 bytes
MAX_NAME = 100


def section(stage) -> type[BaseModel]:
    """The recipe section of a step: its stage's fields minus the wired ones, plus what the
    stage's module adds for recipes (RECIPE_FIELDS; RECIPE_SECTIONS: a field holding another
    stage's section, for a step its plan() adds, e.g. distill's student_finetune), plus a
    name for a list of variants."""
    config = stage.config_class()
    fields = {name: (info.annotation, info) for name, info in config.model_fields.items()
              if name not in stage.wired}
    fields |= getattr(stage.load(), "RECIPE_FIELDS", {})
    for name, (other, description) in getattr(stage.load(), "RECIPE_SECTIONS", {}).items():
        fields[name] = (section(registry.get(other)) | None, Field(None,
                                                                   description=description))
    if stage.variants:
        fields["name"] = (str | None, Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                                            max_length=MAX_NAME,
                                            description="Variant name, distinct in the "
                                            "list; it names the variant's folder [default: "
                                            "the stage's, e.g. export's quantize mode]."))
    validators = {}
    for name, info in config.model_fields.items():  # comma lists stay sayable as "a,b"
        if name not in stage.wired and "list" in str(info.annotation):
            validators[f"_split_{name}"] = field_validator(name, mode="before")(
                classmethod(lambda cls, v: comma_list(v) if isinstance(v, str) else v))
    return create_model(f"{stage.name.title()}Section", __config__=ConfigDict(extra="forbid"),
                        __validators__=validators, **fields)


class DataSection(ColumnOptions):
    """Where the data is. Relative paths in a recipe file are relative to that file; relative
    paths given as overrides on the command line are relative to where it is run."""

    model_config = ConfigDict(extra="forbid")

    dir: str | None = Field(None, description="Folder the file names below are relative to.")
    train: str = Field(description="Training data (CSV/TSV/JSONL/Parquet; a CoNLL file; a "
                       "folder of class folders of images).")
    validation: str | None = Field(None, description="Validation data (model selection).")
    test: str | None = Field(None, description="Held-out test data.")
    eval: str | None = Field(None, description="Data verify and export score on [default: "
                             "test, else validation].")
    unlabeled: str | None = Field(None, description="Unlabelled texts (or images) for "
                                  "distillation.")
    label_names: list[str] | None = Field(None, description="Names for integer label ids.")
    train_sample: int | None = Field(None, ge=1, description="Train on a seeded sample of "
                                     "this many rows.")
    max_length: int = Field(128, ge=8, description="Tokens per text, every step.")
    image_size: int | None = Field(None, ge=8, description="Images: the side in pixels the "
                                   "teacher is trained at (its image processor carries it to "
                                   "every later step) [default: the backbone's].")

    @field_validator("label_names", mode="before")
    @classmethod
    def _names(cls, v):
        return comma_list(v)


def _schema() -> type[BaseModel]:
    fields = {
        "name": (str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=MAX_NAME,
                            description="Recipe name: artifacts go to models/NAME/.")),
        "description": (str, Field("", description="One line on what the recipe does.")),
        "task": (str | None, Field(None, description="The task (see docs/tasks.md) "
                                   "[default: the model's head, else the data's columns].")),
        "tasks": (dict[str, dict] | None, Field(None, description="A joint model's heads "
                                                "(task: multi-task): head name -> kind (a "
                                                "task), label_column and weight.")),
        "model": (str, Field("minilm-l6", description="The backbone to fine-tune (or, "
                             "without a finetune step, the fine-tuned model).")),
        "output": (str | None, Field(None, description="Artifact folder [default: "
                                     "models/NAME next to recipes/].")),
        "data": (DataSection, ...),
    }
    for stage in registry.steps():  # one optional section per pipeline step, in order
        model = section(stage)
        fields[stage.name] = ((list[model] if stage.variants else model) | None, None)
    return create_model("Recipe", __config__=ConfigDict(extra="forbid"), **fields)


_SCHEMAS: dict[tuple, type[BaseModel]] = {}


def schema() -> type[BaseModel]:
    """The recipe's schema, built once for the registered steps (a stage registered later,
    a plugin's or a test's, has its section)."""
    steps = tuple(registry.steps())
    if steps not in _SCHEMAS:
        _SCHEMAS[steps] = _schema()
    return _SCHEMAS[steps]


def read_yaml(path: Path) -> dict:
    """A recipe file as plain data, read within the caps of `untrusted` (size, nesting,
    aliases and what they expand to): a hostile recipe is one line, never a hang."""
    import yaml

    from .untrusted import MAX_RECIPE_BYTES, TooLarge, clip, load_yaml, read_bytes

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such recipe file")
    data = read_bytes(path, MAX_RECIPE_BYTES, what="recipe",
                      fix="a recipe is a few KB of YAML")
    try:
        raw = load_yaml(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 (byte {e.start}); save it as UTF-8") from None
    except TooLarge as e:
        where = f", line {e.line}" if e.line else ""
        raise ConfigError(f"{path}{where}: {e}; {e.fix}") from None
    except yaml.constructor.ConstructorError as e:
        mark = e.problem_mark
        tag = "constructor for the tag" in str(e.problem)
        kind = ("data (Python tags are refused and nothing was run)" if tag else
                "data: text, numbers, lists and mappings")
        raise ConfigError(f"{path}, line {mark.line + 1}: {clip(e.problem)}; recipes are plain "
                          f"{kind}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML: "
                          f"{clip(getattr(e, 'problem', None) or e)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a recipe is a mapping (name:, data:, steps...), not "
                          f"{type(raw).__name__}")
    return raw


_OVERRIDE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(?:\.(?:[A-Za-z_][A-Za-z0-9_]*|\d+))*)=(.*)$",
                       re.S)


# keys holding paths: an override's relative path means one relative to the shell's cwd;
# of those, the folders a run writes (taken from the cwd whether or not they exist yet)
WRITTEN_KEYS = {("output",), ("distill", "teacher_cache"), ("verify", "reference_cache")}
PATH_KEYS = {("model",), ("data", "dir"), ("data", "train"), ("data", "validation"),
             ("data", "test"), ("data", "eval"), ("data", "unlabeled")} | WRITTEN_KEYS


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """`a.b.c=value`: the value read as YAML (2 -> int, true -> bool, [a, b] -> list),
    within the same caps as a recipe file."""
    import yaml

    from .untrusted import MAX_RECIPE_BYTES, TooLarge, clip, load_yaml, shorten

    for item in overrides:
        m = _OVERRIDE.match(item)
        if not m:
            raise ConfigError(f"override {shorten(item)}: write KEY=VALUE, e.g. "
                              f"finetune.epochs=2")
        keys, text = m.group(1).split("."), m.group(2)
        if len(text.encode("utf-8", "surrogateescape")) > MAX_RECIPE_BYTES:
            raise ConfigError(f"override {shorten(item)}: the value is longer than a whole "
                              f"recipe may be ({MAX_RECIPE_BYTES // 1024} KiB)")
        try:
            value = load_yaml(text) if text.strip() else None
        except TooLarge as e:
            raise ConfigError(f"override {shorten(item)}: {e}; {e.fix}") from None
        except yaml.YAMLError:
            value = text
        if tuple(keys) in PATH_KEYS and isinstance(value, str) and not Path(value).is_absolute():
            local = Path.cwd() / value
            if keys == ["data", "dir"] or local.exists() or tuple(keys) in WRITTEN_KEYS:
                value = str(local.resolve()) if local.exists() else str(local)
        node: Any = raw
        for i, key in enumerate(keys[:-1]):
            nxt = keys[i + 1]
            if isinstance(node, list):
                node = _index(node, key, keys[:i + 1], item)
                continue
            if node.get(key) is None:
                node[key] = [] if nxt.isdigit() else {}
            node = node[key]
            if not isinstance(node, (dict, list)):
                raise ConfigError(f"override {shorten(item)}: {clip('.'.join(keys[:i + 1]))} is "
                                  f"a value, not a section")
        last = keys[-1]
        if isinstance(node, list):
            idx = int(last) if last.isdigit() else -1
            if not 0 <= idx <= len(node):
                raise ConfigError(f"override {shorten(item)}: {clip('.'.join(keys[:-1]))} has "
                                  f"{len(node)} entries")
            if idx == len(node):
                node.append(value)
            else:
                node[idx] = value
        else:
            node[last] = value
    return raw


def _index(node: list, key: str, path, item):
    from .untrusted import clip, shorten

    if not key.isdigit() or int(key) >= len(node):
        raise ConfigError(f"override {shorten(item)}: {clip('.'.join(path[:-1]))} has {len(node)} "
                          f"entries; index them 0..{len(node) - 1}")
    return node[int(key)]


def _did_you_mean(model: type[BaseModel], loc: tuple) -> str:
    """Suggest the closest field name for an unknown key at `loc`."""
    target: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        fields = getattr(target, "model_fields", {})
        if part not in fields:
            return ""
        target = _model_of(fields[part].annotation)
        if target is None:
            return ""
    names = list(getattr(target, "model_fields", {}))
    close = difflib.get_close_matches(str(loc[-1])[:100], names, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else f"; the keys here are: {', '.join(names)}"


def _model_of(annotation):
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def load(path: Path, overrides: list[str] = ()):
    """Read, override, validate: (the recipe object, the raw mapping it came from)."""
    from .untrusted import clip, shorten

    raw = apply_overrides(read_yaml(path), list(overrides))
    model = schema()
    try:
        recipe = model.model_validate(raw)  # (not model(**raw): a key may be no string)
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(err["loc"])
        where = clip(".".join(str(p) for p in loc))
        if err["type"] == "extra_forbidden":
            raise ConfigError(f"{path}: unknown key {where}{_did_you_mean(model, loc)}") from None
        if err["type"] == "invalid_key":
            raise ConfigError(f"{path}: {where}: a key is {shorten(loc[-1], 60)}, not text; "
                              f"write it as a name") from None
        given = err.get("input")
        # the input shown capped: a recipe's value may be a megabyte, or a bomb's expansion
        shown = f" (got {shorten(given)})" if not isinstance(given, dict) and given is not None \
            else ""
        raise ConfigError(f"{path}: {where}: {clip(err['msg'], 300)}{shown}") from None
    _check_steps(recipe, path)
    return recipe, raw


def _check_steps(recipe, path: Path) -> None:
    from .untrusted import shorten

    steps = registry.steps()
    if not any(getattr(recipe, s.name) is not None for s in steps):
        raise ConfigError(f"{path}: no steps; add at least one of "
                          f"{', '.join(s.name for s in steps)}")
    from . import tasks

    if recipe.tasks is not None or recipe.task == tasks.JOINT:
        from .tasks.joint import heads

        if recipe.task not in (None, tasks.JOINT):
            raise ConfigError(f"{path}: tasks: makes a {tasks.JOINT} task, not {recipe.task}; "
                              f"set task: {tasks.JOINT}")
        if recipe.tasks is None:
            raise ConfigError(f"{path}: task: {tasks.JOINT} needs a tasks: section naming "
                              f"its heads (name: {{kind: ..., label_column: ..., weight: ...}})")
        heads.parse_section(recipe.tasks, f"{path}: tasks")
    elif recipe.task is not None:
        tasks.get(recipe.task, flag=f"{path}: task:")
    for stage in steps:
        variants = getattr(recipe, stage.name)
        if stage.variants and variants:
            names = [stage.load().variant_name(v) for v in variants]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ConfigError(f"{path}: {stage.name} variants share the name "
                                  f"{shorten(dupes[0])}; give each a distinct name: key")


def resolve_path(recipe_file: Path, value: str) -> Path:
    """A path written in the recipe file: relative to the file's folder."""
    p = Path(value).expanduser()
    return p if p.is_absolute() else (Path(recipe_file).resolve().parent / p)


def data_path(recipe, recipe_file: Path, value: str | None) -> str | None:
    """A data file of the recipe as a path the stages can open."""
    if value is None:
        return None
    if Path(value).is_absolute():
        return value
    base = resolve_path(recipe_file, recipe.data.dir) if recipe.data.dir else \
        Path(recipe_file).resolve().parent
    return str(base / value)


def output_root(recipe, recipe_file: Path) -> Path:
    """models/NAME beside the recipes/ folder (the project's models/), unless set."""
    if recipe.output:
        return resolve_path(recipe_file, recipe.output)
    folder = Path(recipe_file).resolve().parent
    root = folder.parent if folder.name == "recipes" else folder
    return root / "models" / recipe.name
