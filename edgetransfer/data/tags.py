"""Entity tags in the IOB scheme: checked, IOB1 repaired into IOB2, named in a fixed order.

IOB2 (CoNLL-2003 as shipped, `datasets`' conll2003): every entity starts with B-TYPE and
continues with I-TYPE. IOB1 (the original CoNLL-2003 release and many older corpora) starts
an entity with I-TYPE and uses B-TYPE only between two adjacent entities of one type. The
repair, written by hand (no kept library converts; seqeval only reads): an I-TYPE that does
not continue a TYPE entity becomes B-TYPE. That is how conlleval (and seqeval's default,
non-strict mode) reads a stray I-TYPE, so repaired gold data holds the entities the original
meant. (Predictions are scored strictly, as they are: a predicted stray I-TYPE is no entity.)
"""

from __future__ import annotations

import re

from ..errors import DataError

OUTSIDE = "O"
# B-TYPE or I-TYPE; TYPE is any run of non-space characters (PER, LOC, B-MISC's MISC, ...)
TAG = re.compile(r"^(B|I)-(\S+)$")


def check(tag, where: str, flag: str = "--tag-column") -> str:
    """`tag` as an IOB string tag; anything else is refused, naming where it is."""
    if not isinstance(tag, str) or not (tag == OUTSIDE or TAG.match(tag)):
        raise DataError(f"{where}: tag {tag!r} is not an IOB tag (O, B-TYPE or I-TYPE); is "
                        f"{flag} the entity column?")
    return tag


def to_iob2(tags: list[str]) -> tuple[list[str], list[int]]:
    """(the tags in IOB2, the positions repaired): I-X after O or another type -> B-X."""
    out, repaired, previous = [], [], OUTSIDE
    for i, tag in enumerate(tags):
        m = TAG.match(tag)
        if m and m.group(1) == "I" and previous[2:] != m.group(2):
            tag = f"B-{m.group(2)}"
            repaired.append(i)
        out.append(tag)
        previous = tag
    return out, repaired


def label_order(tags: set[str]) -> list[str]:
    """The head's label order for a set of tags: O first, then by type, B before I (the same
    data always gives the same ids)."""
    rest = sorted((t for t in tags if t != OUTSIDE), key=lambda t: (t[2:], t[0]))
    return [OUTSIDE] + rest


def inside_of(label_names: list[str]) -> list[int]:
    """For each label id, the id its continuation sub-tokens take under
    --label-all-subtokens: B-X -> I-X (when the model has I-X), the others unchanged."""
    index = {name: i for i, name in enumerate(label_names)}
    return [index.get(f"I-{name[2:]}", i) if name.startswith("B-") else i
            for i, name in enumerate(label_names)]
