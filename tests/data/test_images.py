"""Reading labelled images: folders of class folders, tables of paths or bytes, and every
bad input the issue names, each refused in one line that names it (exit 2, no traceback)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from conftest import draw, image_args, write_image_folder
from PIL import Image


def folder(tmp_path, counts=None):
    return write_image_folder(tmp_path / "data", counts or {"train": 6, "validation": 2,
                                                            "test": 2})


def test_a_folder_and_a_table_read_the_same(tmp_path):
    from edgetransfer.data import images

    root = folder(tmp_path)
    ds, where, sizes = images.read(str(root / "train"), label_candidates=("label",))
    assert len(ds) == 12 and sorted(set(ds["label"])) == ["circle", "square"]
    assert ds[0]["image"].size == (40, 40) and where[0].endswith("circle/0.png")
    assert sizes == [(40, 40)] * 12
    rows = [{"file": f"train/{label}/{i}.png", "label": label}
            for label in ("circle", "square") for i in range(6)]
    table = root / "train.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    from_table, _, _ = images.read(str(table), label_candidates=("label",))
    assert from_table["label"] == ds["label"]
    assert [np.asarray(a).tolist() for a in from_table["image"][:3]] == \
        [np.asarray(a).tolist() for a in ds["image"][:3]]


def test_a_parquet_of_image_bytes(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from edgetransfer.data import images

    blobs = []
    for i in range(4):
        buf = io.BytesIO()
        draw("circle" if i % 2 else "square", i, 32).save(buf, "PNG")
        blobs.append(buf.getvalue())
    path = tmp_path / "images.parquet"
    pq.write_table(pa.table({"image": blobs, "label": ["c", "s"] * 2}), path)
    ds, where, _ = images.read(str(path), label_candidates=("label",))
    assert len(ds) == 4 and ds[1]["image"].size == (32, 32)
    assert where[0] == f"{path}: row 0"


@pytest.mark.parametrize("damage, message", [
    ("truncated", r"circle/0.png: damaged or truncated image .*; replace the file "
                  r"\(2 unusable images in all\)"),
    ("not-an-image", r"circle/0.png: not an image of the formats read here"),
    ("stray-file", r"circle/notes.txt: not an image file \(.txt; images are .png"),
    ("empty-class", r"train/triangle: an empty class folder; add images of 'triangle'"),
    ("loose-file", r"train/readme.md: a file beside the class folders"),
    ("float-pixels", r"circle/0.tif: pixel mode 'F' \(e.g. float\) has no agreed 8-bit range"),
])
def test_bad_training_images_are_named(cli, tmp_path, tiny_effnet, damage, message):
    root = folder(tmp_path)
    c = root / "train" / "circle"
    if damage == "truncated":
        for name in ("0.png", "1.png"):
            raw = (c / name).read_bytes()
            (c / name).write_bytes(raw[: len(raw) // 2])
    elif damage == "not-an-image":
        (c / "0.png").write_text("hello")
    elif damage == "stray-file":
        (c / "notes.txt").write_text("hello")
    elif damage == "empty-class":
        (root / "train" / "triangle").mkdir()
    elif damage == "loose-file":
        (root / "train" / "readme.md").write_text("hello")
    elif damage == "float-pixels":
        Image.new("F", (40, 40)).save(c / "0.tif")
    before = sorted(p.name for p in c.iterdir())
    code, err = cli(*image_args(tiny_effnet, root, tmp_path / "out"))
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("error: ") and __import__("re").search(message, err), err
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in c.iterdir()) == before  # the input is untouched


def test_awkward_modes_are_converted(cli, tmp_path, tiny_effnet):
    root = folder(tmp_path)
    c = root / "train" / "circle"
    Image.fromarray((np.asarray(draw("circle", 7, 40)).astype(np.uint16) * 257)).save(
        c / "deep.png")  # 16-bit grey
    draw("circle", 8, 40, "CMYK").save(c / "print.jpg")
    draw("circle", 9, 40, "RGBA").save(c / "alpha.png")
    code, err = cli(*image_args(tiny_effnet, root, tmp_path / "out", "--epochs", "1"))
    assert code == 0, err
    assert json.loads((tmp_path / "out" / "settings.json").read_text())["rows"]["train"] == 15


def test_an_image_too_small_for_the_model(cli, tmp_path, tiny_effnet):
    root = folder(tmp_path)
    draw("square", 0, 3).save(root / "train" / "square" / "speck.png")
    code, err = cli(*image_args(tiny_effnet, root, tmp_path / "out", "--image-size", "32"))
    assert code == 2
    assert err.startswith("error: ") and "train/square/speck.png: 3x3 px is too small for this " \
        "model's 32x32 input (at least 4 px a side" in err
    assert not (tmp_path / "out").exists()  # refused before any training


def test_a_test_class_training_never_saw(cli, tmp_path, image_teacher, image_data):
    import shutil

    test = tmp_path / "test"
    shutil.copytree(image_data / "test", test)
    (test / "triangle").mkdir()
    draw("circle", 0, 40).save(test / "triangle" / "0.png")
    code, err = cli("verify", "--reference", image_teacher, "--candidate", f"same={image_teacher}",
                    "--data", test, "--out", tmp_path / "verify.json")
    assert code == 2
    assert f"{test}/triangle: a class folder training never saw; the model's classes are " \
           f"['circle', 'square']" in err


def test_a_parquet_that_datasets_wrote(tmp_path):
    from datasets import Dataset
    from datasets import Image as ImageFeature

    from edgetransfer.data import images

    files = []
    for i in range(3):
        files.append(str(tmp_path / f"{i}.png"))
        draw("square", i, 30).save(files[-1])
    path = tmp_path / "hub.parquet"
    Dataset.from_dict({"image": files, "label": ["a", "b", "a"]}).cast_column(
        "image", ImageFeature()).to_parquet(str(path))
    ds, _, sizes = images.read(str(path), label_candidates=("label",))
    assert ds["label"] == ["a", "b", "a"] and sizes == [(30, 30)] * 3


def test_exif_orientation_is_read_as_training_reads_it(tmp_path):
    """A phone photo stored sideways with an EXIF orientation tag: datasets (training, verify)
    and the bundle's pixels.py must turn it the same way."""
    from datasets import Dataset
    from datasets import Image as ImageFeature

    from edgetransfer.bundle.runtime import pixels

    photo = Image.fromarray(np.arange(24 * 40 * 3, dtype=np.uint8).reshape(24, 40, 3))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    path = tmp_path / "phone.jpg"
    photo.save(path, exif=exif.tobytes(), quality=95)
    seen = Dataset.from_dict({"image": [str(path)]}).cast_column("image", ImageFeature())[0]
    ours = pixels.load_rgb(str(path), None)
    assert ours.size == seen["image"].size == (24, 40)
    assert np.array_equal(np.asarray(ours), np.asarray(seen["image"].convert("RGB")))


def test_image_data_must_be_local(cli, tmp_path, tiny_effnet):
    code, err = cli("-q", "finetune", "--model", tiny_effnet, "--task", "image-classification",
                    "--train", "beans", "--out", tmp_path / "out")
    assert code == 2 and "beans: no such folder or file; image data is a local folder" in err
