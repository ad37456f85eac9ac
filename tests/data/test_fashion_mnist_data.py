"""recipes/data/fashion_mnist.py on Debian's files (skips where dataset-fashion-mnist is not
installed): the image-folder layout the recipe reads, written atomically."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "recipes/data/fashion_mnist.py"
SOURCE = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not (SOURCE / "t10k-images-idx3-ubyte.gz").exists(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_the_script_writes_class_folders(tmp_path):
    from PIL import Image

    from edgetransfer.data import images

    out = tmp_path / "fm"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), "--limit", "50"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["test", "train"]
    assert len(list((out / "train").iterdir())) == 10
    assert sum(1 for _ in (out / "train").rglob("*.png")) == 50
    first = next((out / "test").rglob("*.png"))
    assert Image.open(first).size == (28, 28) and Image.open(first).mode == "L"
    _, labels = images.read_folder(out / "test")
    assert len(labels) == 50 and len(set(labels)) > 5
    again = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)],
                           capture_output=True, text=True)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_missing_source_files_are_named(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--source", str(tmp_path),
                           "--out", str(tmp_path / "fm")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: {tmp_path}/train-images-idx3-ubyte.gz: not found")
    assert not (tmp_path / "fm").exists()
