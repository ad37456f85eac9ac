"""What a bundle carries to turn its inputs into model feeds, by the bundled runtime's reader
of them (input_spec.json "task" "inputs"): a tokenizer for text; for images, the image
processor's numbers in input_spec.json and pixels.py beside predict.py. A task's input kind
names its reader (edgetransfer/inputs: InputKind.reader); the package stage asks the reader
here; the runtime (runtime/predict.py) reads what is written.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import ConfigError, ModelError
from .runtime import pixels


@dataclass(frozen=True)
class Reader:
    """One of the readers runtime/predict.py has (its read_spec refuses any other name)."""

    name: str  # input_spec.json "task" "inputs"
    # the runtime's packages, in requirements.txt's order (the manifest records them too)
    packages: tuple[str, ...]
    needed: dict[str, str]  # the export folder's files it needs -> what to say when missing
    files_row: str  # what the bundle holds for it beside the model: a README files-table row
    copy: Callable[[Path, Path], None]  # (export folder, bundle folder): put those files in
    # (bundle folder, export folder, max_length, config.json, onnxruntime session,
    # max_pixels) -> input_spec.json's fields of this reader
    spec: Callable[..., dict]
    # (task, input_spec.json) -> the bundle README's (examples of running predict.py,
    # "Each text"-like subject of what one input gives, what input_spec.json holds)
    readme: Callable[..., tuple[str, str, str]]
    # (inputs, a folder) -> what a listing file written in that folder names them by
    # (measure/footprint.py writes one); image paths are read relative to the listing
    listed: Callable[[list, Path], list] = lambda inputs, folder: list(inputs)

    def check(self, model: Path, where: str | None = None) -> None:
        """The export folder (or checkpoint: `where` names it as its flag does) holds the
        files this reader needs."""
        for name, hint in self.needed.items():
            if not (model / name).is_file():
                raise ModelError(f"{where or f'--model {model}'}: has no {name}; {hint}")


def _copy_tokenizer(model: Path, work: Path) -> None:
    shutil.copyfile(model / "tokenizer.json", work / "tokenizer.json")


def _copy_pixels(model: Path, work: Path) -> None:
    shutil.copyfile(pixels.__file__, work / "pixels.py")


def _text_readme(task, spec: dict) -> tuple[str, str, str]:
    examples = (f'python predict.py "{task.probe_rows[1]["text"]}"\n'
                "python predict.py --input texts.jsonl > predictions.jsonl   # also .csv, "
                ".tsv, .txt\npython predict.py --benchmark 200 --input texts.jsonl       "
                "# latency and memory here")
    pairs = (" (or text pair, from a file with a second text column)"
             if task.runtime.get("pairs") else "")
    return (examples, f"Each text{pairs}",
            f"inputs, padding, truncation at {spec['max_length']} tokens, threads")


def _image_readme(task, spec: dict) -> tuple[str, str, str]:
    h, w = spec["image"]["size"]
    examples = ("python predict.py photo.jpg scan.png          # image files, or folders\n"
                "python predict.py --input images/ > predictions.jsonl   # also a .txt of "
                "paths\npython predict.py --benchmark 200 --input images/     # latency "
                "and memory here")
    return (examples, "Each image", f"images: RGB, resized to {w}x{h} (Pillow filter "
            f"{spec['image']['resample']}), scaled and normalised; threads")


def _linked(images: list, folder: Path) -> list[str]:
    """Each image linked into `folder`, by the name a listing there reads it by."""
    names = []
    for i, image in enumerate(images):
        name = folder / f"{i:05d}{Path(image).suffix}"
        name.symlink_to(Path(image).resolve())
        names.append(name.name)
    return names


TEXT = Reader(
    "text", ("onnxruntime", "tokenizers", "numpy"),
    {"tokenizer.json": "the runtime needs a fast tokenizer's tokenizer.json"},
    "| tokenizer.json | the tokenizer (Hugging Face tokenizers) |\n", _copy_tokenizer,
    lambda work, model, max_length, config, session, max_pixels: _text(work, model,
                                                                       max_length, config),
    readme=_text_readme)
IMAGE = Reader(
    "image", ("onnxruntime", "pillow", "numpy"),
    {"preprocessor_config.json": "the runtime needs the image processor (size and "
                                 "normalisation) it came with"},
    "| pixels.py | reads an image file into model input (Pillow, numpy) |\n", _copy_pixels,
    lambda work, model, max_length, config, session, max_pixels: _image(model, session,
                                                                        max_pixels),
    readme=_image_readme, listed=_linked)
READERS = {r.name: r for r in (TEXT, IMAGE)}


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
