"""The registry of input kinds: one string names each; a task names its kind (Task.inputs)
and the stages ask it where kinds differ, never testing its name.

The columns of every registered kind are the fields of options.ColumnOptions, made when
options.py is first imported: a kind from outside edgetransfer registers before that (a
plugin module imported ahead of the CLI), as tests/test_input_kinds.py does.
Light on purpose: nothing here imports options, tasks, torch or transformers.
"""

from __future__ import annotations

from ..errors import ConfigError
from .kind import LABEL, Column, InputKind

__all__ = ["LABEL", "Column", "InputKind", "columns", "get", "kinds", "register", "unregister"]

_KINDS: dict[str, InputKind] = {}


def register(kind: InputKind) -> InputKind:
    """Add a kind; a second kind of the same name, or a column of the same name as another
    kind's but another definition, is a programming error."""
    if kind.name in _KINDS and _KINDS[kind.name] is not kind:
        raise ValueError(f"input kind {kind.name!r} is registered twice")
    mine = {c.name: c for c in kind.columns}
    for other in _KINDS.values():
        for c in other.columns:
            if c.name in mine and mine[c.name] is not c:
                raise ValueError(f"input kind {kind.name!r}: column {c.name!r} is defined "
                                 f"again (input kind {other.name!r} has it); share the one")
    import sys

    # (the settings made from the kinds' columns; None while they are being made)
    made = getattr(sys.modules.get("edgetransfer.options"), "COLUMNS", None)
    late = [c.name for c in kind.columns if made is not None and c.name not in made]
    if late:  # (its columns would silently be no config field, CLI option or recipe key)
        raise ValueError(f"input kind {kind.name!r}: registered after edgetransfer.options "
                         f"was imported, so its columns {late} would be no setting; register "
                         f"it first")
    _KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Remove a kind (tests register toy kinds and take them away again)."""
    _KINDS.pop(name, None)


def _builtin() -> None:
    # (each registers itself; this order is the columns' order in --help)
    from . import text  # noqa: F401, I001  (the order matters: not sorted)
    from . import words  # noqa: F401
    from . import image  # noqa: F401


def kinds() -> list[InputKind]:
    _builtin()
    return list(_KINDS.values())


def get(name: str) -> InputKind:
    _builtin()
    try:
        return _KINDS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"input kind {name!r}: no such kind; the kinds are "
                          f"{', '.join(_KINDS)}") from None


def columns() -> list[Column]:
    """Every registered kind's columns, once each, in the order of registration (a column
    two kinds share, such as the label column, where it first appears)."""
    seen: dict[str, Column] = {}
    for kind in kinds():
        for c in kind.columns:
            seen.setdefault(c.name, c)
    return list(seen.values())
