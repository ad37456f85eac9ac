"""A bundle's input_spec.json: how its runtime (runtime/predict.py) reads inputs into feeds
and what it does with the model's output, made in one place.

`package` writes it into the bundle; measure/shipped.py puts the same spec, through the
runtime's Predictor, around the model it scores (an ONNX candidate, the PyTorch reference),
so the figure export and verify report is the answer the bundle gives.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from . import inputs as bundle_inputs
from .runtime.predict import ENCODING_FIELDS, IMAGE_INPUT

ONNX_TYPE = {"int64": "tensor(int64)", "float32": "tensor(float)"}


def build(task, folder: Path, config: dict, inputs: list[dict], outputs: list[str], *,
          num_labels: int, max_length: int | None, threads: int = 1, ort_format: bool = False,
          max_image_pixels: int | None = None, files: Path | None = None) -> dict:
    """input_spec.json for a model of `task` whose preprocessing files (tokenizer, image
    processor) are in `folder`. `inputs`: the model's, as {name, type, shape} (`of_session`,
    `of_preprocessor`); `outputs`: its output names, the task's first being what the
    runtime reads; `files`: where the bundle's own copies are (default `folder`)."""
    first = task.outputs[0]
    # a model's input shapes, as the image reader checks them (an onnxruntime session's)
    shapes = SimpleNamespace(get_inputs=lambda: [SimpleNamespace(**i) for i in inputs])
    return {
        "model": "model.onnx",
        **({"model_ort": "model.ort"} if ort_format else {}),
        # what the runtime does after the model (bundle/runtime/predict.py POSTPROCESS)
        "task": {"name": task.name, **task.runtime},
        "labels": "labels.json",
        "num_labels": num_labels,
        "inputs": [dict(i) for i in inputs],
        "token_type_ids": any(i["name"] == "token_type_ids" for i in inputs),
        # (an ONNX graph without the task's output name: its first output, as exported)
        "output": first if first in outputs else outputs[0],
        # the task's further outputs (another head on the encoder): printed by name beside
        # what the postprocess makes of "output" (runtime/predict.py Predictor.further)
        **({"also": list(task.outputs[1:])} if len(task.outputs) > 1 else {}),
        # (the task's input kind's reader: a tokenizer's fields, or an image's)
        **task.inputs.reader.spec(files or folder, folder, max_length, config, shapes,
                                  max_image_pixels),
        "threads": threads,
    }


def of_session(session) -> tuple[list[dict], list[str]]:
    """(inputs, output names) of an onnxruntime session."""
    return ([{"name": i.name, "type": i.type, "shape": i.shape} for i in session.get_inputs()],
            [o.name for o in session.get_outputs()])


def of_preprocessor(task, preprocessor) -> tuple[list[dict], list[str]]:
    """(inputs, output names) of a PyTorch model of `task`, as its ONNX export has them:
    the tokenizer's model inputs (int64), or an image's pixel values."""
    if task.inputs.reader is bundle_inputs.IMAGE:
        name, dtype = IMAGE_INPUT
        inputs = [{"name": name, "type": ONNX_TYPE[dtype],
                   "shape": ["batch_size", "num_channels", "height", "width"]}]
    else:
        inputs = [{"name": n, "type": ONNX_TYPE["int64"], "shape": ["batch_size", "sequence"]}
                  for n in preprocessor.model_input_names if n in ENCODING_FIELDS]
    return inputs, list(task.outputs)
