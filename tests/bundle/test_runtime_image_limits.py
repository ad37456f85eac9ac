"""The bundled runtime's pixel limit: input_spec.json's "image" "max_pixels" (package writes
its --max-image-pixels there), else pixels.py's MAX_IMAGE_PIXELS; `python predict.py
--max-image-pixels N` and `edgetransfer predict --max-image-pixels N` override it. An image
over it, an empty file or an absurd strip is one line on stderr, exit 2, before decoding.

The bundle here is built by hand around a 2-class ONNX model that averages each channel
(package needs an export and a package index; what is tested is the runtime)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import draw, png_header
from PIL import Image

from edgetransfer.bundle.runtime import SOURCE, pixels


def _model(path: Path) -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.array([[1, -1], [0, 0], [-1, 1]], np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["pixel_values"], ["pooled"], axes=[2, 3],
                          keepdims=0),
         helper.make_node("MatMul", ["pooled", "w"], ["logits"])],
        "mean-colour", [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT,
                                                      ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


def make_bundle(folder: Path, max_pixels=None) -> Path:
    """An image bundle of package's layout; `max_pixels` recorded when given."""
    folder.mkdir(parents=True)
    _model(folder / "model.onnx")
    (folder / "labels.json").write_text(json.dumps(["red", "blue"]))
    image = {"size": [8, 8], "resample": 2, "rescale": 1 / 255, "offset": False,
             "normalize": True, "mean": [0.5] * 3, "std": [0.5] * 3, "channels": "RGB",
             "layout": "NCHW", "max_upscale": pixels.MAX_UPSCALE}
    if max_pixels is not None:
        image["max_pixels"] = max_pixels
    spec = {"model": "model.onnx", "task": {"name": "image-classification", "inputs": "image",
                                            "pairs": False, "postprocess": "softmax-label"},
            "labels": "labels.json", "num_labels": 2,
            "inputs": [{"name": "pixel_values", "type": "tensor(float)",
                        "shape": ["batch", 3, 8, 8]}],
            "token_type_ids": False, "output": "logits", "image": image, "threads": 1}
    (folder / "input_spec.json").write_text(json.dumps(spec))
    shutil.copyfile(SOURCE, folder / "predict.py")
    shutil.copyfile(pixels.__file__, folder / "pixels.py")
    files = {p.name: {"bytes": p.stat().st_size,
                      "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
             for p in sorted(folder.iterdir())}
    (folder / "manifest.json").write_text(json.dumps({"format": 1, "files": files}))
    return folder


def run(bundle: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-I", "predict.py", *map(str, args)], cwd=bundle,
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    Image.new("RGB", (200, 200), (255, 0, 0)).save(folder / "big.png")  # 40,000 px, red
    Image.new("RGB", (50, 50), (0, 0, 255)).save(folder / "small.png")  # 2,500 px, blue
    (folder / "bomb.png").write_bytes(png_header(100_000, 100_000))
    (folder / "empty.png").write_bytes(b"")
    draw("circle", 0, 10).resize((2000, 10)).save(folder / "strip.png")
    return folder


def test_the_bundles_limit_and_the_flag(tmp_path, images):
    bundle = make_bundle(tmp_path / "bundle", max_pixels=10_000)
    proc = run(bundle, images / "small.png")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["label"] == "blue"

    proc = run(bundle, images / "small.png", images / "big.png")
    assert proc.returncode == 2  # (rows are printed as they are done: the first one was)
    assert [json.loads(line)["label"] for line in proc.stdout.splitlines()] == ["blue"]
    assert proc.stderr.splitlines() == [
        f"error: {images / 'big.png'}: 200x200 px (40,000 px in a "
        f"{(images / 'big.png').stat().st_size:,}-byte file) is over the limit of 10,000 px; "
        f"decoded, it would take 117 KB or more; downscale it, or raise --max-image-pixels"]

    proc = run(bundle, "--max-image-pixels", "40000", images / "big.png")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["label"] == "red"
    proc = run(bundle, "--max-image-pixels", "0", images / "big.png")
    assert proc.returncode == 2 and "--max-image-pixels must be at least 1" in proc.stderr


def test_the_runtimes_own_limit_where_the_bundle_records_none(tmp_path, images):
    bundle = make_bundle(tmp_path / "bundle")
    assert run(bundle, images / "big.png").returncode == 0
    for name, said in (
            ("bomb.png", "100000x100000 px (10,000 Mpx in a 65-byte file) is over the limit "
                         "of 64 Mpx; decoded, it would take 27.9 GB or more"),
            ("empty.png", "the file is empty (0 bytes), not an image; replace it"),
            ("strip.png", "2000x10 px: one side is 200 times the other (at most 100)")):
        proc = run(bundle, images / name)
        assert proc.returncode == 2 and proc.stdout == "", (name, proc.stderr)
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {images / name}: {said}"), \
            lines
        assert "Traceback" not in proc.stderr and "DecompressionBomb" not in proc.stderr


def test_edgetransfer_predict_takes_the_same_limit(cli, tmp_path, images):
    bundle = make_bundle(tmp_path / "bundle", max_pixels=10_000)
    code, out = cli("predict", "--bundle", bundle, images / "big.png")
    assert code == 2
    assert out.strip().splitlines() == [
        f"error: {images / 'big.png'}: 200x200 px (40,000 px in a "
        f"{(images / 'big.png').stat().st_size:,}-byte file) is over the limit of 10,000 px; "
        f"decoded, it would take 117 KB or more; downscale it, or raise --max-image-pixels"]
    code, out = cli("predict", "--bundle", bundle, "--max-image-pixels", "40000",
                    images / "big.png")
    assert code == 0, out
    assert json.loads(out.strip().splitlines()[-1])["label"] == "red"


@pytest.mark.parametrize("value", ["lots", 0, True, 1.5])
def test_a_bad_recorded_limit_is_named(tmp_path, images, value):
    bundle = make_bundle(tmp_path / "bundle", max_pixels=value)
    proc = run(bundle, images / "small.png")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: input_spec.json: image max_pixels ")
    assert "is not a positive whole number" in proc.stderr


def test_package_records_the_limit_in_input_spec(tmp_path):
    from edgetransfer.bundle.inputs import _image
    from edgetransfer.modeling import efficientnet_lite

    class Session:
        def get_inputs(self):
            class I:  # noqa: E742
                shape = ["batch", 3, "height", "width"]
            return [I()]

    efficientnet_lite.processor(32).save_pretrained(tmp_path)
    assert _image(tmp_path, Session())["image"]["max_pixels"] == pixels.MAX_IMAGE_PIXELS
    assert _image(tmp_path, Session(), 123_456)["image"]["max_pixels"] == 123_456
