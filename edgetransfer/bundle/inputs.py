"""What a bundle carries to turn its inputs into model feeds, by the kind of input its task
takes (Task.runtime["inputs"]): a tokenizer for text; for images, the image processor's
numbers in input_spec.json and pixels.py beside predict.py. The package stage asks here;
the runtime (runtime/predict.py) reads what is written.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import ConfigError, ModelError
from .runtime import pixels

# the runtime's packages, by input kind (requirements.txt pins them, the manifest records them)
PACKAGES = {"text": ("onnxruntime", "tokenizers", "numpy"),
            "image": ("onnxruntime", "numpy", "pillow")}
# the export folder's files the runtime needs, by kind, and what to say when one is missing
NEEDED = {"text": {"tokenizer.json": "the runtime needs a fast tokenizer's tokenizer.json"},
          "image": {"preprocessor_config.json": "the runtime needs the image processor "
                                                "(size and normalisation) it came with"}}
# what each kind's bundle holds beside the model, for its README's file table
FILES = {"text": "| tokenizer.json | the tokenizer (Hugging Face tokenizers) |\n",
         "image": "| pixels.py | reads an image file into model input (Pillow, numpy) |\n"}


def kind_of(task) -> str:
    return task.runtime.get("inputs", "text")


def copy_files(kind: str, model: Path, work: Path) -> None:
    if kind == "image":
        shutil.copyfile(pixels.__file__, work / "pixels.py")
    else:
        shutil.copyfile(model / "tokenizer.json", work / "tokenizer.json")


def spec_fields(kind: str, work: Path, model: Path, max_length: int | None, config: dict,
                session, max_pixels: int | None = None) -> dict:
    """input_spec.json's fields of this kind of input."""
    return (_image(model, session, max_pixels) if kind == "image"
            else _text(work, model, max_length, config))


def _read(path: Path) -> dict:
    from ..untrusted import read_json

    return read_json(path, label=f"--model {path}", error=ModelError)  # (bounded, an object)


def _image(model: Path, session, max_pixels: int | None = None) -> dict:
    """The processor's resize, rescale and normalisation, as pixels.pixel_values takes them.
    Only what pixels.py reproduces exactly is accepted (a test holds the two within 1e-6).
    "max_pixels": the most pixels the runtime decodes an image of (pixels.open_image)."""
    p = _read(model / "preprocessor_config.json")
    where = f"--model {model}: preprocessor_config.json"
    if p.get("do_center_crop") or p.get("include_top") or p.get("do_pad"):
        raise ModelError(f"{where}: crops, pads or normalises twice (include_top); the bundled "
                         f"runtime resizes, rescales and normalises only")
    size = p.get("size") or {}
    if "height" not in size or "width" not in size:
        raise ModelError(f"{where}: size {size} is not a fixed height and width")
    resample = p.get("resample", 2)
    if resample not in pixels.RESAMPLE.values():
        raise ModelError(f"{where}: resample {resample!r} is not a Pillow filter")
    shape = session.get_inputs()[0].shape
    fixed = [d for d in shape[2:] if isinstance(d, int)]
    if fixed and fixed != [size["height"], size["width"]]:
        raise ModelError(f"{where}: size {size} does not match the model's input {shape}")
    return {"image": {
        "size": [size["height"], size["width"]], "resample": resample,
        "rescale": p.get("rescale_factor", 1 / 255) if p.get("do_rescale", True) else 1.0,
        "offset": bool(p.get("rescale_offset", False)),
        "normalize": bool(p.get("do_normalize", True)),
        "mean": p.get("image_mean", [0.5, 0.5, 0.5]), "std": p.get("image_std", [0.5, 0.5, 0.5]),
        "channels": "RGB", "layout": "NCHW", "max_upscale": pixels.MAX_UPSCALE,
        "max_pixels": max_pixels or pixels.MAX_IMAGE_PIXELS}}


def _text(work: Path, model: Path, max_length: int | None, config: dict) -> dict:
    from tokenizers import Tokenizer

    tok_config = {}
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        if (model / name).exists():
            tok_config = {**_read(model / name), **tok_config}
    pad = tok_config.get("pad_token")
    pad = pad.get("content") if isinstance(pad, dict) else pad
    pad_id = Tokenizer.from_file(str(work / "tokenizer.json")).token_to_id(pad) if pad else None
    if pad_id is None:
        raise ModelError(f"--model {model}: the tokenizer has no padding token; the runtime "
                         f"pads batches with it")
    positions = config.get("max_position_embeddings")
    if positions and max_length > positions:
        raise ConfigError(f"--max-length {max_length}: above the model's {positions} positions")
    return {
        "tokenizer": "tokenizer.json",
        "max_length": max_length,
        "truncation": "longest_first, right",
        "padding": "to the longest text of a batch, right",
        "pad_token": pad,
        "pad_id": pad_id,
        "pad_type_id": 0,  # BERT-family tokenizers pad token types with 0
    }
