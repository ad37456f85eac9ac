"""Bundle archives: written byte-for-byte reproducibly, opened defensively.

Writing: regular files only, sorted by path, under one top folder (so `tar xzf` makes one
folder, not a mess in the current one); mtime 0, uid/gid 0, no user or group names, mode
0644 (0755 where the file is executable); gzip with no file name and mtime 0 in its header.
The same files give the same bytes (with the same zlib), so a rebuild can be compared by
sha256.

Opening: members are streamed to a fresh folder by hand rather than with `extractall`:
links, devices, FIFOs, absolute names, `..`, duplicates, oversized members and too many
members are refused before anything lands, and then every file is checked against
manifest.json (the runtime's own check) and a file the manifest does not list is refused.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tarfile
import zlib
from pathlib import Path

from ..errors import ModelError
from .runtime.predict import MANIFEST, MAX_FILES, BundleError, check_files, member, safe_relative

MAX_BYTES = 2 * 2**30  # 2 GiB unpacked, each file and all together: above any edge model,
# and a stop for gzip bombs
HEADER_MARGIN = 16 * 2**20  # tar headers beyond the files' bytes: 512 bytes a member, and
# a pax record or long name of a few KB


def write_archive(folder: Path, dest: Path, top: str, exclude: tuple[str, ...] = ()) -> None:
    """`folder`'s files (but `exclude`, names relative to it) as a deterministic .tar.gz."""
    files = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink():
            raise ModelError(f"{path}: is a link; a bundle holds regular files only")
        if path.is_file() and rel not in exclude:
            files.append((rel, path))
    with open(dest, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel, path in sorted(files):
            info = tarfile.TarInfo(f"{top}/{rel}")
            info.size = path.stat().st_size
            info.mtime = 0
            info.mode = 0o755 if path.stat().st_mode & 0o100 else 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with path.open("rb") as f:
                tar.addfile(info, f)


def extract(archive: Path, dest: Path) -> tuple[Path, dict]:
    """Unpack `archive` into the empty folder `dest`, checked; return the bundle's folder
    and its manifest."""
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise ModelError(f"{dest}: must be an empty folder to unpack a bundle into")
    if not archive.is_file():
        raise ModelError(f"--bundle {archive}: no such file")
    names: set[str] = set()
    total = 0
    try:
        with _Bounded(archive) as gz, tarfile.open(fileobj=gz, mode="r:") as tar:
            for member in tar:  # headers are read as we go: refuse before reading further
                name = _member_name(archive, member)
                if member.isdir():
                    continue  # made as needed; other tools add folder entries
                if not member.isreg():
                    kind = ("a symlink" if member.issym() else "a hard link" if member.islnk()
                            else "a device or FIFO")
                    _refuse(archive, f"member {member.name!r} is {kind}; a bundle holds "
                            f"regular files only")
                if name in names:
                    _refuse(archive, f"member {member.name!r} appears twice")
                names.add(name)
                if len(names) > MAX_FILES:
                    _refuse(archive, f"more than {MAX_FILES} files")
                total += member.size
                if total > MAX_BYTES:
                    _refuse(archive, f"unpacks to more than {MAX_BYTES:,} bytes")
                target = dest / name
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as src, open(target, "xb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                os.chmod(target, 0o755 if member.mode & 0o100 else 0o644)
    except _TooLarge:
        _refuse(archive, f"unpacks to more than {MAX_BYTES:,} bytes")
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        _refuse(archive, f"not a complete .tar.gz ({type(e).__name__}: {e})")
    except OSError as e:  # a file and a folder of one name, and the like
        _refuse(archive, f"cannot be unpacked ({e.strerror}: {e.filename})")
    root = _root(archive, dest, names)
    try:
        manifest = check_files(root)
    except BundleError as e:
        raise ModelError(f"--bundle {archive}: {e}") from None
    prefix = root.relative_to(dest).as_posix()
    listed = {f"{prefix}/{n}" if prefix != "." else n for n in manifest["files"]}
    unlisted = sorted(names - listed - {f"{prefix}/{MANIFEST}" if prefix != "." else MANIFEST})
    if unlisted:
        _refuse(archive, f"holds {unlisted[0]!r}, which manifest.json does not list")
    return root, manifest


class _TooLarge(Exception):
    pass


class _Bounded(gzip.GzipFile):
    """The archive's tar stream, decompressed no further than MAX_BYTES (plus a margin for
    headers): tarfile reads a whole pax or GNU long-name header into memory before a member
    size can be checked, and a header may claim gigabytes."""

    def __init__(self, path: Path):
        super().__init__(filename=str(path), mode="rb")
        self.limit = MAX_BYTES + HEADER_MARGIN

    def read(self, size=-1):
        data = super().read(self.limit + 1 - self.tell() if size is None or size < 0
                            else size)
        if self.tell() > self.limit:
            raise _TooLarge()
        return data

    def seek(self, offset, whence=0):
        position = super().seek(offset, whence)
        if position > self.limit:
            raise _TooLarge()
        return position


def _member_name(archive: Path, member: tarfile.TarInfo) -> str:
    try:
        return str(safe_relative(member.name))
    except BundleError as e:
        _refuse(archive, str(e))


def _root(archive: Path, dest: Path, names: set[str]) -> Path:
    """The folder holding manifest.json: the archive's top folder, or its top level."""
    if MANIFEST in names:
        return dest
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) == 1 and f"{next(iter(tops))}/{MANIFEST}" in names:
        return dest / next(iter(tops))
    _refuse(archive, f"no {MANIFEST} at its top (one folder holding the bundle's files)")


def _refuse(archive: Path, why: str):
    raise ModelError(f"--bundle {archive}: refused: {why}")


def check_runtime(folder: Path, manifest: dict, where: str) -> None:
    """The bundle's runtime code (predict.py, pixels.py, fixed_shapes.py) is byte for byte
    this edgetransfer's:
    a command that runs it for the user (device, on their board) runs no one else's code."""
    from .runtime import SOURCE, fixed_shapes, pixels

    for name, ours in (("predict.py", SOURCE), ("pixels.py", Path(pixels.__file__)),
                       ("fixed_shapes.py", Path(fixed_shapes.__file__))):
        if name not in manifest["files"] and name != "predict.py":
            continue
        try:
            theirs = member(folder, manifest, name, "bundle").read_bytes()
        except BundleError as e:
            raise ModelError(f"{where}: {e}") from None
        if theirs != ours.read_bytes():
            raise ModelError(f"{where}: its {name} is not this edgetransfer's runtime (another "
                             f"version built it, or it was changed); it is not run here. "
                             f"Rebuild the bundle with this version's `edgetransfer package`")


def model_file(folder: Path, manifest: dict, where: str) -> tuple[Path, str | None]:
    """(the model file manifest.json's "model" names, checked inside the bundle and listed;
    its precision)."""
    entry = manifest.get("model")
    if not isinstance(entry, dict):
        raise ModelError(f"{where}: manifest.json has no model entry")
    try:
        path = member(folder, manifest, entry.get("file"), "manifest.json model file")
    except BundleError as e:
        raise ModelError(f"{where}: {e}") from None
    precision = entry.get("precision")
    return path, precision if isinstance(precision, str) else None


def open_bundle(bundle: Path, scratch: Path) -> tuple[Path, dict]:
    """A bundle given as its folder or its archive (unpacked into `scratch` by `extract`),
    every file checked against its manifest: (the folder, the manifest)."""
    if bundle.is_file():
        return extract(bundle, scratch / "bundle")  # (checked as it is unpacked)
    if not bundle.is_dir():
        raise ModelError(f"--bundle {bundle}: no such file or folder")
    try:
        return bundle, check_files(bundle)
    except BundleError as e:
        raise ModelError(str(e)) from None
