"""Class labels as a user writes them (ids or names) -> the ids a model's head outputs.

One set of rules for every task whose targets are classes: a sentence's label, a token's tag.
Rows are named the way a user finds them in the file (data.splits.row_name).
"""

from __future__ import annotations

import math

from ..errors import DataError
from .splits import row_name

# Label column names tried, in order, when the user names none (GLUE, HF datasets conventions).
LABEL_COLUMNS = ("label", "labels", "intent", "class")
# The label of a row (or token) without a gold one: no loss on it (torch's ignore_index
# default); teacher-labelled unlabelled text for distillation carries it.
IGNORE = -100


def normalise(v, where: str):
    """int for integral numbers, str for text; anything else is refused."""
    if isinstance(v, bool) or v is None or (isinstance(v, float) and math.isnan(v)):
        raise DataError(f"{where}: label {v!r} is missing or not a class; fill it in")
    if isinstance(v, float):
        if not v.is_integer():
            raise DataError(f"{where}: label {v!r} is not a whole number; use class ids or names")
        v = int(v)
    if isinstance(v, int):
        if v < 0:
            raise DataError(f"{where}: label {v} is negative; class ids start at 0")
        return v
    if isinstance(v, str):
        s = v.strip()
        if not s:
            raise DataError(f"{where}: label is empty; fill it in")
        return s
    raise DataError(f"{where}: label {v!r} is a {type(v).__name__}; use an integer or a name")


def names_for(train_labels: list, source: str, model_labels: list[str] | None,
              given_names: list[str] | None) -> list[str]:
    """The class names, in id order.

    String labels: the checkpoint's own order when it already has a head (ids must not move),
    else sorted, so the same data always gives the same ids. Integer labels: ids are kept;
    names come from --label-names, the checkpoint, or the ids themselves.
    """
    kinds = {type(v) for v in train_labels}
    if len(kinds) > 1:
        i = next(i for i, v in enumerate(train_labels) if type(v) is not type(train_labels[0]))
        raise DataError(
            f"{row_name(source, i)}: labels mix numbers and names ({train_labels[0]!r} and "
            f"{train_labels[i]!r}); use one kind throughout"
        )
    if model_labels and given_names and list(given_names) != list(model_labels):
        raise DataError(
            f"--label-names {','.join(given_names)}: the checkpoint's head already names its "
            f"classes {list(model_labels)}; drop --label-names, or pass --new-head to replace "
            f"the head"
        )
    if kinds == {str}:
        seen = sorted(set(train_labels))
        if model_labels:
            return list(model_labels)
        if given_names:
            missing = [s for s in seen if s not in given_names]
            if missing:
                raise DataError(f"{source}: labels {missing} are not in --label-names")
            return list(given_names)
        return seen
    n = max(train_labels) + 1
    if model_labels:
        return list(model_labels)
    if given_names:
        if len(given_names) < n:
            raise DataError(
                f"{source}: label ids go up to {n - 1} but --label-names gives {len(given_names)}"
                f" names; give one name per id"
            )
        return list(given_names)
    return [str(i) for i in range(n)]


def encode(values, source: str, names: list[str], fixed_by_model: bool,
           trained: bool = False) -> list[int]:
    """Label ids of every row. `trained`: the model is used as it is (export, verify), so
    --new-head is no way out."""
    index = {name: i for i, name in enumerate(names)}
    ids = []
    for i, v in enumerate(values):
        where = row_name(source, i)
        v = normalise(v, where)
        if isinstance(v, str):
            if v not in index:
                hint = (
                    f"the model's classes are {names}; is this data for another task?"
                    if trained else
                    f"the checkpoint's classes are {names}; pass --new-head to replace its head"
                    if fixed_by_model
                    else f"train has {names}; add examples of it to train or drop the row"
                )
                raise DataError(f"{where}: label {v!r} is not a known class; {hint}")
            ids.append(index[v])
        else:
            if v >= len(names):
                hint = (
                    f"the model has {len(names)} classes (ids 0..{len(names) - 1}); is this "
                    f"data for another task?" if trained else
                    f"the checkpoint's head has {len(names)} classes; pass --new-head to replace it"
                    if fixed_by_model
                    else f"train only has ids 0..{len(names) - 1}"
                )
                raise DataError(f"{where}: label {v} does not fit the model; {hint}")
            ids.append(v)
    return ids


def head_config(label_names: list[str]) -> dict:
    """The config fields of a fresh head over these classes (a sentence's, a token's)."""
    id2label = dict(enumerate(label_names))
    return dict(num_labels=len(label_names), id2label=id2label,
                label2id={v: k for k, v in id2label.items()})


def config_names(config: dict, where: str) -> list[str]:
    """The output names a trained model's config.json gives; ValueError when it has none."""
    names = id2label_names(config.get("id2label"), where)
    if not names:
        raise ValueError(f"{where}: config.json has no id2label")
    return names


def id2label_names(id2label, where: str) -> list[str]:
    """Class names in id order from a config's id2label: the one parser of it (backbones,
    runners and package all read labels here). ValueError when the ids are not the integers
    0..n-1; each caller words it as its own error."""
    if id2label is None or id2label == {}:
        return []
    try:
        if not isinstance(id2label, dict):
            raise TypeError
        ids = sorted(int(k) for k in id2label)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: id2label must map class ids (0, 1, ...) to names; it is "
                         f"{str(id2label)[:80]}") from None
    if ids != list(range(len(ids))):
        from ..untrusted import shorten

        raise ValueError(f"{where}: id2label's ids are {shorten(ids)}; they must be 0..N-1")
    by_id = {int(k): v for k, v in id2label.items()}
    return [str(by_id[i]) for i in ids]
