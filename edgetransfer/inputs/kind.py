"""What an input kind is: one frozen record of what a task's inputs are (text, words, an
image), owning everything that differs by them outside the task's own functions.

- its columns: the settings its data is read with (the columns naming its inputs and their
  gold labels, and the reader's limits). Every stage that reads data takes them as config
  fields, so they are each a CLI option and a key of a recipe's data section
  (options.ColumnOptions is made from the registered kinds' columns);
- its reader in the bundled runtime (bundle/inputs.py `Reader`: what input_spec.json says
  predict.py reads, the files and packages a bundle carries for it);
- what package times the runtime on, what `device` sends over SSH, and whether distill may
  cache a teacher's outputs keyed by its rows.

A new kind is a module that builds one `InputKind` and registers it (edgetransfer.inputs),
before options.py is first imported (its columns become fields of every data-reading
config then); a task names it in `Task.inputs`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import Field


@dataclass(frozen=True)
class Column:
    """One setting of reading data: `name` is the config field (and --name-with-dashes the
    CLI option), `annotation` its type, `info` the pydantic Field (default, bounds and the
    description that is the --help)."""

    name: str
    annotation: Any
    info: Any

    @classmethod
    def of(cls, name: str, annotation: Any, default: Any = None, **info) -> "Column":
        return cls(name, annotation, Field(default, **info))


# The gold label column of a kind whose examples carry one label each (a text's class, an
# image's): one column, whichever kind of input it sits beside.
LABEL = Column.of("label_column", str | None, description="Label column, integer ids or names "
                  "[default: the first of label, labels, intent, class].")


@dataclass(frozen=True)
class InputKind:
    name: str  # "text", "text-pair", "words", "image": docs and error messages
    summary: str  # one line: what an example's input is
    reader: Any  # bundle.inputs.Reader: how the bundled runtime reads these inputs
    columns: tuple[Column, ...]  # the settings its data is read with (see above)
    # (package's config, task, a scratch folder) -> what the bundled runtime is timed on:
    # texts or (text, pair) tuples, image paths (written to scratch where the data holds
    # bytes); --latency-data's rows read as the task reads them, else the task's probe rows
    latency_inputs: Callable[[Any, Any, Any], list]
    # (task, --latency-data or None) -> what predict.py on a device is timed on; None: not
    # measured over SSH (its inputs would have to travel with the bundle)
    device_inputs: Callable[[Any, Any], list] | None = None
    # input_spec.json "task" fields beside the reader's name (e.g. whether pairs are taken)
    runtime: dict = field(default_factory=dict)
    # distill --teacher-cache keys the teacher's outputs by the rows' token ids; rows without
    # them (decoded images) would need their bytes hashed: computed afresh instead
    teacher_cache: bool = True

    def spec_task(self) -> dict:
        """input_spec.json "task" fields this kind decides: its reader, then `runtime`."""
        return {"inputs": self.reader.name, **self.runtime}
