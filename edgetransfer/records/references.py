"""What a pipeline step makes, as the steps after it find it: typed references to folders.

A stage's `plan()` says what each of its steps will make (`makes`), before anything runs;
the later stages' `plan()` ask the wiring for a kind (`w.newest(Checkpoint)`,
`w.all(OnnxModel)`), never for a string key. The registry's entry of each stage names the
kinds it takes and makes, so the pipeline refuses a recipe whose step would lack its input
before the first step runs. A reference holds where, not what: the step may not have run
yet (its figures are in its own record files, read once it has).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict


class Reference(BaseModel):
    """A step's artifact folder (the one its artifact.json describes)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    folder: Path


class Checkpoint(Reference):
    """A trained PyTorch model (save_pretrained): what distill, export and verify start from.
    Asked for as Checkpoint, the newest of either kind below."""


class Teacher(Checkpoint):
    """The fine-tuned model: the reference the students are judged against."""


class Student(Checkpoint):
    """A distilled student."""


class OnnxModel(Reference):
    """One exported variant (model.onnx and its export.json), under its recipe name."""

    variant: str


class Verification(Reference):
    """verify.json: the gates' evidence a bundle carries."""

    file: Path


class Bundle(Reference):
    """A device bundle (and its .tar.gz beside it)."""
