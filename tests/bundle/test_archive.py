"""Bundle archives: hostile members and oversized archives are refused before anything lands."""

from __future__ import annotations

import io
import tarfile

import pytest


def _info(name: str, kind=tarfile.REGTYPE, data: bytes = b"x", link: str = ""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, (io.BytesIO(data) if kind == tarfile.REGTYPE else None)


@pytest.mark.parametrize("case, why", [
    ("symlink", "is a symlink"),
    ("hardlink", "is a hard link"),
    ("device", "is a device or FIFO"),
    ("parent", "unsafe file name"),
    ("absolute", "unsafe file name"),
    ("duplicate", "appears twice"),
    ("unlisted", "which manifest.json does not list"),
    ("no-manifest", "no manifest.json at its top"),
])
def test_hostile_archives_are_refused(case, why, built, cli, tmp_path):
    escape = tmp_path / "escaped.txt"
    hostile = {
        "symlink": _info("bundle/labels.json", tarfile.SYMTYPE, link="/etc/passwd"),
        "hardlink": _info("bundle/labels.json", tarfile.LNKTYPE, link="/etc/passwd"),
        "device": _info("bundle/labels.json", tarfile.CHRTYPE),
        "parent": _info("bundle/../../escaped.txt"),
        "absolute": _info(str(escape)),
        "duplicate": _info("bundle/labels.json", data=b'["a", "b"]'),
        "unlisted": _info("bundle/extra.py"),
    }.get(case)
    archive = tmp_path / "hostile.tar.gz"
    with tarfile.open(built.parent / "bundle.tar.gz") as src, \
            tarfile.open(archive, "w:gz") as dst:
        if hostile and case not in ("duplicate", "unlisted"):
            dst.addfile(*hostile)  # first: refused before anything else is written
        for m in src.getmembers():
            if case == "no-manifest" and m.name.endswith("manifest.json"):
                continue
            dst.addfile(m, src.extractfile(m))
        if case in ("duplicate", "unlisted"):
            dst.addfile(*hostile)
    code, out = cli("predict", "--bundle", archive, "hello")
    assert code == 2, out
    assert "refused" in out and why in out
    assert not escape.exists() and not (tmp_path.parent / "escaped.txt").exists()


def test_an_archive_over_the_size_cap_is_refused(built, cli, monkeypatch):
    from edgetransfer.bundle import archive as bundle

    monkeypatch.setattr(bundle, "MAX_BYTES", 100_000)
    code, out = cli("predict", "--bundle", built.parent / "bundle.tar.gz", "hi")
    assert code == 2 and "refused: unpacks to more than 100,000 bytes" in out
