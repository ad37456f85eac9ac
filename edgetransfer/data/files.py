"""Read one labelled table (CSV, TSV, JSONL or Parquet) through `datasets`, after checks;
CoNLL-style column files (.txt, .conll, ...) through data.conll.

`datasets`/pandas/pyarrow report a bad byte or a ragged row as a long traceback with no
file and often no line. The pre-checks here (written by hand because no library gives them)
find the first problem and name the file, line and byte offset in one line, before any
model is loaded. They read the file once, as bytes, which is cheap next to training.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..errors import DataError
from ..untrusted import MAX_DEPTH, too_deep

# suffix -> (datasets builder, delimiter); .json is accepted as JSON Lines, as `datasets` does.
FORMATS = {
    ".csv": ("csv", ","),
    ".tsv": ("csv", "\t"),
    ".tab": ("csv", "\t"),
    ".jsonl": ("json", None),
    ".ndjson": ("json", None),
    ".json": ("json", None),
    ".parquet": ("parquet", None),
    ".pq": ("parquet", None),
    # one word a line, columns split by spaces or tabs (CoNLL-2003 ships .txt): data.conll
    ".txt": ("conll", None),
    ".conll": ("conll", None),
    ".iob": ("conll", None),
    ".iob2": ("conll", None),
    ".bio": ("conll", None),
}


def file_format(path: Path) -> tuple[str, str | None]:
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        known = ", ".join(sorted(FORMATS))
        raise DataError(
            f"{path}: unknown file type {path.suffix or '(none)'!r}; use one of {known}"
        ) from None


# path -> the file line on which each data row starts, recorded by check_file: pyarrow and
# pandas skip blank lines and join quoted multi-line fields, so row i is not line i + 1.
_ROW_LINES: dict[str, list[int]] = {}


def remember_row_lines(path: Path, lines: list[int]) -> None:
    """Record the line each data row of `path` starts on (for row_line)."""
    _ROW_LINES[str(Path(path).resolve())] = lines


def row_line(path: str, index: int) -> int | None:
    """The file line where data row `index` of a checked text file starts."""
    lines = _ROW_LINES.get(str(Path(path).resolve()))
    return lines[index] if lines and 0 <= index < len(lines) else None


def check_file(path: Path) -> None:
    """Fail with one line on the first unusable byte, line or row of a local data file."""
    if not path.exists():
        raise DataError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise DataError(f"{path}: is a folder; give a CSV, TSV, JSONL or Parquet file")
    builder, delimiter = file_format(path)
    try:
        raw = path.read_bytes()
    except PermissionError:
        raise DataError(f"{path}: permission denied; make the file readable") from None
    if not raw.strip():
        raise DataError(f"{path}: the file is empty; it needs "
                        + ("one word a line" if builder == "conll"
                           else "a header and at least one row"))
    if builder == "conll":
        return  # (data.conll checks as it reads)
    if builder == "parquet":
        _check_parquet(path, raw)
        return
    text = decode_utf8(path, raw)
    if builder == "json":
        lines = _check_jsonl(path, text)
    else:
        lines = _check_delimited(path, text, delimiter)
    remember_row_lines(path, lines)


def _check_parquet(path: Path, raw: bytes) -> None:
    """Binary and typed: whole (magic bytes at both ends, a readable footer), and not empty."""
    if not (raw.startswith(b"PAR1") and raw.endswith(b"PAR1")):
        raise DataError(f"{path}: is not a Parquet file or is truncated (no PAR1 marker at "
                        f"{'its end' if raw.startswith(b'PAR1') else 'its start'}); write or "
                        f"copy it again")
    import pyarrow.parquet as pq

    try:
        rows = pq.ParquetFile(io.BytesIO(raw)).metadata.num_rows
    except Exception as e:  # noqa: BLE001  (pyarrow's ArrowInvalid and friends)
        raise DataError(f"{path}: is a damaged Parquet file ({type(e).__name__}: "
                        f"{' '.join(str(e).split())[:160]}); write or copy it again") from None
    if rows == 0:
        raise DataError(f"{path}: holds no rows")


def decode_utf8(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1)
        bad = raw[e.start : e.start + 1].hex()
        raise DataError(
            f"{path}: line {line}, byte offset {e.start} (column {col + 1}): byte 0x{bad} is not "
            f"UTF-8; re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        ) from None


def _check_jsonl(path: Path, text: str) -> list[int]:
    rows = []
    # split on "\n" only: str.splitlines() also splits on U+2028 and friends, which JSON
    # allows raw inside strings
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line, object_pairs_hook=_no_duplicate_keys)
        except _DuplicateKey as e:
            raise DataError(f"{path}: line {number} names the key {e.args[0]!r} twice; keep "
                            f"one") from None
        except RecursionError:
            raise DataError(f"{path}: line {number} is nested too deeply to be a row; fix or "
                            f"remove that line") from None
        except json.JSONDecodeError as e:
            if number == 1 and line.lstrip().startswith("["):
                raise DataError(
                    f"{path}: is a JSON array; write one JSON object per line (JSON Lines)"
                ) from None
            raise DataError(
                f"{path}: line {number} is not valid JSON ({e.msg} at column {e.colno}); "
                f"fix or remove that line (truncated write?)"
            ) from None
        except ValueError as e:  # an integer of more than 4300 digits
            raise DataError(f"{path}: line {number} is not valid JSON ({str(e)[:80]}); fix "
                            f"or remove that line") from None
        if not isinstance(obj, dict):
            raise DataError(
                f"{path}: line {number} is a JSON {type(obj).__name__}, not an object; "
                f'write one object per line, e.g. {{"text": "...", "label": "..."}}'
            )
        for key, value in obj.items():
            if isinstance(value, (dict, list)) and too_deep([value]):
                # (json.loads stops near 1000 levels; Arrow, which reads the file next, at 64)
                raise DataError(f"{path}: line {number} is nested too deeply to be a row "
                                f"(more than {MAX_DEPTH} levels); fix or remove that line")
            if isinstance(value, str):
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    raise DataError(f"{path}: line {number}: {key!r} holds an unpaired UTF-16 "
                                    f"surrogate escape (\\ud800-\\udfff), which is not text; "
                                    f"fix the writer that produced it") from None
        rows.append(number)
    if not rows:
        raise DataError(f"{path}: holds no rows; it needs at least one JSON object per line")
    return rows


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs):
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen.add(key)
    return dict(pairs)


def _check_delimited(path: Path, text: str, delimiter: str) -> list[int]:
    # TSV as GLUE ships it is unquoted; a stray '"' must not swallow the next lines.
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    header = next(reader, None)
    if not header or not any(cell.strip() for cell in header):
        raise DataError(f"{path}: the first line should be a header naming the columns")
    names = [cell.strip() for cell in header]  # ("" is pandas' unnamed index column)
    twice = next((n for n in names if n and names.count(n) > 1), None)
    if twice is not None:
        raise DataError(f"{path}: the header names the column {twice!r} twice; name each "
                        f"column once")
    other = "\t" if delimiter == "," else ","
    if len(header) == 1 and other in header[0]:
        kind = "tab" if other == "\t" else "comma"
        raise DataError(
            f"{path}: the header has one column but contains {kind}s; the file looks "
            f"{kind}-separated: give it the suffix {'.tsv' if other == chr(9) else '.csv'}"
        )
    rows = []
    start = reader.line_num + 1  # the line the next record starts on
    for row in reader:
        if not row:
            start = reader.line_num + 1
            continue  # blank line
        if len(row) != len(header):
            # reader.line_num is the physical line where this record ended
            raise DataError(
                f"{path}: line {reader.line_num} has {len(row)} fields, the header has "
                f"{len(header)}; fix that row (an unquoted delimiter inside a text?)"
            )
        rows.append(start)
        start = reader.line_num + 1
    if not rows:
        raise DataError(f"{path}: has a header but no rows")
    return rows


def column_names(path: Path) -> list[str] | None:
    """A local data file's columns from its header (or first row) alone: cheap, for telling
    the task from the data before the file is read in full. None where it cannot tell; the
    full read (read_table) then names the problem. A folder is an image folder."""
    if path.is_dir():
        from .images import FOLDER_COLUMNS

        return list(FOLDER_COLUMNS)
    try:
        builder, delimiter = file_format(path)
        if builder == "conll":
            from . import conll

            return conll.columns_of(path)
        if builder == "parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        with open(path, encoding="utf-8-sig", newline="") as f:
            if builder == "json":
                first = next((line for line in f if line.strip()), None)
                row = json.loads(first) if first else None
                return list(row) if isinstance(row, dict) else None
            quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
            header = next(csv.reader(f, delimiter=delimiter, quoting=quoting), None)
            return [cell.strip() for cell in header] if header else None
    except (DataError, OSError, ValueError, csv.Error, RecursionError):
        return None


def read_table(path: Path):
    """Load a checked local file as a `datasets.Dataset` with every column as read."""
    import datasets

    check_file(path)
    builder, delimiter = file_format(path)
    if builder == "conll":
        from . import conll

        return conll.read(path)
    kwargs: dict = {}
    if builder == "csv":
        kwargs = {
            "delimiter": delimiter,
            # keep "NA", "null", "" as text: an empty text must be reported, not turned to NaN
            "na_filter": False,
            "quoting": csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL,
        }
    try:
        ds = datasets.load_dataset(
            builder, data_files={"data": str(path)}, split="data", **kwargs
        )
    except Exception as e:  # pyarrow/pandas errors: one line naming the file
        inner = e  # datasets wraps the reader's error in "An error occurred while generating"
        while inner.__cause__ is not None or inner.__context__ is not None:
            inner = inner.__cause__ or inner.__context__
        text = " ".join(str(inner).split()) or type(inner).__name__
        raise DataError(f"{path}: could not be read as {builder}: {text[:240]}") from e
    if len(ds) == 0:
        raise DataError(f"{path}: holds no rows")
    return ds
