"""The one list of stages: the CLI, the recipe schema, the pipeline, the report and the
tests all read it.

Adding a stage is its module (under stages/, or any module the entry names: a pydantic
config, `run()`, a `HELP` text and, for a pipeline step, `plan()`) plus one `Stage` entry
here: the command, its options, the recipe section, the API function and the pipeline's
wiring all follow from them (tests/test_new_stage.py registers a toy stage and lists what
else it would need: nothing). After peft's `register_peft_method`, which ended a five-place
edit.

Steps hand each other typed references (records/references.py), not string keys: an entry
names the kinds its `plan()` takes and its steps make, and the pipeline refuses a recipe
whose step needs what no earlier step makes, before the first step runs.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from .options import COLUMNS
from .records.references import Bundle, Checkpoint, OnnxModel, Student, Teacher, Verification


@dataclass(frozen=True)
class Stage:
    name: str  # the command, and the recipe section of a pipeline step
    summary: str  # one line: `edgetransfer --help` and README's stage table
    config: str  # the pydantic config class in the stage's module
    first: tuple[str, ...] = ()  # options shown first in the command's --help
    # config fields the pipeline sets (from the recipe's model/data/task or earlier steps);
    # a recipe section may not set them
    wired: frozenset[str] = frozenset()
    step: bool = True  # a pipeline step (a section of recipes); predict is not
    variants: bool = False  # the recipe section is a list of named variants (export)
    entry: str = "run"  # the module function the command calls: entry(cfg, **extras)
    # the one edgetransfer.api calls instead, where entry prints what a caller wants back
    api: str | None = None
    argument: str | None = None  # a variadic positional argument the entry takes (texts)
    flags: tuple[tuple[str, str], ...] = ()  # extra on/off flags of the command: (name, help)
    # the references (records/references.py) its plan() reads from earlier steps, and what
    # its steps make; `needs`: of what it takes, the kinds one of which an earlier step must
    # make (none: it runs on the recipe's own model and data)
    takes: tuple[type, ...] = ()
    makes: tuple[type, ...] = ()
    needs: tuple[type, ...] = ()
    # its entry runs other stages' steps (search): it is handed `steps_of`, pipeline.Steps
    # (pipeline.handed), since no module under stages/ imports the pipeline or this registry
    runs_steps: bool = False
    module: str | None = None  # its module [default: edgetransfer.stages.NAME]

    def load(self):
        """Its module (torch stays inside the stages' functions)."""
        return importlib.import_module(self.module or f"edgetransfer.stages.{self.name}")

    def config_class(self):
        return getattr(self.load(), self.config)


# the data every training step is wired with, from the recipe's data section
_DATA = COLUMNS | {"task", "train", "validation", "test", "label_names", "train_sample",
                   "max_length", "image_size", "out", "overwrite", "resume", "allow_pickle",
                   "trust_remote_code"}

_STAGES: dict[str, Stage] = {}


def register(stage: Stage) -> Stage:
    if stage.name in _STAGES:
        raise ValueError(f"stage {stage.name!r} is registered twice")
    _STAGES[stage.name] = stage
    return stage


def unregister(name: str) -> None:
    """Remove a stage (tests register toy stages and take them away again)."""
    _STAGES.pop(name, None)


def makers(kind: type) -> list[Stage]:
    """The pipeline steps whose steps make a `kind` (or a kind of it), in order."""
    return [s for s in steps() if any(issubclass(m, kind) for m in s.makes)]


def stages() -> list[Stage]:
    """Every stage, in pipeline order (the order of registration)."""
    return list(_STAGES.values())


def steps() -> list[Stage]:
    """The pipeline's steps, in order."""
    return [s for s in _STAGES.values() if s.step]


def get(name: str) -> Stage:
    return _STAGES[name]


register(Stage("finetune", "adapt a backbone to a labelled task (full, LoRA or head-only)",
               "FinetuneConfig",
               first=("model", "task", "train", "validation", "test", "method", "out"),
               wired=_DATA | {"model"}, makes=(Teacher,)))
register(Stage("distill", "teach a small, fast student from the fine-tuned teacher",
               "DistillConfig",
               first=("teacher", "student_layers", "keep_layers", "student", "train",
                      "validation", "test", "unlabeled", "out"),
               wired=_DATA | {"teacher", "unlabeled"}, takes=(Teacher,), makes=(Student,)))
register(Stage("export", "ONNX through optimum, fusions, int8/fp16 quantization, "
               "parity-gated", "ExportConfig",
               first=("model", "out", "quantize", "target"),
               wired=COLUMNS | {"task", "model", "out", "eval_data", "calibration_data",
                                "max_length", "overwrite", "allow_pickle"},
               variants=True, takes=(Checkpoint,), makes=(OnnxModel,)))
register(Stage("verify", "accuracy, output parity and latency against a reference and a "
               "baseline", "VerifyConfig",
               first=("reference", "candidate", "data", "baseline", "max_latency_regression",
                      "update_baseline", "out"),
               wired=COLUMNS | {"task", "reference", "candidate", "data", "max_length",
                                "out", "allow_pickle"},
               entry="main", flags=(("json", "Print only the JSON report on stdout."),),
               takes=(Teacher, Student, OnnxModel), needs=(Student, OnnxModel),
               makes=(Verification,)))
register(Stage("package", "a bundle for the device: model, tokenizer or image reader, runtime "
               "(onnxruntime, no torch), checked against the target", "PackageConfig",
               first=("model", "verify_report", "target", "out"),
               wired=frozenset({"model", "out", "verify_report", "overwrite", "latency_data",
                                "max_length", "max_image_pixels"}),
               takes=(OnnxModel, Verification), needs=(OnnxModel,), makes=(Bundle,)))
register(Stage("predict", "run a bundle on texts or images, as the device does",
               "PredictConfig",
               first=("bundle", "input"), step=False, argument="texts", api="predictions"))
register(Stage("device", "measure a bundle on the device over SSH and gate it against that "
               "device's baseline", "DeviceConfig",
               first=("bundle", "device", "remote_python", "baseline", "update_baseline"),
               step=False))
register(Stage("target", "check a bundle against a device: wheels, operators, int8 on its CPU",
               "TargetConfig", first=("bundle", "target", "target_python", "target_cpu"),
               step=False, flags=(("json", "Print the findings as JSON."),)))
register(Stage("search", "the smallest, fastest student within a budget: depth x quantization x "
               "vocabulary pruning, Pareto front, best packaged", "SearchConfig",
               first=("budget", "depths", "formats", "prune", "prefer"), step=False,
               entry="main", argument="recipe", runs_steps=True))
