"""Images are untrusted input: a decompression bomb (a header that claims more pixels than the
limit, however small the file), an empty file or an absurd strip is refused in one line that
names the file and its size, exit 2, from the header alone, before a pixel is decoded; the
limit is --max-image-pixels (pixels.MAX_IMAGE_PIXELS by default) on every command that reads
images, and a recipe's data.max_image_pixels reaches every step."""

from __future__ import annotations

import io
import re
import warnings

import pytest
from conftest import draw, png_header, write_image_folder
from PIL import Image

from edgetransfer.bundle.runtime import pixels


def png_bytes(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture()
def data(tmp_path):
    return write_image_folder(tmp_path / "data", {"train": 6, "validation": 2, "test": 2})


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny EfficientNet image classifier (circle, square), untrained: enough to be read."""
    from conftest import tiny_effnet_model

    from edgetransfer.modeling import efficientnet_lite

    folder = tmp_path_factory.mktemp("image-classifier")
    model = tiny_effnet_model()
    model.config.id2label, model.config.label2id = {0: "circle", 1: "square"}, \
        {"circle": 0, "square": 1}
    model.save_pretrained(folder)
    efficientnet_lite.processor(32).save_pretrained(folder)
    return folder


def finetune(model, root, out, *extra):
    return ["-q", "finetune", "--model", model, "--train", root / "train", "--validation",
            root / "validation", "--out", out, "--epochs", "1", "--batch-size", "4",
            "--patience", "0", *extra]


BOMB = png_header(100_000, 100_000)  # 10 gigapixels, 30 GB decoded, in 65 bytes


@pytest.mark.parametrize("case, extra, message", [
    ("bomb", (), r"circle/0.png: 100000x100000 px \(10,000 Mpx in a 65-byte file\) is over "
                 r"the limit of 64 Mpx; decoded, it would take 27.9 GB or more; downscale it, "
                 r"or raise --max-image-pixels$"),
    # between Pillow's warning (89 Mpx) and its error (179 Mpx): Pillow would only warn
    ("pillow-warns", (), r"circle/0.png: 10000x10000 px \(100 Mpx in a 65-byte file\) is over "
                         r"the limit of 64 Mpx"),
    # under Pillow's warning: Pillow alone would decode all 243 MB of it
    ("pillow-silent", (), r"circle/0.png: 9000x9000 px \(81 Mpx in a 65-byte file\) is over "
                          r"the limit of 64 Mpx"),
    ("flag", ("--max-image-pixels", "50000"),
     r"circle/0.png: 300x300 px \(90,000 px in a [0-9,]+-byte file\) is over the limit of "
     r"50,000 px; decoded, it would take 264 KB or more"),
    ("empty", (), r"circle/0.png: the file is empty \(0 bytes\), not an image; replace it$"),
    ("strip", (), r"circle/0.png: 4000x20 px: one side is 200 times the other \(at most "
                  r"100\); squashed into the model's input it keeps nothing to classify"),
])
def test_a_bomb_an_empty_file_or_a_strip_is_refused_before_decoding(
        cli, tmp_path, tiny_effnet, data, case, extra, message):
    target = data / "train" / "circle" / "0.png"
    if case == "bomb":
        target.write_bytes(BOMB)
    elif case == "pillow-warns":
        target.write_bytes(png_header(10_000, 10_000))
    elif case == "pillow-silent":
        target.write_bytes(png_header(9_000, 9_000))
    elif case == "flag":
        draw("circle", 0, 300).save(target)
    elif case == "empty":
        target.write_bytes(b"")
    elif case == "strip":
        Image.new("L", (4000, 20)).save(target)
    before = target.read_bytes()
    out = tmp_path / "out"
    code, err = cli(*finetune(tiny_effnet, data, out, *extra))
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and re.search(message, lines[0])
    assert str(target) in lines[0]
    assert "Traceback" not in err and "DecompressionBomb" not in err
    assert not out.exists() and not list(tmp_path.glob(".out*"))  # nothing written
    assert target.read_bytes() == before


def test_the_limit_is_inclusive_and_raised_by_the_option(cli, tmp_path, tiny_effnet, data):
    from edgetransfer.data import images

    draw("square", 1, 300).save(data / "train" / "square" / "big.png")  # 90,000 px
    _, _, sizes = images.read(str(data / "train"), max_pixels=90_000)
    assert (300, 300) in sizes
    with pytest.raises(Exception, match=r"big.png: 300x300 px .* over the limit of 89,999 px"):
        images.read(str(data / "train"), max_pixels=89_999)
    out = tmp_path / "out"
    code, err = cli(*finetune(tiny_effnet, data, out, "--max-image-pixels", "90000"))
    assert code == 0, err
    settings = (out / "settings.json").read_text()
    assert '"max_image_pixels": 90000' in settings  # recorded with the run's settings
    code, err = cli(*finetune(tiny_effnet, data, tmp_path / "o2", "--max-image-pixels", "0"))
    assert code == 2 and "--max-image-pixels 0: Input should be greater than or equal to 1" \
        in err


def test_a_bomb_held_as_bytes_in_a_table(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from edgetransfer.data import images
    from edgetransfer.errors import DataError

    good = png_bytes(draw("circle", 0, 32))
    path = tmp_path / "images.parquet"
    pq.write_table(pa.table({"image": [good, BOMB, b""], "label": ["c", "s", "c"]}), path)
    with pytest.raises(DataError) as e:
        images.read(str(path), label_candidates=("label",))
    assert str(e.value) == (
        f"{path}: row 1: 100000x100000 px (10,000 Mpx in a 65-byte file) is over the limit of "
        f"64 Mpx; decoded, it would take 27.9 GB or more; downscale it, or raise "
        f"--max-image-pixels (2 unusable images in all)")


def test_pillow_never_warns_and_its_guard_is_restored(tmp_path):
    saved = Image.MAX_IMAGE_PIXELS
    (tmp_path / "a.png").write_bytes(png_header(10_000, 10_000))  # Pillow's warning zone
    (tmp_path / "b.png").write_bytes(png_header(20_000, 20_000))  # Pillow's error zone
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a raw DecompressionBombWarning would fail here
        for name, size in (("a.png", "10000x10000"), ("b.png", "20000x20000")):
            with pytest.raises(pixels.ImageProblem, match=f"{name}: {size} px"):
                pixels.open_image(str(tmp_path / name))
    assert Image.MAX_IMAGE_PIXELS == saved
    # raised by the option, the same image is decoded (here: found truncated, as it is)
    with pytest.raises(pixels.ImageProblem, match="a.png: damaged or truncated image"):
        pixels.open_image(str(tmp_path / "a.png"), max_pixels=10**8)
    assert Image.MAX_IMAGE_PIXELS == saved


def test_a_limit_above_pillows_lets_training_decode_what_was_checked(tmp_path, monkeypatch):
    """datasets decodes each image again in training, with Pillow's own guard: a
    --max-image-pixels above it raises Pillow's for the process (never lowers it)."""
    from edgetransfer.data import images

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    root = write_image_folder(tmp_path / "d", {"train": 2})
    images.read(str(root / "train"), max_pixels=2000)  # (they are 40x40 px)
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # (Pillow's default, untouched)
    images.read(str(root / "train"), max_pixels=200_000_000)
    assert Image.MAX_IMAGE_PIXELS == 200_000_000


def test_every_command_that_reads_images_reads_them_under_the_limit(cli, tmp_path, data,
                                                                    checkpoint, tiny_effnet):
    bad = data / "test" / "square" / "0.png"
    bad.write_bytes(BOMB)
    said = f"{bad}: 100000x100000 px (10,000 Mpx in a 65-byte file) is over the limit of 64 Mpx"
    runs = {
        "verify": ("verify", "--reference", checkpoint, "--candidate", f"same={checkpoint}",
                   "--data", data / "test", "--out", tmp_path / "verify.json"),
        "export eval": ("export", "--model", checkpoint, "--quantize", "fp16", "--eval-data",
                        data / "test", "--out", tmp_path / "onnx"),
        "export calibration": ("export", "--model", checkpoint, "--quantize", "int8-static",
                               "--calibration-data", data / "test", "--out", tmp_path / "onnx"),
        "distill unlabeled": ("distill", "--teacher", checkpoint, "--train", data / "train",
                              "--validation", data / "validation", "--unlabeled",
                              data / "test", "--out", tmp_path / "student"),
    }
    for name, args in runs.items():
        code, err = cli("-q", *args)
        assert code == 2, (name, err)
        assert err.strip().splitlines() == [f"error: {said}; decoded, it would take 27.9 GB or "
                                            f"more; downscale it, or raise --max-image-pixels"], \
            (name, err)
    assert not any(p.exists() for p in (tmp_path / "verify.json", tmp_path / "onnx",
                                        tmp_path / "student"))
    # --unlabeled follows the run's --max-image-pixels (the train images are 40x40 px)
    bad.unlink()
    draw("square", 5, 60).save(data / "test" / "square" / "big.png")  # 3,600 px
    code, err = cli("-q", "distill", "--teacher", checkpoint, "--train", data / "train",
                    "--validation", data / "validation", "--unlabeled", data / "test",
                    "--max-image-pixels", "2000", "--out", tmp_path / "student")
    assert code == 2 and "test/square/big.png: 60x60 px (3,600 px in a " in err, err
    assert "is over the limit of 2,000 px" in err and not (tmp_path / "student").exists()


@pytest.mark.parametrize("command", ["finetune", "distill", "export", "verify", "predict",
                                     "package"])
def test_the_option_is_on_every_command_that_reads_images(cli, command):
    code, text = cli(command, "--help")
    assert code == 0
    flat = " ".join(text.split())
    assert "--max-image-pixels" in flat
    if command != "predict":
        assert "[default: 64000000]" in flat
    else:  # the bundle's own, then the runtime's
        assert "[default: the bundle's, input_spec.json image.max_pixels; else 64000000]" in flat


def test_a_recipe_sets_the_limit_for_every_step(tmp_path):
    from edgetransfer import pipeline
    from edgetransfer import recipe as recipes

    root = write_image_folder(tmp_path / "data", {"train": 2, "test": 2})
    recipe = tmp_path / "recipes" / "imgs.yaml"
    recipe.parent.mkdir()
    recipe.write_text(f"""name: imgs
task: image-classification
model: efficientnet-lite0
data:
  train: {root / 'train'}
  test: {root / 'test'}
  max_image_pixels: 90000
finetune: {{}}
distill: {{}}
export:
  - name: fp32
    quantize: none
verify: {{}}
package: {{target: linux-x86_64}}
""")
    loaded, _ = recipes.load(recipe)
    steps = pipeline.plan(loaded, recipe, recipes.output_root(loaded, recipe))
    assert {p.step for p in steps} == {"finetune", "distill", "export", "verify", "package"}
    assert all(p.config.max_image_pixels == 90000 for p in steps)


def test_a_table_naming_an_image_out_of_its_folder_is_refused(tmp_path):
    from edgetransfer.data import images
    from edgetransfer.errors import DataError

    folder = tmp_path / "data"
    folder.mkdir()
    for name, line in (("dotdot", "../secret.png"), ("absolute", str(tmp_path / "x.png"))):
        table = folder / f"{name}.csv"
        table.write_text(f"image,label\nok.png,a\n{line},b\n")
        with pytest.raises(DataError, match=r"line 3: image path .* leaves the file's "
                                            r"folder; keep the table in the folder"):
            images.read_table_images(str(table), None, None, ("label",))
