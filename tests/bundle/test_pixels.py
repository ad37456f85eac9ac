"""The runtime's image reading (pixels.py: Pillow + numpy) against transformers' processor,
and what it does with awkward images: modes converted or refused, too small, damaged."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import draw
from PIL import Image

from edgetransfer.bundle.runtime import pixels


def spec_of(processor) -> dict:
    """input_spec.json's "image" entry for a processor, as package writes it."""
    from edgetransfer.bundle.inputs import _image

    class Session:
        def get_inputs(self):
            class I:  # noqa: E742
                shape = ["batch", 3, "height", "width"]
            return [I()]

    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        processor.save_pretrained(tmp)
        return _image(Path(tmp), Session())["image"]


@pytest.mark.parametrize("side", [32, 64, 224])
def test_pixels_match_the_transformers_processor(side):
    from edgetransfer.modeling import efficientnet_lite

    processor = efficientnet_lite.processor(side)
    spec = spec_of(processor)
    rng = np.random.default_rng(side)
    images = [draw("circle", 1, 28),  # grey, smaller than the input: enlarged
              Image.fromarray(rng.integers(0, 256, (300, 200, 3), dtype=np.uint8)),  # shrunk
              draw("square", 2, 50, "P"), draw("square", 3, side, "RGBA"),  # palette, same size
              Image.fromarray((rng.integers(0, 65536, (40, 40))).astype(np.uint16))]  # 16-bit
    rgb = [pixels.to_rgb(im, f"image {i}") for i, im in enumerate(images)]
    ours = pixels.pixel_values(np, rgb, spec)
    theirs = processor(rgb, return_tensors="np")["pixel_values"]
    assert ours.shape == theirs.shape == (5, 3, side, side) and ours.dtype == np.float32
    assert np.abs(ours - theirs).max() <= 1e-6
    assert ours.min() >= -1 and ours.max() <= 1  # Lite0's [-1, 1]


def test_modes_become_rgb_or_are_refused():
    grey16 = Image.fromarray(np.array([[0, 257 * 128, 65535]], dtype=np.uint16))
    assert grey16.mode.startswith("I")
    assert np.asarray(pixels.to_rgb(grey16, "g"))[0, :, 0].tolist() == [0, 128, 255]
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))  # pure red in CMYK
    assert pixels.to_rgb(cmyk, "c").getpixel((0, 0)) == (255, 0, 0)
    assert pixels.to_rgb(draw("circle", 0, 20, "P"), "p").mode == "RGB"
    with pytest.raises(pixels.ImageProblem, match=r"^f.tif: pixel mode 'F'.*8- or 16-bit"):
        pixels.to_rgb(Image.new("F", (4, 4)), "f.tif")


def test_too_small_and_damaged_images_are_named(tmp_path):
    small = tmp_path / "tiny.png"
    draw("circle", 0, 7).save(small)
    with pytest.raises(pixels.ImageProblem, match=r"tiny.png: 7x7 px is too small for this "
                       r"model's 64x64 input \(at least 8 px a side"):
        pixels.load_rgb(str(small), (64, 64))
    assert pixels.load_rgb(str(small), (56, 56)).size == (7, 7)  # 8x: the limit, allowed

    whole = io.BytesIO()
    draw("square", 0, 64, "RGB").save(whole, "PNG")
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    with pytest.raises(pixels.ImageProblem, match=r"cut.png: damaged or truncated image"):
        pixels.load_rgb(str(cut), None)
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    with pytest.raises(pixels.ImageProblem,
                       match=r"notes.png: not an image of the formats read here"):
        pixels.open_image(str(text))
    with pytest.raises(pixels.ImageProblem, match=r"gone.png: no such file"):
        pixels.open_image(str(tmp_path / "gone.png"))


def test_the_runtime_tries_the_readers_image_columns(tmp_path):
    """predict.py --input on a table finds the image column the training reader would."""
    import json

    from edgetransfer.bundle.runtime.predict import BundleError, read_images

    draw("circle", 0, 20).save(tmp_path / "a.png")
    table = tmp_path / "list.jsonl"
    table.write_text(json.dumps({"img": "a.png", "label": "x"}) + "\n")
    assert read_images(table) == [str(tmp_path / "a.png")]
    table.write_text(json.dumps({"picture": "a.png"}) + "\n")
    with pytest.raises(BundleError, match="no image column \\(tried image, img, image_path"):
        read_images(table)
