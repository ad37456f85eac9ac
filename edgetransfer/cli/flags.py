"""Click options generated from a stage's pydantic config, so help text lives once.

Each field becomes `--field-name`; its description is the help, its default is shown, a
Literal becomes a choice, a bool a flag, a list a comma-separated value (or a repeated
option, where the field says `json_schema_extra={"repeatable": True}`). The config model,
not Click, validates the values, so the CLI and recipes reject the same things.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path

import click
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticUndefined

from ..errors import invalid_setting


def _unwrap(annotation):
    """(inner type, is optional) for `X | None`."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return annotation, False


def typed(value) -> str:
    """A default as a user types it: yes/no for a truth value in a list (pydantic reads
    both), not Python's True/False."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def options_from(config: type[BaseModel], first: tuple[str, ...] = ()):
    """A decorator adding one Click option per field of `config` (`first` listed first)."""
    fields = config.model_fields
    order = [f for f in first if f in fields] + [f for f in fields if f not in first]

    def decorate(fn):
        for name in reversed(order):
            info = fields[name]
            kind, optional = _unwrap(info.annotation)
            # (a field may name its flag: export's `accelerator` is --for, a keyword here)
            flag = (info.json_schema_extra or {}).get("flag") or "--" + name.replace("_", "-")
            if kind is bool and (optional or info.default is True):
                # on by default, or unset (the config decides): both ways must be sayable
                flag = f"{flag}/--no-{name.replace('_', '-')}"
            required = info.default is PydanticUndefined
            default = None if required else info.default
            if isinstance(default, list):  # shown and parsed the way a user types it
                default = ",".join(typed(v) for v in default)
            kwargs = dict(help=info.description, show_default=default not in (None, False))
            if (info.json_schema_extra or {}).get("repeatable"):
                # a list given by repeating the option (paths may hold commas)
                kwargs.update(multiple=True, type=str, required=required)
                if not required:
                    kwargs["default"] = ()
                fn = click.option(flag, name, **kwargs)(fn)
                continue
            if required:  # (click 8.5 treats an explicit default=None as "not required")
                kwargs["required"] = True
            else:
                kwargs["default"] = default
            if typing.get_origin(kind) is typing.Literal:
                kwargs["type"] = click.Choice([str(a) for a in typing.get_args(kind)])
            elif kind is bool:
                kwargs.update(is_flag=True)
            elif kind in (int, float):
                kwargs["type"] = kind
            elif kind is Path:
                kwargs["type"] = click.Path(path_type=Path)
            else:  # str, and lists given comma-separated
                kwargs["type"] = str
            fn = click.option(flag, name, **kwargs)(fn)
        return fn

    return decorate


def build(config: type[BaseModel], values: dict):
    """Validate CLI values into `config`; options left unset take the model's defaults."""
    given = {k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items()
             if v is not None and v != ()}
    try:
        return config(**given)
    except ValidationError as e:
        raise invalid_setting(e, given) from None
