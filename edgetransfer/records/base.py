"""A stage's JSON record (export.json, verify.json, ...) as a typed pydantic model.

Each kind of record is written by one function (`Record.write`) and read by one
(`Record.read`), so its keys, their types and their defaults are stated once, in its class,
and no reader keeps defaults of its own. Every file written carries `"schema_version": N`:

- a file without it is one edgetransfer wrote before records had versions: version 1, read
  as it is (its keys are the same);
- a version newer than this code's is refused in one line: a newer edgetransfer wrote it;
- a missing or mistyped field is refused in one line naming the file and the field.

Keys a record does not name are kept as written (a reader of the JSON, a CI script, sees
every key it saw before), and a record writes only the keys it was given or read: writing
what was read gives the same keys back, plus its schema_version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from ..artifacts import write_json
from ..errors import ConfigError
from ..untrusted import _json_type, clip, read_json, shorten

# files without a schema_version: those written before records had one (same keys)
UNVERSIONED = 1


class Part(BaseModel):
    """A part of a record: its named fields typed, any other key kept as written."""

    model_config = ConfigDict(extra="allow")


class Record(Part):
    """A JSON record a stage writes; a subclass names its FILE, FIX and SCHEMA_VERSION."""

    FILE: ClassVar[str] = ""  # its name in an artifact folder (export.json)
    FIX: ClassVar[str] = ""  # what a user does about a damaged one
    # the layout this code writes; bump it (and convert older layouts in `_upgrade`) when a
    # key changes meaning or type
    SCHEMA_VERSION: ClassVar[int] = 2

    schema_version: int

    @model_validator(mode="before")
    @classmethod
    def _written_now(cls, data):
        """A record built in code is of this code's layout (one read says its own)."""
        if isinstance(data, dict) and "schema_version" not in data:
            data = {**data, "schema_version": cls.SCHEMA_VERSION}
        return data

    @classmethod
    def _upgrade(cls, data: dict, version: int) -> dict:
        """A file of an older layout as this one (version 1: the keys are the same)."""
        return data

    @classmethod
    def read(cls, path: Path, *, label: str | None = None, error: type = ConfigError,
             fix: str | None = None):
        """The record in `path`, read bounded (size, nesting) and checked field by field;
        anything wrong is one `error` line naming the file (`label`) and the field."""
        label = label or str(path)
        fix = cls.FIX if fix is None else fix
        raw = read_json(Path(path), label=label, error=error, fix=fix)  # (an object)
        version = raw.get("schema_version", UNVERSIONED)
        if type(version) is not int or version < 1:
            raise error(f"{label}: the field 'schema_version' is {shorten(version, 40)}, not "
                        f"a whole number from 1{_then(fix)}")
        if version > cls.SCHEMA_VERSION:
            raise error(f"{label}: schema_version {version} is newer than this edgetransfer "
                        f"reads ({cls.FILE or 'this record'} up to version "
                        f"{cls.SCHEMA_VERSION}): a newer edgetransfer wrote it; upgrade "
                        f"edgetransfer (pip install -U edgetransfer) to read it")
        data = cls._upgrade({**raw, "schema_version": version}, version)
        try:
            return cls.model_validate(data)  # (not **data: a key may be any text)
        except ValidationError as e:
            raise error(f"{label}: {invalid(e)}{_then(fix)}") from None

    def dump(self) -> dict:
        """What `write` writes: the keys given or read, this code's schema_version first."""
        data = self.model_dump(exclude_unset=True)
        data.pop("schema_version", None)
        return {"schema_version": self.SCHEMA_VERSION} | data

    # Read as the JSON it is, too: code written against export.json/verify.json as dicts
    # (`report["accuracy"]`, `report["reference"]["metrics"]`, before they were records:
    # edgetransfer.api returned dicts) keeps working; the typed attributes are the API.
    def __getitem__(self, key: str) -> Any:
        if key == "schema_version":
            return self.SCHEMA_VERSION  # (as dump() writes it)
        return self.model_dump(include={key}, exclude_unset=True)[key]  # (that key alone)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def write(self, path: Path) -> None:
        """The record as JSON in `path`, atomically (a reader never sees half of it)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, self.dump())


def _then(fix: str) -> str:
    return f"; {fix}" if fix else ""


# pydantic's error types -> what the field should hold, as a JSON user says it
_EXPECTED = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number", "string_type": "a string",
    "bool_type": "a boolean", "bool_parsing": "a boolean", "dict_type": "an object",
    "model_type": "an object", "model_attributes_type": "an object", "list_type": "an array",
    "tuple_type": "an array", "finite_number": "a finite number"}


def invalid(e: ValidationError, under: tuple = ()) -> str:
    """A record's first invalid field in words: "the field 'a.0.b' is a string ('x'), not a
    number" (`under`: where the part validated sits in its record)."""
    err = e.errors(include_url=False)[0]
    where = ".".join(str(p) for p in (*under, *(err.get("loc") or ())))
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if not where:  # (a check of the record as a whole words its own field)
        return clip(msg, 200)
    kind = err.get("type")
    if kind == "missing":
        return f"the field {where!r} is missing"
    value = err.get("input")
    if kind in _EXPECTED:
        found = _json_type(value)
        found = found if found == "null" else f"{'an' if found[0] in 'aeio' else 'a'} {found}"
        return (f"the field {where!r} is {found} ({shorten(value, 60)}), not "
                f"{_EXPECTED[kind]}")
    return f"the field {where!r} ({shorten(value, 60)}): {clip(msg, 120)}"


def is_number(value: Any) -> bool:
    """A JSON number (not a boolean), NaN and infinities included."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def number_or_none(value: Any, where: str) -> float | None:
    """`value` checked to be a number or null, for a field a record cannot type by name
    (the task's metric, keyed by its name): else ValueError naming `where`."""
    if value is None or is_number(value):
        return value
    found = _json_type(value)
    raise ValueError(f"the field {where!r} is {'an' if found[0] in 'aeio' else 'a'} {found} "
                     f"({shorten(value, 60)}), not a number")


def checked(part: type[Part], value: Any, under: tuple) -> Part:
    """`value` as a `part`, for a field a record cannot type by name (one keyed by the
    task's metric): else ValueError naming where it sits."""
    try:
        return part.model_validate(value)
    except ValidationError as e:
        raise ValueError(invalid(e, under)) from None
