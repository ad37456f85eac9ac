"""Artifact folders: built under a temporary name, renamed into place when complete.

A stage writes into ``.<name>.partial`` beside its final folder and renames it only after
every file is written, so a crash or Ctrl-C never leaves half an artifact under the final
name; the partial folder is what ``--resume`` continues from. ``artifact.json`` records
what made the artifact: kind, settings, parents, metrics, and every file's sha256.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import shutil
from importlib import metadata
from pathlib import Path

from .errors import OutputError

log = logging.getLogger(__name__)
MANIFEST = "artifact.json"


def write_json(path: Path, obj) -> None:
    """Write JSON so a reader never sees a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


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
                   parents: dict[str, str], packages=("torch", "transformers")) -> dict:
    files = {}
    for f in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST):
        rel = f.relative_to(folder).as_posix()
        files[rel] = {"sha256": sha256(f), "bytes": f.stat().st_size}
    manifest = {
        "kind": kind,
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
        final = self.final.resolve()
        for given in self.inputs:
            p = Path(given).resolve()
            if p == final or final in p.parents or p in final.parents:
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
        return self.resume and self.work.exists()

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
        """Move the finished partial folder to the final name, replacing an old result."""
        old = self.final.parent / f".{self.final.name}.old"
        if old.exists():
            shutil.rmtree(old)
        if self.final.exists():
            os.replace(self.final, old)
        os.replace(self.work, self.final)
        if old.exists():
            shutil.rmtree(old)
        return self.final
