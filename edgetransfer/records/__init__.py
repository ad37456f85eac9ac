"""The JSON records stages write and read, typed: each kind written by one function and
read by one, with a schema version (base.py says how older and newer files are treated)."""

from . import references  # noqa: F401  (what a pipeline step makes, by folder: the wiring)
from .base import Record
from .export_report import ExportReport
from .verify_report import VerifyReport

# the record kind of each file name a stage writes (api.Artifact.read reads them as records)
BY_FILE = {kind.FILE: kind for kind in (ExportReport, VerifyReport)}

__all__ = ["BY_FILE", "ExportReport", "Record", "VerifyReport"]
