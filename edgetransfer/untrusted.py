"""Reading what a user hands us: bounded JSON and YAML, and messages that echo it, capped.

A recipe, an artifact's records (artifact.json, export.json, verify.json, pipeline.json), a
latency baseline and a checkpoint's config.json are untrusted input. They are read here with
a cap on their size in bytes and their nesting depth, YAML also on its aliases and on the
values its aliases expand to (a "billion laughs" is a few hundred bytes that expand to 10**9
values), and nothing in them is run. Whatever exceeds a cap is refused in one line naming
the file (and the line, for YAML) and the fix: never a traceback, a hang or gigabytes of
memory. A message that echoes a value from such a file, or from the command line, shows at
most `MAX_ECHO` characters of it and says how long it was.

Each limit is stated once, here.
"""

from __future__ import annotations

import contextlib
import os
import reprlib
from pathlib import Path
from typing import Any

from .errors import ConfigError

# a manifest, report, baseline or config.json is kilobytes; 16 MiB is none a stage writes
MAX_RECORD_BYTES = 16 * 2**20
# tokenizer.json: the largest hub vocabularies (250k tokens with their merges) are ~35 MB
MAX_TOKENIZER_BYTES = 256 * 2**20
# a safetensors header: the format's own limit (safetensors refuses a larger one)
MAX_SAFETENSORS_HEADER = 100_000_000
# a recipe is a few KB of YAML (those in recipes/ are under 3 KB); pure-Python YAML parses
# ~20k values a second, so 64 KiB of them is about a second
MAX_RECIPE_BYTES = 64 * 2**10
# no record, config or recipe of ours nests beyond ~8 levels; Python's parsers recurse per level
MAX_DEPTH = 64
# a recipe shares a few settings by anchor (&name / *name); hundreds of aliases are a bomb
MAX_YAML_ALIASES = 100
# values a YAML document may expand to with its aliases followed (a recipe holds ~100)
MAX_YAML_NODES = 100_000
# characters of a user's value a message shows (then "... (N characters)")
MAX_ECHO = 200
# characters of an error line the CLI prints (then a note of how much was cut)
MAX_MESSAGE = 2000


# --- echoing a value in a message

_repr = reprlib.Repr()
_repr.maxlevel, _repr.maxdict, _repr.maxlist, _repr.maxtuple = 3, 6, 6, 6
_repr.maxset = _repr.maxfrozenset = _repr.maxdeque = _repr.maxarray = 6
_repr.maxstring = _repr.maxother = _repr.maxlong = MAX_ECHO


def shorten(value: Any, limit: int = MAX_ECHO) -> str:
    """`value` as repr() shows it, at most `limit` characters of it (and its length, when
    cut): a 1 MB string or a 100,000-item list costs one short line, in bounded time."""
    if isinstance(value, str):
        return _one_line(repr(value)) if len(value) <= limit else \
            f"{value[:limit]!r}... ({len(value):,} characters)"
    try:
        text = _repr.repr(value)
    except ValueError:  # an int of more than 4300 digits has no repr()
        text = f"<a {type(value).__name__} too long to show>"
    cut = len(text) > limit
    if cut:
        text = text[:limit] + "..."
    if isinstance(value, (list, tuple, dict, set)) and (cut or len(value) > _repr.maxlist):
        text += f" ({len(value):,} items)"
    return _one_line(text)


def clip(text: str, limit: int = MAX_ECHO) -> str:
    """Text shown as it is (no quotes), cut to `limit` characters, on one line."""
    text = str(text)
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text):,} characters)"
    return _one_line(text)


_CONTROL = None


def _one_line(text: str) -> str:
    """Line breaks and other control characters (a terminal's escape sequences) as escapes:
    a value from a file cannot break a message's line or drive the terminal."""
    global _CONTROL
    if _CONTROL is None:
        import re

        _CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
    return _CONTROL.sub(lambda m: {"\n": "\\n", "\r": "\\r", "\t": "\t"}.get(
        m.group(), m.group().encode("unicode_escape").decode("ascii")), text)


def one_line(message: str, limit: int = MAX_MESSAGE) -> str:
    """An error message as the CLI prints it: one line, at most `limit` characters (the
    last resort for a message that echoes more of its input than it should)."""
    text = str(message)
    total = len(text)
    text = _one_line(text[:limit + 1])
    if total > limit or len(text) > limit:
        text = f"{text[:limit]}... ({total - limit:,} more characters cut)" if total > limit \
            else f"{text[:limit]}... (cut)"
    return text


# --- files

def read_bytes(path: Path, limit: int, *, label: str | None = None, what: str = "file",
               error: type = ConfigError, fix: str = "") -> bytes:
    """A file's bytes, refused (one line) when it holds more than `limit`; read with a
    bound, so a file that grows or lies about its size (a pipe, /proc) cannot fill memory."""
    import stat

    label = label or str(path)
    try:
        mode = os.stat(path).st_mode
        if stat.S_ISDIR(mode):
            raise error(f"{label}: is a folder, not a {what}")
        if not stat.S_ISREG(mode):  # a pipe or a device would block, or never end
            raise error(f"{label}: is not a regular file (a pipe or a device?); give a file")
        with open(path, "rb") as f:
            raw = f.read(limit + 1)
    except OSError as e:
        raise error(f"{label}: cannot be read ({e.strerror or type(e).__name__})"
                    f"{_fix(fix)}") from None
    if len(raw) > limit:
        raise error(f"{label}: is larger than the {_size(limit)} a {what} may be; is it the "
                    f"right file?{_fix(fix, ' ')}")
    return raw


def read_json(path: Path, *, label: str | None = None, what: str = "JSON file",
              error: type = ConfigError, fix: str = "", expect: type | None = dict,
              limit: int = MAX_RECORD_BYTES, **loads) -> Any:
    """A JSON file, read with a bound on its size and nesting; its top level must be an
    `expect` (None: anything). Every problem is one `error` line naming the file."""
    label = label or str(path)
    raw = read_bytes(path, limit, label=label, what=what, error=error, fix=fix)
    return parse_json(raw, label=label, error=error, fix=fix, expect=expect, **loads)


def parse_json(raw: bytes | str, *, label: str, error: type = ConfigError, fix: str = "",
               expect: type | None = dict, **loads) -> Any:
    import json

    try:
        text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as e:
        raise error(f"{label}: is not UTF-8 text (byte {e.start}){_fix(fix)}") from None
    try:
        value = json.loads(text, **loads)
    except RecursionError:
        raise error(f"{label}: nests deeper than {MAX_DEPTH} levels{_fix(fix)}") from None
    except json.JSONDecodeError as e:
        raise error(f"{label}: is not valid JSON (line {e.lineno}, column {e.colno}: "
                    f"{e.msg}){_fix(fix)}") from None
    except ValueError as e:  # an integer of more than 4300 digits, say
        raise error(f"{label}: is not valid JSON ({clip(e, 120)}){_fix(fix)}") from None
    if _depth(value) > MAX_DEPTH:
        raise error(f"{label}: nests deeper than {MAX_DEPTH} levels{_fix(fix)}")
    if expect is not None and not isinstance(value, expect):
        raise error(f"{label}: holds a JSON {_json_type(value)}, not {_json_name(expect)}"
                    f"{_fix(fix)}")
    return value


def too_deep(value) -> bool:
    """Parsed JSON nests deeper than MAX_DEPTH (a data row, say)."""
    return _depth(value) > MAX_DEPTH


def _depth(value) -> int:
    """Nesting depth of parsed JSON, without recursion (it stops past MAX_DEPTH)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        children = v.values() if isinstance(v, dict) else v if isinstance(v, list) else None
        if children is None:
            continue
        deepest = max(deepest, d)
        if d > MAX_DEPTH:
            return d
        stack.extend((c, d + 1) for c in children if isinstance(c, (dict, list)))
    return deepest


def _json_type(value) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _json_name(expect) -> str:
    return {dict: "an object", list: "an array", str: "a string", int: "an integer",
            float: "a number"}.get(expect, getattr(expect, "__name__", "?"))


_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number",
               float: "number", type(None): "null"}


def get_field(record: dict, key: str, expect: type | tuple, *, label: str,
          error: type = ConfigError, fix: str = "", default: Any = ...) -> Any:
    """record[key], checked to be an `expect` (a bool is no number); a missing or null key
    gives `default` where one is given. Else one line naming the file and the field."""
    if record.get(key) is None and (default is not ... or key not in record):
        if default is ...:
            raise error(f"{label}: the field {key!r} is missing{_fix(fix)}")
        return default
    value = record[key]
    names = expect if isinstance(expect, tuple) else (expect,)
    if not isinstance(value, names) or (isinstance(value, bool) and bool not in names):
        found = _json_type(value)
        found = found if found == "null" else f"{'an' if found[0] in 'aeio' else 'a'} {found}"
        raise error(f"{label}: the field {key!r} is {found} ({shorten(value, 60)}), not "
                    f"{' or '.join(_json_name(n) for n in names)}{_fix(fix)}")
    return value


@contextlib.contextmanager
def fields_of(label: str, *, error: type = ConfigError, fix: str = ""):
    """Reading a record's fields: a field missing or of another type (KeyError, TypeError,
    ...) becomes one line naming the file, not a traceback."""
    try:
        yield
    except KeyError as e:
        raise error(f"{label}: the field {shorten(e.args[0] if e.args else '?', 80)} is missing"
                    f"{_fix(fix)}") from None
    except (TypeError, AttributeError, IndexError, ValueError, ZeroDivisionError,
            OverflowError) as e:
        raise error(f"{label}: a field is missing or of the wrong type ({type(e).__name__}: "
                    f"{clip(e, 120)}){_fix(fix)}") from None


def _fix(fix: str, sep: str = "; ") -> str:
    return f"{sep}{fix}" if fix else ""


def _size(n: int) -> str:
    for unit, size in (("MiB", 2**20), ("KiB", 2**10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n:,} bytes"


# --- YAML

class TooLarge(ValueError):
    """A YAML document beyond a cap; `line` is where (1-based), when known."""

    def __init__(self, message: str, mark=None, fix: str = ""):
        super().__init__(message)
        self.line = mark.line + 1 if mark is not None else None
        self.fix = fix


_ALIAS_FIX = "write the values out instead of nesting aliases (*name)"


def _loader():
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        """SafeLoader (plain data, no Python tags) that counts aliases and nesting while it
        composes, and refuses before anything is expanded or constructed."""

        def __init__(self, stream):
            super().__init__(stream)
            self._depth = 0
            self._aliases = 0
            self._nodes = 0

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                self._aliases += 1
                if self._aliases > MAX_YAML_ALIASES:
                    raise TooLarge(f"the document uses more than {MAX_YAML_ALIASES} aliases "
                                   f"(*name)", self.peek_event().start_mark, _ALIAS_FIX)
                return super().compose_node(parent, index)
            self._nodes += 1
            if self._nodes > MAX_YAML_NODES:
                raise TooLarge(f"the document holds more than {MAX_YAML_NODES:,} values",
                               self.peek_event().start_mark, "a recipe holds a few hundred")
            self._depth += 1
            try:
                if self._depth > MAX_DEPTH:
                    raise TooLarge(f"the document nests deeper than {MAX_DEPTH} levels",
                                   self.peek_event().start_mark, "flatten it")
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

    return BoundedLoader


def _check_expansion(root) -> None:
    """Refuse a node graph whose aliases expand past MAX_YAML_NODES values or MAX_DEPTH
    levels, or refer to themselves; linear in the distinct nodes (sizes are memoised)."""
    import yaml

    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (values expanded, depth expanded)
    on_path: set[int] = set()

    def children(node):
        if isinstance(node, yaml.MappingNode):
            return [n for pair in node.value for n in pair]
        if isinstance(node, yaml.SequenceNode):
            return node.value
        return []

    def visit(node, depth):
        key = id(node)
        if key in sizes:
            if depth + sizes[key][1] - 1 > MAX_DEPTH:
                raise TooLarge(f"the document nests deeper than {MAX_DEPTH} levels once its "
                               f"aliases are followed", node.start_mark, _ALIAS_FIX)
            return sizes[key]
        if key in on_path:
            raise TooLarge("an alias (*name) refers to the value it is part of", node.start_mark,
                           "a value cannot hold itself")
        if depth > MAX_DEPTH:
            raise TooLarge(f"the document nests deeper than {MAX_DEPTH} levels once its "
                           f"aliases are followed", node.start_mark, _ALIAS_FIX)
        on_path.add(key)
        total, deepest = 1, 0
        for child in children(node):
            n, d = visit(child, depth + 1)
            total, deepest = total + n, max(deepest, d)
            if total > MAX_YAML_NODES:
                raise TooLarge(f"its aliases (*name) expand the document to more than "
                               f"{MAX_YAML_NODES:,} values", child.start_mark, _ALIAS_FIX)
        on_path.discard(key)
        sizes[key] = (total, deepest + 1)
        return sizes[key]

    visit(root, 1)


def _unshare(value):
    """The constructed document as a tree: an alias becomes a copy of what it names, so an
    override of one (export.0.name=...) does not change the others. Bounded by the checks
    above (at most MAX_YAML_NODES values, MAX_DEPTH levels)."""
    if isinstance(value, dict):
        return {k: _unshare(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unshare(v) for v in value]
    return value


def load_yaml(text: str) -> Any:
    """One YAML document as plain data (yaml.safe_load's types, a tree: no value shared by
    two aliases), within the caps above.

    Raises TooLarge past a cap, and yaml.YAMLError (ConstructorError for a Python tag)
    for what is not plain YAML."""
    loader = _loader()(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        return _unshare(loader.construct_document(node))
    except RecursionError:
        raise TooLarge(f"the document nests deeper than {MAX_DEPTH} levels", None,
                       "flatten it") from None
    except ValueError as e:  # (not a YAMLError) an integer of more than 4300 digits, say
        if isinstance(e, TooLarge):
            raise
        what = "a number has more than 4300 digits" if "digits" in str(e) else \
            f"a value cannot be read ({clip(e, 60)})"
        raise TooLarge(what, None, "write a plain number or text") from None
    finally:
        loader.dispose()
