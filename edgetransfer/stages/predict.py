"""Command `predict`: run a bundle on texts, as the device will.

Not a pipeline step (it writes no artifact), but built like one: a config whose
descriptions are the CLI help, and a `run()`. The work is the bundle's own runtime
(edgetransfer/bundle/runtime/predict.py, the file shipped as predict.py), so this command and the
device cannot disagree. An archive is unpacked into a temporary folder with the checked
extractor (no links, absolute names, `..` or unlisted files; every sha256 checked); a
folder is checked in place by the runtime.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import click
from pydantic import BaseModel, ConfigDict, Field

from ..bundle.runtime.pixels import MAX_IMAGE_PIXELS
from ..errors import ConfigError, DataError, ModelError
from ..options import MAX_BATCH, MAX_THREADS

# The command's --help (edgetransfer.cli makes the command from the registry).
HELP = """Run a bundle on TEXTS (an image bundle: image files or folders) and/or --input
FILE; one JSON line per text or image.

\b
Examples:
  edgetransfer predict --bundle models/demo/bundle.tar.gz "turn the kitchen lights off"
  edgetransfer predict --bundle models/demo/bundle --input texts.jsonl --top-k 3

It runs the bundle's own predict.py (onnxruntime, no torch); an archive is unpacked to a
temporary folder and refused if it holds links, absolute names, `..` or a file that fails
its sha256.
"""

class PredictConfig(BaseModel):
    """Settings of `edgetransfer predict`; each description is the CLI help."""

    model_config = ConfigDict(extra="forbid")

    bundle: Path = Field(description="A bundle: the .tar.gz `edgetransfer package` wrote, or "
                         "its folder.")
    input: Path | None = Field(None, description="A file of texts to classify (.jsonl, .csv, "
                               ".tsv, .txt one a line), after any given as arguments; an "
                               "image bundle: a folder, a .txt of paths or a table with an "
                               "'image' column.")
    text_column: str | None = Field(None, description="Text column of --input [default: "
                                    "text, sentence, ... whichever comes first].")
    text_pair_column: str | None = Field(None, description="Second text column of --input, "
                                         "for pairs [default: sentence2 beside sentence1, "
                                         "and so on].")
    top_k: int | None = Field(None, ge=1, description="Keep the k best labels in \"scores\" "
                              "(a classifier's bundle; one that prints entities or values "
                              "refuses it) [default: all].")
    batch_size: int = Field(1, ge=1, le=MAX_BATCH, description="Texts per model call (1: "
                            "int8 models scale "
                            "activations over the whole batch, padding included; one at a "
                            "time, each text gets the answer it gets alone).")
    threads: int | None = Field(None, ge=1, le=MAX_THREADS, description="onnxruntime threads "
                                "[default: the "
                                "bundle's].")
    max_image_pixels: int | None = Field(None, ge=1, description="An image bundle: the most "
                                         "pixels (width x height) an image may have; a larger "
                                         "one is refused from its header, before it is "
                                         "decoded [default: the bundle's, input_spec.json "
                                         f"image.max_pixels; else {MAX_IMAGE_PIXELS}].")


def run(cfg: PredictConfig, texts: list[str]) -> int:
    """Print one JSON line per text; return how many."""
    n = 0
    for row in predictions(cfg, texts):
        click.echo(json.dumps(row))
        n += 1
    return n


def predictions(cfg: PredictConfig, texts: list[str]) -> Iterator[dict]:
    """The rows `run` prints, one per text or image, as they come (the Python API's
    predict)."""
    from ..bundle.archive import open_bundle
    from ..bundle.runtime.predict import BundleError, Predictor, inputs_for

    with tempfile.TemporaryDirectory(prefix="edgetransfer-bundle-") as tmp:
        folder, _ = open_bundle(cfg.bundle, Path(tmp))  # (every file checked there)
        try:
            predictor = Predictor(folder, threads=cfg.threads, check=False,
                                  max_image_pixels=cfg.max_image_pixels)
        except BundleError as e:
            raise ModelError(str(e)) from None
        try:
            texts = inputs_for(predictor.kind, texts, cfg.input, cfg.text_column,
                               cfg.text_pair_column)
        except BundleError as e:
            message = str(e)
            raise (ConfigError(message) if message.startswith("give ") else
                   DataError(f"--input {message}")) from None
        try:
            yield from predictor.iter_predict(texts, cfg.top_k, cfg.batch_size)
        except BundleError as e:
            raise ModelError(str(e)) from None
