"""A joint model's heads as the user names them: one task each, its label column, its weight.

`--head intent=text-classification:intent` on the command line, a recipe's `tasks:` section,
and a trained model's config.json ("task_heads") all become a list of `Head`, checked here
once: a name used twice, an unknown kind, a kind that cannot be a head, a weight that is no
number are refused with the place they came from. A config.json may come from someone else,
so its heads are read as untrusted (names and labels bounded, kinds looked up, not run).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from ...errors import ConfigError

# The task name every joint model records (artifact.json, --task); its heads say the rest.
NAME = "multi-task"
# config.json's keys holding the heads and the combined metric the model was selected on.
CONFIG_HEADS = "task_heads"
CONFIG_SELECT = "task_select"
# A head's name is a graph output's name, a JSON key the runtime prints and a metric's
# prefix: short, lower-case, no separator the metric names use. Names the runtime's output
# or the model's record already use are reserved.
HEAD_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}\Z")
RESERVED = frozenset({"text", "label", "labels", "score", "scores", "outputs", "loss",
                      "hidden_states", "attentions", "combined", "exact_match", "n"})
MAX_HEADS = 16
MAX_LABELS = 10_000  # per head: a vocabulary-sized head is a mistake, not a task
# How the combined figure (model selection, early stopping, the gates' summary) is made of
# the heads' primary metrics: their plain mean, their mean weighted as the losses are, or
# one head's alone (--select HEAD).
SELECT_RULES = ("mean", "weighted")
# a recipe's tasks: entry may name the head's own data files (--head-data NAME:SPLIT=PATH)
FILES = ("train", "validation", "test")


@dataclass(frozen=True)
class Head:
    name: str
    kind: str  # a registered task whose `head` says how it sits on the encoder
    column: str | None = None  # its gold label column [default: the head's name]
    weight: float = 1.0  # its loss's weight
    labels: tuple[str, ...] = field(default=(), compare=False)  # its outputs, once known

    @property
    def label_column(self) -> str:
        return self.column or self.name

    def flag(self) -> str:
        """As --head takes it."""
        return f"{self.name}={self.kind}:{self.label_column}:{self.weight:g}"

    def record(self) -> dict:
        """config.json's entry."""
        return {"name": self.name, "kind": self.kind, "column": self.label_column,
                "weight": self.weight, "labels": list(self.labels)}


def _weight(value, where: str) -> float:
    try:
        w = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: weight {value!r} is not a number; give e.g. 1.0") from None
    if not math.isfinite(w) or w < 0 or w > 1000:
        raise ConfigError(f"{where}: weight {value!r} must lie in 0..1000")
    return w


def check_name(name, where: str) -> str:
    from ...untrusted import clip

    if not isinstance(name, str) or not HEAD_NAME.match(name):
        raise ConfigError(f"{where}: head name '{clip(name)}' must be lower-case letters, digits "
                          f"and _ (at most 32, a letter first), e.g. intent")
    if name in RESERVED:
        raise ConfigError(f"{where}: head name {name!r} is reserved (the runtime's output "
                          f"uses it); name the head otherwise, e.g. {name}_head")
    return name


def check_kind(kind, where: str) -> str:
    """A registered task that can be a head (Task.head says where it reads the encoder)."""
    from ...untrusted import clip
    from .. import _TASKS, _builtin

    _builtin()
    heads = sorted(t.name for t in _TASKS.values() if t.head is not None)
    if kind not in heads:
        raise ConfigError(f"{where}: kind '{clip(kind)}' is not a task that can be a head; the "
                          f"kinds are {', '.join(heads)}")
    return kind


def check_heads(heads: list[Head], where: str) -> list[Head]:
    if not heads:
        raise ConfigError(f"{where}: name at least one head (e.g. --head intent="
                          f"text-classification:intent)")
    if len(heads) > MAX_HEADS:
        raise ConfigError(f"{where}: {len(heads)} heads; at most {MAX_HEADS}")
    seen: set[str] = set()
    for h in heads:
        if h.name in seen:
            raise ConfigError(f"{where}: the head name {h.name!r} is used twice; give each "
                              f"head its own name")
        seen.add(h.name)
    if all(h.weight == 0 for h in heads):
        raise ConfigError(f"{where}: every head's weight is 0, so nothing would be learned")
    return heads


def parse_flag(value: str) -> Head:
    """`NAME=KIND[:COLUMN[:WEIGHT]]` (--head)."""
    where = f"--head {value}"
    name, sep, rest = str(value).partition("=")
    if not sep or not rest:
        raise ConfigError(f"{where}: write NAME=KIND[:COLUMN[:WEIGHT]], e.g. "
                          f"intent=text-classification:intent")
    parts = rest.split(":")
    if len(parts) > 3:
        raise ConfigError(f"{where}: too many ':' parts; write NAME=KIND[:COLUMN[:WEIGHT]]")
    kind, column, weight = (parts + [None, None])[:3]
    return Head(name=check_name(name.strip(), where), kind=check_kind(kind.strip(), where),
                column=(column or "").strip() or None,
                weight=_weight(weight, where) if weight not in (None, "") else 1.0)


def parse_section(section, where: str) -> list[Head]:
    """A recipe's `tasks:` mapping: name -> {kind, label_column, weight}."""
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: expected a mapping of head name to its kind, label_column "
                          f"and weight")
    heads = []
    for name, body in section.items():
        at = f"{where}.{name}"
        if not isinstance(body, dict):
            raise ConfigError(f"{at}: expected a mapping with kind (and label_column, weight)")
        extra = sorted(set(body) - {"kind", "label_column", "weight", *FILES})
        if extra:
            raise ConfigError(f"{at}: unknown key {extra[0]!r}; the keys are kind, "
                              f"label_column, weight, {', '.join(FILES)}")
        bad = next((k for k in FILES if k in body and not isinstance(body[k], str)), None)
        if bad:
            raise ConfigError(f"{at}.{bad}: expected a file name")
        if "kind" not in body:
            raise ConfigError(f"{at}: kind is missing; give the head's task, e.g. "
                              f"text-classification")
        column = body.get("label_column")
        if column is not None and not isinstance(column, str):
            raise ConfigError(f"{at}.label_column: expected a column name")
        heads.append(Head(name=check_name(name, at), kind=check_kind(body["kind"], at),
                          column=column, weight=_weight(body.get("weight", 1.0), at)))
    return check_heads(heads, where)


def section_files(section: dict) -> list[tuple[str, str, str]]:
    """(head, split, file) of a recipe's tasks: section: each head's own data files."""
    return [(name, split, body[split]) for name, body in section.items()
            for split in FILES if isinstance(body, dict) and body.get(split)]


def of_config(config: dict, where: str) -> list[Head]:
    """The heads a trained joint model's config.json records (untrusted: checked)."""
    raw = config.get(CONFIG_HEADS)
    if not isinstance(raw, list) or not raw or len(raw) > MAX_HEADS:
        raise ConfigError(f"{where}: {CONFIG_HEADS} must list 1..{MAX_HEADS} heads")
    heads = []
    for i, h in enumerate(raw):
        at = f"{where}: {CONFIG_HEADS}[{i}]"
        if not isinstance(h, dict):
            raise ConfigError(f"{at}: expected a mapping")
        labels = h.get("labels")
        if (not isinstance(labels, list) or not labels or len(labels) > MAX_LABELS
                or not all(isinstance(x, str) and 0 < len(x) <= 200 for x in labels)):
            raise ConfigError(f"{at}: labels must be 1..{MAX_LABELS} names")
        column = h.get("column")
        heads.append(Head(name=check_name(h.get("name"), at), kind=check_kind(h.get("kind"), at),
                          column=column if isinstance(column, str) else None,
                          weight=_weight(h.get("weight", 1.0), at), labels=tuple(labels)))
    return check_heads(heads, where)


def check_select(select: str | None, heads: list[Head], where: str = "--select") -> str:
    select = select or "mean"
    if select not in SELECT_RULES and select not in {h.name for h in heads}:
        raise ConfigError(f"{where} {select}: give mean, weighted or a head's name "
                          f"({', '.join(h.name for h in heads)})")
    return select
