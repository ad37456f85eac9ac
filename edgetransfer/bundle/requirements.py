"""A bundle's requirements.txt: written and read as pinned wheels with their sha256, nothing
else, because a bundle comes from someone else and pip runs what a requirement names.

A line pip would otherwise take can make it build and run code: a local folder or a URL (its
setup.py runs on the user's machine), an sdist, `-e`, `-r other.txt`, `--index-url` or
`--extra-index-url` (another index), `--trusted-host`. So the only line read is

    name==version --hash=sha256:HEX [--hash=sha256:HEX ...]    (continued with a backslash)

and comments; anything else is refused, naming the line, before pip sees the file. pip is
then handed a copy written here from the parsed pins (never the bundle's bytes), with
PIP_INSTALL's flags: wheels only, hashes required, no dependencies resolved (the pins are the
runtime's whole closure: onnxruntime imports numpy alone, tokenizers and Pillow nothing).

The hashes are the index's own, for every Linux x86_64/aarch64 wheel of the pinned version
(PEP 691 JSON or PEP 503 links of the installer's index), so one bundle is checked and
installed on any target the tool knows; a wheel pip downloads that matches none is refused
by pip (`--require-hashes`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from ..errors import EnvironmentProblem, ModelError
from ..platforms import PLATFORMS, arch
from .runtime.predict import PIP_INSTALL, BundleError, member

FILE = "requirements.txt"
MAX_BYTES = 256 * 2**10  # a few pins with their hashes take ~10 KB
MAX_PINS = 32  # the runtime needs three packages
MAX_HASHES = 256  # wheels of one version for every Python and platform: ~60 for numpy
# PEP 503 normalised names; PEP 440 public versions (no local "+cpu", no wildcard, no range)
NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
VERSION = r"\d+(?:\.\d+)*(?:(?:a|b|rc)\d+)?(?:\.post\d+)?(?:\.dev\d+)?"
LINE = re.compile(rf"({NAME})==({VERSION})((?:\s+--hash=sha256:[0-9a-f]{{64}})+)")
# the wheels a bundle's targets take: Linux on one of the platforms' architectures
# (manylinux), or pure Python
_ARCHS = "|".join(map(arch, PLATFORMS))
WHEEL_PLATFORM = re.compile(rf"(?:manylinux\w*_(?:{_ARCHS})|any)(?:\.|$)")
DEFAULT_INDEX = "https://pypi.org/simple"
TIMEOUT_S = 30


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    hashes: tuple[str, ...]

    @property
    def spec(self) -> str:
        return f"{self.name}=={self.version}"


def parse(text: str, where: str) -> list[Pin]:
    """The pins of a requirements file's text; ModelError naming the line for anything
    else. `where` names the file in messages."""
    if len(text.encode("utf-8")) > MAX_BYTES:
        raise ModelError(f"{where}: larger than {MAX_BYTES // 2**10} KiB; a bundle's "
                         f"requirements are a few pinned lines")
    pins, logical, first = [], "", 0
    for n, line in enumerate(text.splitlines(), 1):
        if not logical:
            first = n
        stripped = line.strip()
        if not logical and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            logical += stripped[:-1] + " "
            continue
        logical += stripped
        pins.append(_pin(logical.strip(), where, first))
        logical = ""
        if len(pins) > MAX_PINS:
            raise ModelError(f"{where}: more than {MAX_PINS} requirements; a bundle's runtime "
                             f"needs a few")
    if logical:
        raise ModelError(f"{where}: line {first}: ends in a continuation with nothing after it")
    if not pins:
        raise ModelError(f"{where}: lists no requirements")
    names = [normalise(p.name) for p in pins]
    twice = next((n for n in names if names.count(n) > 1), None)
    if twice:
        raise ModelError(f"{where}: {twice} is pinned twice")
    return pins


def normalise(name: str) -> str:
    """A project name as PEP 503 compares them ("Pillow", "pillow" and "PILLOW" are one)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_prefix(name: str, version: str) -> str:
    """How a wheel file of this project and version begins (lower-cased: compare so)."""
    return f"{normalise(name).replace('-', '_')}-{version}-"


def _pin(line: str, where: str, n: int) -> Pin:
    m = LINE.fullmatch(line)
    if not m:
        shown = line if len(line) <= 80 else line[:77] + "..."
        raise ModelError(
            f"{where}: line {n}: {shown!r} is not a pinned wheel (name==version "
            f"--hash=sha256:...); refused before pip saw it: a URL, a path, an option or an "
            f"unpinned name could make pip build and run code. Rebuild the bundle with "
            f"`edgetransfer package`")
    hashes = tuple(re.findall(r"[0-9a-f]{64}", m.group(3)))
    if len(hashes) > MAX_HASHES:
        raise ModelError(f"{where}: line {n}: more than {MAX_HASHES} hashes")
    return Pin(m.group(1), m.group(2), hashes)


def read(folder: Path, manifest: dict, where: str) -> list[Pin]:
    """The bundle's requirements.txt (listed in its manifest, inside its folder), parsed."""
    try:
        path = member(folder, manifest, FILE, "bundle")
    except BundleError as e:
        raise ModelError(f"{where}: {e}") from None
    with open(path, "rb") as f:
        raw = f.read(MAX_BYTES + 1)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ModelError(f"{where}: {FILE}: byte {e.start} is not UTF-8") from None
    return parse(text, f"{where}: {FILE}")


def render(pins: list[Pin], header: str = "") -> str:
    """requirements.txt's text: the header's lines as comments, then one pin a line."""
    lines = [f"# {h}" for h in header.splitlines()]
    for pin in pins:
        lines.append(pin.spec + "".join(f" \\\n    --hash=sha256:{h}" for h in pin.hashes))
    return "\n".join(lines) + "\n"


def write_for_pip(pins: list[Pin], path: Path) -> Path:
    """The pins, as this module wrote and checked them, in a file pip reads: never the
    bundle's own bytes."""
    path.write_text(render(pins, "checked by edgetransfer; pip installs these wheels only"),
                    encoding="utf-8")
    return path


def install_command(requirements: str = FILE) -> str:
    """The one command that installs a bundle's requirements (the README's, the runtime's)."""
    return " ".join(PIP_INSTALL) + f" -r {requirements}"


# --- hashes, from the installer's index, when the bundle is built

def hashed(specs: list[tuple[str, str]]) -> list[Pin]:
    """(name, version) pins with the sha256 of each of their target wheels on the index;
    EnvironmentProblem (exit 4) when a pin gets none."""
    index = index_url()
    pins = []
    for name, version in specs:
        try:
            found = index_hashes(index, name, version)
        except (OSError, ValueError, RecursionError, AttributeError) as e:  # (unreachable,
            raise EnvironmentProblem(                                     # or a bad page)
                f"{name}=={version}: its wheels' sha256 could not be read from the package "
                f"index {index} ({' '.join(str(e).split())[:120]}); a bundle pins each wheel "
                f"by hash. Run where the index is reachable, or set PIP_INDEX_URL to a "
                f"mirror") from None
        if not found:
            raise EnvironmentProblem(f"{name}=={version}: the index {index} lists no Linux "
                                     f"x86_64/aarch64 wheel of it to pin by hash")
        pins.append(Pin(name, version, tuple(sorted(found))))
    return pins


def index_url() -> str:
    """The index pip installs from here: PIP_INDEX_URL, pip's configuration, else PyPI."""
    url = os.environ.get("PIP_INDEX_URL")
    if not url:
        proc = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                              capture_output=True, text=True)
        url = proc.stdout.strip() if proc.returncode == 0 else ""
    return (url or DEFAULT_INDEX).split()[0].rstrip("/")


def index_hashes(index: str, name: str, version: str) -> set[str]:
    """sha256 of `name`'s `version` wheels for the bundle's targets, from the index's project
    page: PEP 691 JSON where the index speaks it, PEP 503 links (#sha256=) otherwise."""
    request = urllib.request.Request(f"{index}/{normalise(name)}/", headers={
        "Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.1"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        kind = response.headers.get("Content-Type", "")
        body = response.read(64 * 2**20).decode("utf-8", "replace")
    if "json" in kind:
        files = [(f.get("filename", ""), (f.get("hashes") or {}).get("sha256"))
                 for f in json.loads(body).get("files", [])]
    else:
        links = _Links()
        links.feed(body)
        files = links.files
    prefix = wheel_prefix(name, version)
    return {h for filename, h in files
            if h and filename.lower().startswith(prefix) and filename.endswith(".whl")
            and WHEEL_PLATFORM.search(filename[:-4].rsplit("-", 1)[-1])}


class _Links(HTMLParser):
    """(file name, sha256) of a PEP 503 page's links."""

    def __init__(self):
        super().__init__()
        self.files: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        href = dict(attrs).get("href") if tag == "a" else None
        if href:
            url, _, fragment = href.partition("#")
            h = fragment[len("sha256="):] if fragment.startswith("sha256=") else None
            self.files.append((url.rsplit("/", 1)[-1], h))
