"""The stages as Python functions, made from the stage registry as the CLI's commands are.

    from edgetransfer import api

    teacher = api.finetune(model="minilm-l6", train="recipes/data/intents/train.jsonl",
                           method="lora", out="models/intents/teacher")
    onnx = api.export(model=teacher, out="models/intents/onnx")

One function per registered stage: keyword settings (or the config), validated by the
stage's own config, the command's function run, its record returned (a folder as an
`Artifact`; verify's report as its record, edgetransfer.records.VerifyReport; predict's rows
as a list). docs/api.md is the user's page.
Nothing here configures logging: the "edgetransfer" logger is the caller's to show.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from types import GeneratorType

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from . import registry
from .artifacts import MANIFEST
from .errors import EdgeTransferError


class Artifact(os.PathLike):
    """A folder a stage wrote: its path, and the JSON records in it."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"Artifact({str(self.path)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, (Artifact, os.PathLike, str)) and \
            Path(os.fspath(other)) == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    def read(self, name: str):
        """One of its JSON records, read within the bounds every record is read within:
        export.json (and verify.json) as its typed record (edgetransfer.records), any other
        (search.json, metrics.json, ...) as a dict."""
        from .records import BY_FILE
        from .untrusted import read_json

        kind = BY_FILE.get(name)
        return kind.read(self.path / name) if kind else read_json(self.path / name)

    @property
    def manifest(self) -> dict:
        """artifact.json: kind, task, parents, settings, metrics and every file's sha256."""
        return self.read(MANIFEST)

    @property
    def metrics(self) -> dict:
        return self.manifest.get("metrics") or {}


def _plain(value):
    """Paths (an Artifact, a Path) as the text a flag would carry; lists item by item."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _settings(config_class: type[BaseModel], settings: dict) -> dict:
    """Keyword settings as the CLI would hand them over: paths as text, and one value of a
    repeatable option (verify's candidate) as a list of one."""
    out = {}
    for name, value in settings.items():
        field = config_class.model_fields.get(name)
        repeatable = field is not None and (field.json_schema_extra or {}).get("repeatable")
        if repeatable and isinstance(value, (str, os.PathLike)):
            value = [value]
        out[name] = _plain(value)
    return out


def _as_list(value) -> list[str]:
    """A variadic argument (predict's texts, search's recipe): one value or several."""
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [os.fspath(value)]
    return [os.fspath(v) if isinstance(v, os.PathLike) else str(v) for v in value]


def _returned(value):
    if isinstance(value, Path) and value.is_dir():
        return Artifact(value)
    if isinstance(value, GeneratorType):  # (rows as they come: all of them, then done)
        return list(value)
    return value


def _stage_function(stage: registry.Stage):
    config_class = stage.config_class()
    extras = [name for name, _ in stage.flags] + ([stage.argument] if stage.argument else [])

    def function(config: BaseModel | None = None, /, **settings):
        from .cli import inputs
        from .cli.flags import build

        given = {name: settings.pop(name) for name in extras if name in settings}
        keywords = set(settings)
        if stage.argument:
            given[stage.argument] = _as_list(given.get(stage.argument))
        from . import pipeline as pipelines  # (no torch; `pipeline` is the function below)

        given |= pipelines.handed(stage)
        try:
            if config is None:
                config = build(config_class, _settings(config_class, settings))
            elif not isinstance(config, config_class):
                raise TypeError(f"api.{stage.name}: give a {config_class.__name__} or keyword "
                                f"settings, not a {type(config).__name__}")
            elif settings:
                raise TypeError(f"api.{stage.name}: give the config or keyword settings, not "
                                f"both ({', '.join(settings)})")
            inputs.check(config)  # (a mistyped path: said before torch loads, as the CLI does)
            target = getattr(stage.load(), stage.api or stage.entry)
            return _returned(target(config, **given))
        except EdgeTransferError as e:
            if e.named_as is None and (e.setting in config_class.model_fields
                                       or e.setting in keywords):
                e.name_setting(f"api.{stage.name}: {e.setting}")
            raise

    function.__name__ = function.__qualname__ = stage.name
    function.__module__ = __name__
    function.__doc__ = _doc(stage, config_class)
    function.__signature__ = _signature(stage, config_class)
    function.config = config_class
    function.stage = stage
    return function


def _doc(stage: registry.Stage, config_class: type[BaseModel]) -> str:
    """The stage's summary and its settings, from the config's own descriptions (the text
    `edgetransfer NAME --help` shows)."""
    lines = [f"{stage.summary[:1].upper()}{stage.summary[1:]}.", "",
             f"Settings (`edgetransfer {stage.name} --help`):"]
    for name, field in config_class.model_fields.items():
        default = "" if field.default is PydanticUndefined else f" = {field.default!r}"
        lines.append(f"    {name}{default}: {field.description or ''}")
    if stage.argument:
        lines.append(f"    {stage.argument}: a value or a list (the command's arguments)")
    for name, text in stage.flags:
        lines.append(f"    {name} = False: {text}")
    return "\n".join(lines)


def _signature(stage: registry.Stage, config_class: type[BaseModel]) -> inspect.Signature:
    keyword = inspect.Parameter.KEYWORD_ONLY
    params = [inspect.Parameter("config", inspect.Parameter.POSITIONAL_ONLY, default=None,
                                annotation=config_class.__name__)]
    for name, field in config_class.model_fields.items():
        default = inspect.Parameter.empty if field.default is PydanticUndefined \
            else field.default
        params.append(inspect.Parameter(name, keyword, default=default))
    if stage.argument:
        params.append(inspect.Parameter(stage.argument, keyword, default=()))
    params += [inspect.Parameter(name, keyword, default=False) for name, _ in stage.flags]
    return inspect.Signature(params)


def pipeline(recipe: str | os.PathLike, *overrides: str, from_step: str | None = None,
             force: bool = False, reuse_from: str | os.PathLike | None = None) -> Artifact:
    """`edgetransfer run RECIPE [KEY=VALUE]...`: the recipe's steps, each skipped when
    unchanged (or copied from `reuse_from`, another run's folder, where it made them the
    same); returns models/NAME (its records: report.json, pipeline.json)."""
    from . import pipeline as pipelines

    return Artifact(pipelines.run(Path(recipe), list(overrides), from_step=from_step,
                                  force=force, reuse_from=reuse_from))


def __getattr__(name: str):
    """A stage registered after this module's import (a plugin's, a test's)."""
    if name in {s.name for s in registry.stages()}:
        return _stage_function(registry.get(name))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


STAGES: tuple[str, ...] = tuple(s.name for s in registry.stages())
globals().update({s.name: _stage_function(s) for s in registry.stages()})

__all__ = ["Artifact", "STAGES", "pipeline"] + list(STAGES)

