"""Read CoNLL-style column files: one word a line, its columns separated by spaces or tabs,
a blank line between sentences, `-DOCSTART-` lines skipped (CoNLL-2003, OntoNotes exports).

Written by hand: `datasets` dropped its script loaders (conll2003 was one) and no kept
library reads the format with a line named on error. A file becomes a Dataset with one row
per sentence: "tokens" (the first column) and "column2", "column3", ... (the others, e.g.
POS, chunk and NER tags); the task picks its tag column from those. Each sentence's first
line is recorded, so an error names it (data.files.row_line).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError

DOCSTART = "-DOCSTART-"


def column(position: int) -> str:
    """The Dataset column of a file's 1-based column `position` (1 is the words)."""
    return "tokens" if position == 1 else f"column{position}"


def read(path: Path):
    """A checked CoNLL file as a Dataset (see the module's docstring)."""
    import datasets

    from . import files

    raw = path.read_bytes()
    text = files.decode_utf8(path, raw)
    rows, starts = _sentences(path, text)
    files.remember_row_lines(path, starts)
    return datasets.Dataset.from_dict(rows)


def _sentences(path: Path, text: str) -> tuple[dict, list[int]]:
    width = None  # the column count, set by the first word line
    columns: list[list] = []
    current: list[list[str]] = []
    starts, start, docstarts = [], 0, 0

    def close():
        if current:
            for i, col in enumerate(zip(*current)):
                columns[i].append(list(col))
            starts.append(start)
            current.clear()

    for number, line in enumerate(text.split("\n"), start=1):
        cells = line.split()
        if not cells:
            close()
            continue
        if cells[0] == DOCSTART:
            close()
            docstarts += 1
            continue
        if width is None:
            width = len(cells)
            columns = [[] for _ in range(width)]
        elif len(cells) != width:
            raise DataError(f"{path}: line {number} has {len(cells)} columns, the lines before "
                            f"have {width}; fix that line (a space inside a word?)")
        if not current:
            start = number
        current.append(cells)
    close()
    if not starts:
        what = ("only -DOCSTART- lines" if docstarts else "no word lines")
        raise DataError(f"{path}: holds {what}, no sentences; give one word a line with a "
                        f"blank line between sentences")
    return {column(i + 1): col for i, col in enumerate(columns)}, starts


def columns_of(path: Path) -> list[str] | None:
    """The Dataset columns a CoNLL file gives, from its first word line alone."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            for line in f:
                cells = line.split()
                if cells and cells[0] != DOCSTART:
                    return [column(i + 1) for i in range(len(cells))]
    except (OSError, ValueError):
        return None
    return None
