"""Run a bundle's predict.py on an emulated ARM CPU (Raspberry Pi 4's Cortex-A72, Pi 5's
Cortex-A76) with qemu's user-mode emulator, an arm64 Python and the bundle's requirements as
aarch64 wheels: proof, on an x86 build machine, that the bundle runs on the board's CPU.

What it needs and why (each found the hard way):
- `qemu-aarch64-static` (Debian's qemu-user-static), called directly with `-L SYSROOT`: no
  binfmt_misc registration, nothing changed on the host.
- An arm64 Python without a root file system: Debian's arm64 python3.11 (bookworm, as
  Raspberry Pi OS bookworm) and the libraries it loads, fetched with a private apt
  configuration (its own lists, cache and empty status; never `dpkg --add-architecture`,
  which would replace the host's python3) and unpacked with `dpkg-deb -x`.
- The wheels: `pip install --target` with the aarch64 platform tags, abi3 included
  (tokenizers is an abi3 wheel).
- /proc/cpuinfo: onnxruntime reads it to pick kernels; qemu would show it the host's x86
  one and it crashes. SYSROOT/proc/cpuinfo (qemu's -L serves it) describes the emulated CPU,
  and QEMU_CPU pins that CPU: qemu's default `max` enables SVE, under which this qemu
  computes wrong int8 results, and a cpuinfo that promises instructions the CPU lacks gives
  SIGILL.
- `env -i`: none of the host's pip, certificate or Python settings leak in.

Everything is cached under ~/.cache/edgetransfer/arm64 (about 340 MB), built once, atomically.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..artifacts import cache_root
from ..errors import EnvironmentProblem

QEMU = "qemu-aarch64-static"
SUITE = "bookworm"  # Raspberry Pi OS bookworm: Python 3.11, glibc 2.36
PYTHON = "python3.11"
# Debian arm64 packages an arm64 python3.11 loads (its standard library and C libraries)
DEBS = ("python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib", "python3.11",
        "libstdc++6", "libgcc-s1", "libc6", "zlib1g", "libexpat1", "libffi8", "libssl3",
        "libbz2-1.0", "liblzma5", "libsqlite3-0", "libuuid1", "libncursesw6", "libtinfo6",
        "libreadline8", "libdb5.3", "libgdbm6", "libnsl2", "libtirpc3", "libcrypt1",
        "media-types")
# The aarch64 wheel tags pip may take (manylinux 2.28 down to 2014; abi3 for tokenizers)
WHEEL_TAGS = ["--platform", "manylinux_2_28_aarch64", "--platform",
              "manylinux_2_17_aarch64", "--platform", "manylinux2014_aarch64",
              "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
              "--abi", "abi3", "--abi", "none"]
# The emulated CPUs: qemu's model name -> the /proc/cpuinfo a Linux kernel shows for it. The
# A76 has the dot-product instructions (asimddp) int8 kernels use; the A72 does not.
CPUS = {
    "cortex-a72": ("fp asimd evtstrm crc32 cpuid", "0x0", "0xd08", "3"),  # Raspberry Pi 4
    "cortex-a76": ("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid "
                   "asimdrdm lrcpc dcpop asimddp", "0x4", "0xd0b", "1"),  # Raspberry Pi 5
}



def qemu() -> str:
    path = shutil.which(QEMU)
    if path is None:
        raise EnvironmentProblem(f"{QEMU} is not installed; apt-get install qemu-user-static")
    return path


def cpuinfo(cpu: str, cores: int = 4) -> str:
    features, variant, part, revision = CPUS[cpu]
    return "".join(f"processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: {features}\n"
                   f"CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: {variant}\n"
                   f"CPU part\t: {part}\nCPU revision\t: {revision}\n\n" for i in range(cores))


def _run(cmd: list[str], what: str, **kw) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no message"]
        raise EnvironmentProblem(f"{what} failed: {last[0][:240]}")


def sysroot() -> Path:
    """An arm64 Debian Python unpacked into a folder (built once; atomic)."""
    root = _cache() / f"sysroot-{SUITE}"
    if (root / "usr/bin" / PYTHON).exists():
        return root
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise EnvironmentProblem("building the arm64 Python needs apt-get and dpkg-deb "
                                 "(a Debian or Ubuntu host)")
    root.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".sysroot-", dir=root.parent))
    try:
        for d in ("lists/partial", "cache/archives/partial", "tree/proc"):
            (work / d).mkdir(parents=True)
        (work / "status").touch()
        (work / "sources.list").write_text(
            f"deb [arch=arm64] http://deb.debian.org/debian {SUITE} main\n"
            f"deb [arch=arm64] http://deb.debian.org/debian-security {SUITE}-security main\n")
        settings = {"APT::Architecture": "arm64", "APT::Architectures": "arm64",
                    "Dir::State::Lists": work / "lists", "Dir::State::status": work / "status",
                    "Dir::Cache": work / "cache", "Dir::Etc::SourceList": work / "sources.list",
                    "Dir::Etc::SourceParts": "/dev/null", "Debug::NoLocking": 1}
        private = [x for k, v in settings.items() for x in ("-o", f"{k}={v}")]
        _run(["apt-get", *private, "-qq", "update"], "apt-get update (arm64, private lists)")
        debs = work / "cache/archives"
        _run(["apt-get", *private, "-qq", "download", *DEBS], "apt-get download (arm64)",
             cwd=debs)
        for deb in sorted(debs.glob("*.deb")):
            _run(["dpkg-deb", "-x", str(deb), str(work / "tree")], f"dpkg-deb -x {deb.name}")
        os.replace(work / "tree", root)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return root


def site_packages(requirements: Path) -> Path:
    """The bundle's requirements as aarch64 wheels, installed into their own folder (cached
    by the requirements' content). The file is parsed first (pinned wheels with their
    sha256, nothing else: bundle.requirements) and pip reads the checked copy, with
    PIP_FLAGS: nothing is built or run."""
    from ..bundle import requirements as pinned
    from ..bundle.runtime.predict import PIP_FLAGS

    with open(requirements, "rb") as f:
        raw = f.read(pinned.MAX_BYTES + 1)
    pins = pinned.parse(raw.decode("utf-8", "replace"), str(requirements))
    text = pinned.render(pins)
    key = hashlib.sha256(text.encode()).hexdigest()[:16]
    site = _cache() / f"site-{key}"
    if (site / ".complete").exists():
        return site
    work = Path(tempfile.mkdtemp(prefix=".site-", dir=_cache()))
    try:
        checked = pinned.write_for_pip(pins, work / ".requirements.txt")
        _run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
              "--target", str(work), *WHEEL_TAGS, *PIP_FLAGS, "-r", str(checked)],
             "pip install (aarch64 wheels)")
        (work / ".complete").touch()
        shutil.rmtree(site, ignore_errors=True)
        os.replace(work, site)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return site


def _prepare(cpu: str, requirements: Path) -> tuple[Path, Path]:
    """(the sysroot, the requirements' site-packages), its cpuinfo the emulated `cpu`'s."""
    if cpu not in CPUS:
        raise EnvironmentProblem(f"--cpu {cpu}: emulated CPUs are {', '.join(CPUS)}")
    root, site = sysroot(), site_packages(requirements)
    (root / "proc").mkdir(exist_ok=True)
    (root / "proc/cpuinfo").write_text(cpuinfo(cpu))
    return root, site


def predict(bundle: Path, cpu: str, args: list[str], timeout: float = 600):
    """Run the bundle's predict.py with `args` on the emulated `cpu`: the finished process
    (stdout holds its JSON lines)."""
    from ..bundle.archive import check_runtime
    from ..bundle.runtime.predict import check_files

    bundle = Path(bundle).resolve()
    check_runtime(bundle, check_files(bundle), str(bundle))  # (qemu-user is no sandbox)
    root, site = _prepare(cpu, bundle / "requirements.txt")
    env = {"QEMU_CPU": cpu, "PYTHONPATH": str(site), "PATH": "/usr/bin:/bin",
           "LANG": "C.UTF-8"}
    cmd = [qemu(), "-L", str(root), str(root / "usr/bin" / PYTHON), "-B",
           str(bundle / "predict.py"), *args]
    return subprocess.run(cmd, cwd=bundle, env=env, capture_output=True, text=True,
                          timeout=timeout)


def python_wrapper(cpu: str, requirements: Path, folder: Path) -> Path:
    """An executable in `folder` that behaves as an aarch64 `python` (the emulated `cpu`, the
    requirements' wheels): what `edgetransfer device --remote-python` takes, so "an ARM board
    over SSH" runs end to end on one x86 machine. `-I` is dropped (it would drop PYTHONPATH,
    where the wheels are); `env -i` isolates instead."""
    root, site = _prepare(cpu, requirements)
    path = folder / f"python-{cpu}"
    path.write_text(
        "#!/bin/bash\n# an aarch64 Python under qemu (edgetransfer.device.arm_emulation)\n"
        'args=(); for a in "$@"; do [[ $a == -I ]] || args+=("$a"); done\n'
        f"exec env -i QEMU_CPU={cpu} PYTHONPATH={site} PATH=/usr/bin:/bin LANG=C.UTF-8 "
        f'{qemu()} -L {root} {root / "usr/bin" / PYTHON} "${{args[@]}}"\n')
    path.chmod(0o755)
    return path


def _cache() -> Path:
    return cache_root() / "arm64"
