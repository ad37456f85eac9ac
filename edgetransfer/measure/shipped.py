"""The figure export, verify and package report for a model: what its bundle answers.

The model (an ONNX session, a PyTorch checkpoint, a verify runner) is put inside the
bundled runtime's own Predictor (bundle/runtime/predict.py, the file that ships), with the
input spec its bundle carries (bundle/spec.py). The eval rows go in as a user gives them to
the bundle (raw text, text pairs, image files) and the task reads its predictions from what
the runtime prints (`Task.shipped`: a tagger's spans aligned to the gold words by
tasks/spans.py, a classifier's label); the task's metrics of those are the figure. A task
without `shipped` is scored on its own encoding of the rows (measure/scoring.py).

Output parity is not this: it compares raw outputs on the task's encoding (parity.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import scoring


@dataclass
class Model:
    """A model as the runtime calls it, with the files its bundle's reader is made from."""

    run: Callable[[dict], dict]  # numpy feeds by input name -> {output name: array}
    inputs: list[dict]  # {name, type, shape}, as input_spec.json lists them
    outputs: list[str]
    folder: Path  # its tokenizer.json / preprocessor_config.json, config.json
    preprocessor: Any  # the task's (scoring a task without `shipped`)


def of_session(session, folder, preprocessor) -> Model:
    """An onnxruntime session (an export's variant, a bundle's model)."""
    from ..bundle import spec
    from .latency import feeds_for

    inputs, outputs = spec.of_session(session)
    return Model(lambda feeds: dict(zip(outputs, session.run(None, feeds_for(session, feeds)))),
                 inputs, outputs, Path(folder), preprocessor)


def torch_run(model, task) -> Callable[[dict], dict]:
    """A PyTorch model of `task` as the runtime calls a model: numpy feeds (the task's
    encoding; index columns dropped) -> its outputs by the task's names, float32 numpy."""
    import torch

    def run(feeds):
        with torch.inference_mode():
            out = model(**{k: torch.from_numpy(v) for k, v in
                           scoring.inputs_only(task, feeds).items()})
        return {name: task.output(out, name).float().numpy() for name in task.outputs}

    return run


def of_torch(model, task, folder, preprocessor) -> Model:
    """A PyTorch model of `task` (its outputs by the task's names, float32)."""
    from ..bundle import spec

    return Model(torch_run(model, task), *spec.of_preprocessor(task, preprocessor),
                 Path(folder), preprocessor)


def of_runner(runner) -> Model:
    """A verify runner (measure/runners.py), ONNX or PyTorch."""
    from ..bundle import spec

    session = runner.info.get("session")
    io = (spec.of_session(session) if session is not None
          else spec.of_preprocessor(runner.task, runner.preprocessor))
    return Model(runner.run, *io, Path(runner.path).parent, runner.preprocessor)


def predictor(task, model: Model, label_names: list[str], max_length: int,
              max_image_pixels: int | None = None):
    """The bundled runtime's Predictor around `model`, with the spec its bundle would carry
    (refused in one line where the folder lacks what the bundle's reader is made from)."""
    from ..bundle import spec
    from ..bundle.runtime.predict import BundleError, Predictor
    from ..errors import ModelError
    from ..untrusted import read_json

    where = f"{model.folder} (scored as its bundle answers)"
    task.inputs.reader.check(model.folder, where)
    config_file = model.folder / "config.json"
    config = read_json(config_file, error=ModelError) if config_file.is_file() else {}
    made = spec.build(task, model.folder, config, model.inputs, model.outputs,
                      num_labels=len(label_names), max_length=max_length,
                      max_image_pixels=max_image_pixels)
    try:
        return Predictor.around(model.run, made, label_names, model.folder)
    except BundleError as e:
        raise ModelError(f"{model.folder}: the bundled runtime cannot read for it: {e}") from None


def predictions(task, model: Model, ds, label_names: list[str], max_length: int,
                precision: str = "fp32", max_image_pixels: int | None = None) -> list:
    """Per-example predictions of `model` over the eval rows `ds`, as its bundle answers
    (int8 one input at a time, as the runtime's default: scoring.one_by_one says why). An
    input the runtime refuses (an image over the pixel limit) is a data error."""
    from ..bundle.runtime.predict import BundleError
    from ..errors import DataError

    if task.shipped is None:
        pairs = scoring.batches(task, model.preprocessor, ds, max_length)
        return scoring.predict(task, lambda f: task.output(model.run(f)), pairs, precision)[0]
    runtime = predictor(task, model, label_names, max_length, max_image_pixels)
    try:
        return task.shipped(runtime, ds, scoring.scoring_batch_size(precision))
    except BundleError as e:
        raise DataError(f"the eval data: the bundled runtime refuses an input: {e}") from None


def report(task, model: Model, ds, label_names: list[str], max_length: int,
           precision: str = "fp32", max_image_pixels: int | None = None) -> dict:
    """The task's metrics of `model` on the labelled rows `ds`, as its bundle answers."""
    preds = predictions(task, model, ds, label_names, max_length, precision, max_image_pixels)
    return task.metrics(list(ds["label"]), preds, label_names)


def bundle_report(task, predictor, ds, batch_size: int = 1) -> dict:
    """The task's metrics of a bundle's own Predictor (`Predictor(folder)`) on labelled
    rows read with its labels: the figure above, taken from the bundle itself."""
    return task.metrics(list(ds["label"]), task.shipped(predictor, ds, batch_size),
                        predictor.labels)


def score(task, model: Model, ds, label_names: list[str], max_length: int,
          precision: str = "fp32", max_image_pixels: int | None = None) -> float:
    """The one figure: the task's primary metric, as its bundle answers."""
    return report(task, model, ds, label_names, max_length, precision,
                  max_image_pixels)[task.primary]


@dataclass
class Scorer:
    """Scores the models of one checkpoint (its PyTorch model, its ONNX graphs) as their
    bundle answers, on labelled rows: export's accuracy gates."""

    task: Any
    rows: Any  # the labelled eval rows (task.read_eval)
    label_names: list[str]
    max_length: int
    folder: Path  # the checkpoint's folder: the tokenizer (or image processor) bundled
    preprocessor: Any
    max_image_pixels: int | None = None  # (--max-image-pixels: the runtime's image limit)

    def onnx(self, session, precision: str = "fp32") -> float:
        return self.onnx_report(session, precision)[self.task.primary]

    def onnx_report(self, session, precision: str = "fp32") -> dict:
        """The task's whole report (a joint task's: every head's figures)."""
        return report(self.task, of_session(session, self.folder, self.preprocessor),
                      self.rows, self.label_names, self.max_length, precision,
                      self.max_image_pixels)

    def torch(self, model, precision: str = "fp32") -> float:
        return score(self.task, of_torch(model, self.task, self.folder, self.preprocessor),
                     self.rows, self.label_names, self.max_length, precision,
                     self.max_image_pixels)
