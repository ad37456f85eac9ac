"""The errors a user can act on, and the exit codes they map to.

Anything raised as an ``EdgeTransferError`` is printed by the CLI as one line (no traceback
unless ``--debug``) and exits with the class's code. Anything else is a bug: exit 1.
"""

from __future__ import annotations

# Exit codes (documented in README.md, "Exit codes").
EXIT_INTERNAL = 1  # a bug in edgetransfer: rerun with --debug and report it
EXIT_BAD_INPUT = 2  # data, model, settings or command line the user can fix (Click uses 2 too)
EXIT_CHECK_FAILED = 3  # a quality gate failed: merge check, output parity
EXIT_ENVIRONMENT = 4  # the machine lacks what was asked for: a device, a package, the network
EXIT_ACCURACY = 5  # verify: a candidate lost more task accuracy than allowed
EXIT_LATENCY = 6  # verify: latency regressed against the stored baseline
EXIT_INTERRUPTED = 130  # Ctrl-C; a resumable run can be continued with --resume


class EdgeTransferError(Exception):
    """A problem the user can fix; the message says what and how, in one line."""

    exit_code = EXIT_BAD_INPUT


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
