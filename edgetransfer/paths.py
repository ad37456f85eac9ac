"""Whether two paths name one file or folder, however each is spelt.

A path from the command line or a recipe may reach a file by another spelling than the one
it is compared with: `data/./eval.jsonl`, `../x/data/eval.jsonl`, a symlink, a hard link, a
bind mount. Every guard that must know "is this the same file" (the eval data inside the
pruning corpus, an --out that would replace an input, two outputs of one run) asks here:
by the file's identity (its device and inode) where it exists, by its fully resolved path
where it does not exist yet (an output about to be written).

"Inside" follows what deleting or replacing a folder would touch: a path reached through a
symlink is judged where the link points (removing the folder removes the link, not its
target), and a hard link to a file in the folder is a file of its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

PathLike = str | os.PathLike


def resolved(path: PathLike) -> Path:
    """`path` made absolute with every symlink and `..` resolved (as far as it exists)."""
    try:
        return Path(os.path.realpath(path))
    except (OSError, ValueError):  # (a loop of links, a NUL byte: judged as written)
        return Path(os.path.abspath(path))


def identity(path: PathLike) -> tuple:
    """A key equal for every spelling of one file or folder: (device, inode) where it
    exists, else its resolved path."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return ("path", str(resolved(path)))
    if st.st_ino == 0:  # (a file system without inode numbers: the path is all there is)
        return ("path", str(resolved(path)))
    return ("inode", st.st_dev, st.st_ino)


def same(a: PathLike, b: PathLike) -> bool:
    """`a` and `b` name the same file or folder (os.path.samefile, also for paths that do
    not exist yet)."""
    return identity(a) == identity(b)


def find_same(path: PathLike, others: Iterable[PathLike]):
    """The first of `others` that is the same file as `path`, else None."""
    key = identity(path)
    return next((o for o in others if identity(o) == key), None)


def first_repeat(paths: Iterable[PathLike]):
    """(earlier, later): the first two of `paths` that name one file, else None."""
    seen: dict[tuple, PathLike] = {}
    for p in paths:
        key = identity(p)
        if key in seen:
            return seen[key], p
        seen[key] = p
    return None


def inside(path: PathLike, folder: PathLike) -> bool:
    """`path` is `folder` or lies somewhere under it."""
    target = identity(folder)
    here = resolved(path)
    return any(identity(p) == target for p in (here, *here.parents))


def overlaps(a: PathLike, b: PathLike) -> bool:
    """One of `a`, `b` is the other or lies inside it: writing or removing one touches the
    other."""
    return inside(a, b) or inside(b, a)
