"""The errors a user can act on, and the exit codes they map to.

Anything raised as an ``EdgeTransferError`` is printed by the CLI as one line (no traceback
unless ``--debug``) and exits with the class's code. Anything else is a bug: exit 1.
"""

from __future__ import annotations

# Exit codes (documented in docs/errors.md).
EXIT_INTERNAL = 1  # a bug in edgetransfer: rerun with --debug and report it
EXIT_BAD_INPUT = 2  # data, model, settings or command line the user can fix (Click uses 2 too)
EXIT_CHECK_FAILED = 3  # a quality gate failed: merge check, output parity
EXIT_ENVIRONMENT = 4  # the machine lacks what was asked for: a device, a package, the network
EXIT_ACCURACY = 5  # verify: a candidate lost more task accuracy than allowed
EXIT_LATENCY = 6  # verify: latency regressed against the stored baseline
EXIT_BUDGET = 7  # search: no candidate met the budget (the report says which constraint)
EXIT_INTERRUPTED = 130  # Ctrl-C; a resumable run can be continued with --resume


class EdgeTransferError(Exception):
    """A problem the user can fix; the message says what and how, in one line.

    A message that starts with a setting as the command line spells it ("--keep-layers
    0,9: ...") names that setting; the layer the user typed it in may rename it
    (`name_setting`): the pipeline says "recipes/x.yaml: distill.keep_layers 0,9: ...".
    The library words every error once; only the name of the setting changes.
    """

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str = "", *args, remedy: str | None = None):
        super().__init__(message, *args)
        flag, _, rest = str(message).partition(" ")
        self.setting = self.detail = None
        if flag.startswith("--") and flag[2:3].isalpha() and rest:
            self.setting = flag[2:].rstrip(":").replace("-", "_")
            self.detail = (":" if flag.endswith(":") else "") + " " + rest
        self.named_as: str | None = None
        # an on/off setting the message ends telling the user to turn on ("pass
        # --allow-degenerate"), which the layer it was typed in may word otherwise
        self.remedy, self.remedy_as = remedy, None

    def name_setting(self, name: str) -> None:
        """Say the setting as the user typed it (a recipe key, say), not as a flag."""
        self.named_as = name

    def name_remedy(self, how: str) -> None:
        """Say how to turn the remedy on where the user works ("set x: true in r.yaml")."""
        self.remedy_as = how

    def __str__(self) -> str:
        text = (super().__str__() if self.setting is None or self.named_as is None
                else f"{self.named_as}{self.detail}")
        if self.remedy is None:
            return text
        flag = "--" + self.remedy.replace("_", "-")
        return f"{text}, or {self.remedy_as or f'pass {flag}'}"


def invalid_setting(error, given: dict) -> ConfigError:
    """A pydantic ValidationError of a stage's settings as one line that names the setting
    as its flag, with the value as given ("--batch-size 0: Input should be ..."; an item of
    a list is named by the list: "--depths a,1: ..."); the pipeline renames the flag to the
    recipe key (`name_setting`)."""
    from .untrusted import clip

    err = error.errors()[0]
    loc = list(err.get("loc") or ())
    field = str(loc[0]) if loc else ""
    msg = str(err.get("msg", "invalid"))
    for prefix in ("Value error, ", "Assertion failed, "):  # (a validator's own words)
        msg = msg.removeprefix(prefix)
    if not field:
        return ConfigError(msg)
    value = given.get(field, err.get("input", ""))
    if isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value)
    shown = clip(value) if value not in (None, "") else "''"
    return ConfigError(f"--{field.replace('_', '-')} {shown}: {msg}")


class DataError(EdgeTransferError):
    """A dataset file, column or row is unusable."""


class ModelError(EdgeTransferError):
    """A checkpoint, tokenizer or adapter cannot be used as asked."""


class ConfigError(EdgeTransferError):
    """A setting or combination of settings is invalid."""


class OutputError(EdgeTransferError):
    """The output folder cannot be written as asked (exists, interrupted run, ...)."""


class CheckFailed(EdgeTransferError):
    """A quality gate failed; the artifact was not written under its final name."""

    exit_code = EXIT_CHECK_FAILED


class EnvironmentProblem(EdgeTransferError):
    """The machine lacks a device, provider, package or network that was asked for."""

    exit_code = EXIT_ENVIRONMENT


class AccuracyDrop(CheckFailed):
    """verify: a candidate's task metric fell further below the reference's than allowed."""

    exit_code = EXIT_ACCURACY


class LatencyRegression(CheckFailed):
    """verify: a model became slower than the baseline allows."""

    exit_code = EXIT_LATENCY


class BudgetMissed(CheckFailed):
    """search: no candidate met every constraint of the budget; the report is written."""

    exit_code = EXIT_BUDGET


class TrainingDiverged(CheckFailed):
    """Training produced a NaN or infinite loss or weights; nothing of it was saved."""


class StorageError(EnvironmentProblem):
    """A write failed mid-run (disk full, folder turned read-only); earlier results are intact."""


# errno -> what a full disk or an unwritable folder is called, and the fix
_STORAGE = {
    28: "no space left on the device; free some space",  # ENOSPC
    122: "the disk quota is exceeded; free some space",  # EDQUOT
    30: "the file system is read-only; choose a writable folder",  # EROFS
    13: "permission denied; choose a folder you can write to (or read, for an input)",
    1: "operation not permitted; choose a folder you can write to (or read, for an input)",
}
# the same errors as the libraries word them when they do not raise OSError (safetensors'
# Rust writer, torch's zip writer)
_STORAGE_TEXT = {"No space left on device": 28, "StorageFull": 28, "Disk quota exceeded": 122,
                 "Read-only file system": 30, "ReadOnlyFilesystem": 30,
                 "PytorchStreamWriter failed writing": 28}


def storage_error(e: BaseException) -> StorageError | None:
    """A one-line StorageError for a full disk or unwritable folder hit mid-run, else None."""
    code = getattr(e, "errno", None) if isinstance(e, OSError) else None
    if code not in _STORAGE:
        text = str(e)
        code = next((c for words, c in _STORAGE_TEXT.items() if words in text), None)
    if code is None:
        return None
    name = getattr(e, "filename", None) if isinstance(e, OSError) else None
    return StorageError(
        f"{name or 'a write failed'}: {_STORAGE[code]}, then run the command again (finetune "
        f"and distill: with --resume, to continue from the last complete checkpoint); results "
        f"already under --out are untouched")
