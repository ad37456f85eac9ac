"""The registry of tasks: one string names each, and a stage looks its task up here.

`resolve()` decides a run's task: the `--task` / `task:` given, else what an artifact's
manifest or a checkpoint's config.json says, else what the data's columns say, when exactly
one registered task claims it; anything ambiguous is an error that lists the choices, and
with no claim at all the default task's reader says what the data lacks.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError, ModelError
from .task import Task, TaskData

__all__ = ["Task", "TaskData", "get", "of_config", "register", "resolve"]

_TASKS: dict[str, Task] = {}
# The task when neither the model nor the data says: the one edgetransfer began with, whose
# reader then names what the data lacks (e.g. "no text column found").
DEFAULT = "text-classification"
# The joint task (tasks/joint): composed from heads, never registered itself.
from .joint.heads import NAME as JOINT  # noqa: E402


def register(task: Task) -> Task:
    """Add a task; a second task of the same name is a programming error."""
    if task.name in _TASKS and _TASKS[task.name] is not task:
        raise ValueError(f"task {task.name!r} is registered twice")
    _TASKS[task.name] = task
    return task


def unregister(name: str) -> None:
    """Remove a task (tests register toy tasks and take them away again)."""
    _TASKS.pop(name, None)


def _builtin() -> None:
    from . import (  # noqa: F401  (register)
        image_classification,
        text_classification,
        token_classification,
    )


def get(name: str, flag: str = "--task") -> Task:
    _builtin()
    if name == JOINT:
        raise ConfigError(f"{flag} {JOINT}: a joint task is made of its heads; name them "
                          f"(--head NAME=KIND[:COLUMN[:WEIGHT]], or a recipe's tasks: section)")
    try:
        return _TASKS[name]
    except (KeyError, TypeError):
        from ..untrusted import clip

        raise ConfigError(f"{flag} {clip(name)}: no such task; the tasks are "
                          f"{', '.join(_TASKS)}") from None


def of_config(config: dict, where: str = "config.json") -> list[Task]:
    """The tasks whose head a checkpoint's config.json describes (a joint model: the one
    its recorded heads make)."""
    _builtin()
    from . import joint

    if joint.claims(config):
        return [joint.of_config(config, where)]
    return [t for t in _TASKS.values() if t.claims(config)]


def recorded(folder: Path) -> str | None:
    """The task an edgetransfer artifact folder records in its artifact.json."""
    from ..artifacts import MANIFEST
    from ..untrusted import read_json

    try:
        task = read_json(Path(folder) / MANIFEST).get("task")
    except ConfigError:  # (no manifest, or a damaged one: the config or the data decide)
        return None
    return task if isinstance(task, str) else None


def resolve(given: str | None, *, config: dict | None = None, folder: Path | None = None,
            columns=None, flag: str = "--task", where: str = "--model", heads=None,
            select: str | None = None) -> Task:
    """The run's task: `given`, else the artifact's record, the config's head or the data's
    columns (a list, or a function giving it: read only when needed), where exactly one
    task fits. A given task that contradicts the checkpoint's head is refused (one line,
    exit 2) before any work. `heads` (joint.Head, from --head or a recipe's tasks:): a joint
    task over them, whose heads a checkpoint's own then must not contradict."""
    _builtin()
    by_head = of_config(config, f"{where}: config.json") if config else []
    if heads or given == JOINT:
        return _joint(given, heads, select, by_head, flag, where)
    if given is not None:
        task = get(given, flag)
        if by_head and task not in by_head:
            raise ModelError(f"{where}: its head is {' / '.join(t.name for t in by_head)}, not "
                             f"{task.name}; give a checkpoint of that task, or a backbone "
                             f"(--new-head replaces a head when fine-tuning)")
        return task
    if folder is not None and (name := recorded(folder)) and name in _TASKS:
        return _TASKS[name]
    if len(by_head) == 1:
        return by_head[0]
    if len(by_head) > 1:
        raise ConfigError(f"{where}: its head fits several tasks "
                          f"({', '.join(t.name for t in by_head)}); pass {flag}")
    if callable(columns):
        columns = columns()
    if columns is not None:
        fits = [t for t in _TASKS.values() if t.claims_data(columns)]
        if len(fits) == 1:
            return fits[0]
        if len(fits) > 1:
            raise ConfigError(f"the data's columns {columns} fit several tasks "
                              f"({', '.join(t.name for t in fits)}); pass {flag}")
    return _TASKS[DEFAULT]


def _joint(given, heads, select, by_head: list[Task], flag: str, where: str) -> Task:
    from . import joint

    if given not in (None, JOINT):
        raise ConfigError(f"--head: heads make a {JOINT} task, not {given}; drop {flag} or "
                          f"give {flag} {JOINT}")
    if not heads and by_head and by_head[0].joint:  # (a trained joint model: its own)
        return by_head[0]
    if not heads:
        raise ConfigError(f"{flag} {JOINT}: name its heads with --head NAME=KIND[:COLUMN"
                          f"[:WEIGHT]] (a recipe: its tasks: section)")
    task = joint.compose(list(heads), select)
    if by_head and by_head[0].outputs != task.outputs:
        theirs = ", ".join(by_head[0].outputs) if by_head[0].joint else by_head[0].name
        raise ModelError(f"{where}: its head is {theirs}, not the heads "
                         f"{', '.join(task.outputs)}; give a backbone, or pass --new-head to "
                         f"replace its head")
    return task
