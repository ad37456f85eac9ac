"""Setting groups shared by the stages: the data's columns, data, training, output, task.

A stage's config is these groups plus its own fields; each description is the CLI help,
written once here. ColumnOptions is also the recipe's data section's columns and what the
pipeline wires into every step that reads data: it is made from the input kinds' columns
(edgetransfer/inputs), so a task that reads another column declares it in its input kind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

# Upper bounds of the counts whose excess costs unbounded time or memory rather than failing.
# Threads: no CPU has more cores, every thread is one onnxruntime or torch starts (the
# bundle's runtime holds input_spec.json to the same bound)
from .bundle.runtime.predict import MAX_THREADS  # noqa: E402,F401

# per device per step: a batch beyond the data is the whole data at once (its memory)
MAX_BATCH = 4096
# a training run of more passes over its data is a typo that would run for days
MAX_EPOCHS = 1000
# an image side: the largest image models take ~600 px; a side of 10**5 would be 10**10
# pixels an image (the bundle's runtime holds input_spec.json to the same bound)
from .bundle.runtime.predict import MAX_SIDE as MAX_IMAGE_SIZE  # noqa: E402

# the seed numpy, torch and random all take: 0 .. 2**32 - 1
MAX_SEED = 2**32 - 1
# timed calls of one measurement: a million at a millisecond is a quarter of an hour
MAX_REQUESTS = 1_000_000
# fresh processes timed to their first answer, each seconds long
MAX_COLD_STARTS = 1000


def _column_options() -> type[BaseModel]:
    """Which columns of the data files hold what, and how they are read: the columns of
    every registered input kind (edgetransfer/inputs), each a field declared by its kind."""
    from . import inputs

    return create_model("ColumnOptions", __config__=ConfigDict(extra="forbid"),
                        __doc__="Which columns of the data files hold what; found by name "
                        "when not given.", __module__=__name__,
                        **{c.name: (c.annotation, c.info) for c in inputs.columns()})


ColumnOptions = _column_options()
COLUMNS = frozenset(ColumnOptions.model_fields)


class DataOptions(ColumnOptions):
    train: str = Field(description="Training data: a CSV/TSV/JSONL/Parquet file (a CoNLL "
                       "file for tagging; a folder of class folders of images, or a table "
                       "of image paths, for images), or a hub dataset id ('name' or "
                       "'name:config') when online.")
    validation: str | None = Field(None, description="Validation data; when absent, carved "
                                   "from train (see --validation-fraction).")
    test: str | None = Field(None, description="Optional test data, evaluated once at the end.")
    label_names: list[str] | None = Field(None, description="Names for integer label ids, in id "
                                          "order, comma-separated (e.g. negative,positive).")
    train_sample: int | None = Field(None, ge=1, description="Train on a seeded random sample "
                                     "of this many rows (all rows are still checked).")
    validation_fraction: float = Field(0.1, gt=0, lt=1, description="Share of train carved out "
                                       "for validation when --validation is not given.")
    max_length: int = Field(128, ge=8, description="Tokens per text (pair); longer ones are "
                            "truncated and counted (tagging words: split into overlapping "
                            "windows, never cut). 128 covers >99% of SST-2, the intents and "
                            "CoNLL-2003.")
    refuse_long: bool = Field(False, description="Fail instead of truncating texts longer than "
                              "--max-length (or, tagging words, splitting them into windows).")
    image_size: int | None = Field(None, ge=8, le=MAX_IMAGE_SIZE, description="Image "
                                   "classification: the side "
                                   "in pixels images are resized to (square), saved in the "
                                   "checkpoint's image processor [default: the processor's; "
                                   "efficientnet-lite0: 224, -lite1: 240, -lite2: 260].")
    label_all_subtokens: bool = Field(False, description="Token classification: train on every "
                                      "sub-token of a word (B-X's continuations as I-X), not "
                                      "only the first; evaluation still reads the first.")
    allow_pickle: bool = Field(False, description="Allow pickle weights (pytorch_model.bin); "
                               "they are still loaded weights-only.")
    trust_remote_code: bool = Field(False, description="Run code shipped with a checkpoint. "
                                    "Only for authors you trust.")

    @field_validator("label_names", mode="before")
    @classmethod
    def _split_commas(cls, v):
        return comma_list(v)


class TrainOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: float = Field(5, gt=0, le=MAX_EPOCHS, description="Training epochs (early "
                          "stopping may end sooner).")
    batch_size: int = Field(16, ge=1, le=MAX_BATCH, description="Examples per device per step.")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay.")
    warmup_ratio: float = Field(0.06, ge=0, lt=1, description="Share of steps spent warming "
                                "up the learning rate (then linear decay).")
    patience: int = Field(2, ge=0, description="Stop after this many evaluations without a "
                          "better validation score in the task's primary metric (accuracy; "
                          "entity F1 for token classification); 0 turns early stopping off.")
    eval_steps: int = Field(0, ge=0, description="Evaluate and checkpoint every N steps and at "
                            "the last; 0 means once per epoch.")
    seed: int = Field(42, ge=0, le=MAX_SEED, description="Seed for the split, initialisation "
                      "and batch order.")
    device: str = Field("auto", description="auto (CUDA if present, else CPU), cpu, cuda[:N] "
                        "or mps. Asking for cuda where there is none is an error.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field("auto", description="auto: bf16 "
                                                              "on CUDA when supported, else "
                                                              "fp16; fp32 on CPU.")


class OutputOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    out: Path = Field(description="Output folder for the checkpoint and its metrics.")
    overwrite: bool = Field(False, description="Replace the results already in --out (kept "
                            "until the new run completes).")
    resume: bool = Field(False, description="Continue an interrupted run from its newest "
                         "complete checkpoint.")
    keep_checkpoints: bool = Field(False, description="Keep the intermediate Trainer "
                                   "checkpoints under checkpoints/.")
    checkpoint_minutes: float = Field(30.0, ge=0, description="Also save a checkpoint to "
                                      "resume from after this many minutes of training "
                                      "since the last save, between the evaluations' "
                                      "(which alone can be the best); an interruption then "
                                      "loses at most this much; 0 saves at evaluations "
                                      "only [default: 30].")


class TaskOption(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str | None = Field(None, description="The task (text-classification, ...; see "
                             "docs/tasks.md) [default: the one the checkpoint's head or "
                             "artifact.json records, else the one the data's columns fit].")


class HeadDataOptions(BaseModel):
    """A joint model's data beyond the shared files (tasks/joint): each head's own files
    and how several train files are mixed."""

    model_config = ConfigDict(extra="forbid")

    head_data: list[str] | None = Field(None, json_schema_extra={"repeatable": True},
                                        description="A joint model: a head's own data file, "
                                        "NAME:SPLIT=PATH (SPLIT train, validation or test), "
                                        "repeated; its rows are labelled for that head only "
                                        "(words in a tokens column, or a text split at white "
                                        "space).")
    sampling: Literal["proportional", "temperature"] = Field(
        "proportional", description="A joint model with several train files: proportional "
        "(every row once: each file weighs its size) or temperature (file i drawn with share "
        "n_i^(1/T), evening out unequal files).")
    sampling_temperature: float = Field(2.0, ge=1, le=100, description="T of --sampling "
                                        "temperature: the higher, the more even the files' "
                                        "shares.")


class HeadsOption(BaseModel):
    """A joint model's heads and the figure that selects it (tasks/joint): what fine-tuning
    builds; the later stages read both from the model's config.json."""

    model_config = ConfigDict(extra="forbid")

    head: list[str] | None = Field(None, json_schema_extra={"repeatable": True},
                                   description="A joint model's head (--task multi-task), "
                                   "repeated once per head: NAME=KIND[:COLUMN[:WEIGHT]], e.g. "
                                   "intent=text-classification:intent and "
                                   "slots=token-classification:slots [column: NAME; weight: 1].")
    select: str | None = Field(None, description="A joint model: the combined figure that "
                               "selects the model and stops early: mean (of each head's "
                               "primary metric), weighted (by the heads' weights) or a head's "
                               "name [default: mean].")


class FloorOption(BaseModel):
    """The stages that take a trained model on (export, verify, package) and refuse one
    marked degenerate (edgetransfer/measure/floor.py)."""

    model_config = ConfigDict(extra="forbid")

    allow_degenerate: bool = Field(False, description="Take a model marked degenerate: one "
                                   "whose validation metric was at chance after training "
                                   "(artifact.json \"floor\"; finetune and distill warn). "
                                   "Without it such a model is refused (exit 2).")


# Settings that change how or where a run is carried out, not what it computes: a resumed
# run may differ in them, a pipeline step and a bundle are the same without them. The one
# list every stage and the pipeline read. (teacher_cache, reference_cache: where distill
# keeps the teacher's outputs and verify the reference's predictions, which are the same
# read from there or computed.)
RUN_CONTROL = frozenset({"out", "overwrite", "resume", "keep_checkpoints", "checkpoint_minutes",
                         "teacher_cache", "reference_cache"})


def result_settings(cfg: BaseModel) -> dict:
    """A config as JSON, without the settings that do not change the result."""
    return {k: v for k, v in cfg.model_dump(mode="json").items() if k not in RUN_CONTROL}


def comma_list(v):
    if isinstance(v, str):
        v = [s.strip() for s in v.split(",") if s.strip()]
    return v or None


def _device_choices():
    from .device import target_check as t  # (plain data; no heavy imports)

    systems = ", ".join(f"{python} {release}" for python, (release, _) in t.SYSTEMS.items())
    # the help says what the table holds, so a row added there is in --help too
    python_help = (f"The device's Python, by the system that ships it: {systems} ({t.PI_OS} "
                   f"follows Debian); wheels are checked for it [default: {t.DEFAULT_PYTHON} "
                   f"for linux-aarch64, this machine's for linux-x86_64].")
    return Literal[tuple(t.SYSTEMS)], Literal[tuple(t.CPUS)], python_help


_PYTHONS, _CPUS, _PYTHON_HELP = _device_choices()


class TargetOptions(BaseModel):
    """The device a bundle is checked against (package, target): its Python and ARM core;
    the choices are target_check's tables (SYSTEMS, CPUS)."""

    target_python: _PYTHONS | None = Field(None, description=_PYTHON_HELP)
    target_cpu: _CPUS | None = Field(
        None, description="The device's ARM core (Raspberry Pi 4: cortex-a72, Pi 5: "
        "cortex-a76): whether int8 kernels suit it.")
