"""Will this bundle run on the target? Checked on the build machine, before shipping:

- wheels: each requirement has a wheel for the target's platform and Python, and the glibc
  that wheel needs is the target system's or older (pip's own resolver, asked with the
  target's platform tags: the answer pip on the board would give);
- the model: every operator has a CPU kernel in the onnxruntime the bundle pins, for the
  opset the model uses (onnxruntime's own kernel registry), and its IR version is one that
  onnxruntime reads;
- the CPU: an int8 model on an ARM core without the dot-product instructions (Cortex-A72,
  Raspberry Pi 4) runs, but int8 may not beat fp32 there;
- the tuning: an int8 model exported for x86 (export --target) and shipped to ARM, or the
  reverse, runs, but an export for that CPU may do better.

Each finding is a row {check, subject, status ok|warn|block, detail}; package and `target`
run the same check(), package writes the table into the manifest and refuses (exit 2,
before anything is written) on a "block".
"""

from __future__ import annotations

import logging
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from .. import platforms
from ..bundle import requirements
from ..bundle.requirements import Pin
from ..bundle.runtime.predict import PIP_FLAGS
from ..convert import quantize
from ..errors import ConfigError, ModelError

log = logging.getLogger(__name__)

# Target systems by the Python they ship: (release, glibc). Raspberry Pi OS is Debian's
# release on the boards, so it is named only for an ARM target (system() below).
SYSTEMS = {"3.10": ("Ubuntu 22.04", "2.35"), "3.11": ("Debian bookworm", "2.36"),
           "3.12": ("Ubuntu 24.04", "2.39"), "3.13": ("Debian trixie", "2.41")}
DEFAULT_PYTHON = "3.11"  # Raspberry Pi OS bookworm, the boards' current default
PI_OS = "Raspberry Pi OS"
# ARM cores by the boards that carry them: has the dot-product (SDOT/UDOT) instructions
CPUS = {"cortex-a72": ("Raspberry Pi 4", False), "cortex-a76": ("Raspberry Pi 5", True),
        "cortex-a78ae": ("Jetson Orin", True), "cortex-a53": ("Raspberry Pi 3 / Zero 2", False),
        "cortex-a55": ("many TV boxes and SBCs", True)}


def system(target: str, python: str) -> str:
    """The system a device of this platform with this Python runs, as the findings name it:
    an x86 box with Debian's Python is Debian, an ARM board with it Raspberry Pi OS too."""
    release = SYSTEMS[python][0]
    return (f"{PI_OS} / {release}" if target == "linux-aarch64" and release.startswith("Debian")
            else release)


def row(check: str, subject: str, status: str, detail: str) -> dict:
    return {"check": check, "subject": subject, "status": status, "detail": detail}


def platform_tags(target: str, glibc: str) -> list[str]:
    """pip's --platform tags a system with this glibc accepts, newest first."""
    arch = platforms.arch(target)
    major, minor = (int(x) for x in glibc.split("."))
    tags = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 16, -1)]
    return tags + [f"manylinux2014_{arch}"]


def wheels(pins: list[Pin], target: str, python: str) -> list[dict]:
    """A row per requirement: the wheel pip would install there (one whose sha256 the pin
    lists), or a block. pip reads the pins as requirements.write_for_pip wrote them, with
    PIP_FLAGS: nothing is built or run."""
    glibc, named = SYSTEMS[python][1], system(target, python)
    tags = [x for t in platform_tags(target, glibc) for x in ("--platform", t)]
    abi = "cp" + python.replace(".", "")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for pin in pins:
            listed = requirements.write_for_pip([pin], Path(tmp) / "pin.txt")
            proc = subprocess.run(
                [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                 *PIP_FLAGS, *tags, "--python-version", python,
                 "--implementation", "cp", "--abi", abi, "--abi", "abi3", "--abi", "none",
                 "-d", str(Path(tmp) / "wheels"), "-r", str(listed)],
                capture_output=True, text=True)
            prefix = requirements.wheel_prefix(pin.name, pin.version)
            found = sorted((p for p in (Path(tmp) / "wheels").glob("*.whl")
                            if p.name.lower().startswith(prefix)),
                           key=lambda p: p.stat().st_mtime)
            if proc.returncode != 0 or not found:
                text = " ".join((proc.stderr or "").split())
                why = ("the package index could not be reached" if "connection" in
                       text.lower() or "network" in text.lower() else
                       f"the wheel for {target}, Python {python} matches none of the pin's "
                       f"sha256 hashes" if "do not match the hashes" in text.lower() else
                       f"no wheel for {target}, Python {python} ({named}, glibc {glibc})")
                rows.append(row("wheel", pin.spec, "warn" if "index" in why else "block",
                                why))
                continue
            wheel = found[-1].name
            needs = [tuple(map(int, m)) for m in re.findall(r"manylinux_(\d+)_(\d+)", wheel)]
            needs += [(2, 17)] if "manylinux2014" in wheel else []
            least = min(needs) if needs else None
            rows.append(row("wheel", pin.spec, "ok", f"{wheel}" + (
                f" (glibc >= {least[0]}.{least[1]}; {named} has {glibc})" if least else "")))
    return rows


def model(path: Path, pinned_ort: str | None) -> list[dict]:
    """The model's IR version and operators against onnxruntime's CPU kernels."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.capi import _pybind_state as state

    m = onnx.load(str(path), load_external_data=False)
    used = {n.domain or "ai.onnx" for n in m.graph.node}
    opsets = {(o.domain or "ai.onnx"): o.version for o in m.opset_import
              if (o.domain or "ai.onnx") in used}
    have = ort.__version__
    same = pinned_ort in (None, have)
    rows = []
    # onnxruntime's kernels (CPU): (domain, op) -> [(since, until)]
    kernels: dict = {}
    for k in state.get_all_opkernel_def():
        if k.provider != "CPUExecutionProvider":
            continue
        domain = k.domain or "ai.onnx"
        kernels.setdefault((domain, k.op_name), []).append(
            (k.version_range[0], k.version_range[1]))
    missing = set()
    for node in m.graph.node:
        domain = node.domain or "ai.onnx"
        version = opsets.get(domain, 1)
        ranges = kernels.get((domain, node.op_type), [])
        if not any(lo <= version <= hi for lo, hi in ranges):
            missing.add(f"{domain}:{node.op_type} (opset {version})")
    where = f"onnxruntime {have}" + ("" if same else f" (installed here; the bundle pins "
                                                      f"{pinned_ort})")
    rows.append(row("operators", path.name, "block" if missing else "ok",
                    f"no CPU kernel in {where}: {', '.join(sorted(missing))}" if missing else
                    f"{len({n.op_type for n in m.graph.node})} operator types, opsets "
                    f"{', '.join(f'{d} {v}' for d, v in sorted(opsets.items()))}: all have CPU "
                    f"kernels in {where}"))
    try:  # the IR version and everything else onnxruntime checks when it loads a model
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        rows.append(row("loads", path.name, "ok", f"IR {m.ir_version}: {where} loads it"))
    except Exception as e:  # noqa: BLE001  (its message is the finding)
        rows.append(row("loads", path.name, "block", f"IR {m.ir_version}: {where} refuses it: "
                        f"{' '.join(str(e).split())[:200]}"))
    return rows


def cpu(target: str, cpu_name: str | None, precision: str | None) -> list[dict]:
    """Whether the int8 kernels suit the target CPU."""
    if target != "linux-aarch64" or precision != "int8":
        return []
    if cpu_name is None:
        return [row("CPU", "int8 model", "warn", "no --target-cpu given: int8 beats fp32 on "
                    "ARM cores with the dot-product instructions (Cortex-A55/A76/A78, "
                    "Raspberry Pi 5), maybe not on those without (Cortex-A53/A72, Raspberry "
                    "Pi 4)")]
    board, dot = CPUS[cpu_name]
    if dot:
        return [row("CPU", cpu_name, "ok", f"{board}: has the dot-product instructions "
                    f"(SDOT/UDOT) int8 kernels use")]
    return [row("CPU", cpu_name, "warn", f"{cpu_name} ({board}) has no dot-product "
                f"instructions; int8 may not beat fp32 there. Measure on the board, or export "
                f"both and keep the faster (`export --quantize auto` measured on the device)")]


def tuning(target: str, quantization: dict | None) -> list[dict]:
    """Whether an int8 model was tuned for the target's CPU family (export --target): one
    for x86 runs on ARM, and the reverse, but an export for that CPU may do better."""
    q = quantization if isinstance(quantization, dict) else {}  # (a record from elsewhere)
    # (the platform of the CPU family export --target tuned for: convert.quantize's targets)
    family = quantize.TARGETS.get(q["target"]) if isinstance(q.get("target"), str) else None
    if not str(q.get("mode", "")).startswith("int8") or family is None or (
            family.platform == target):
        return []
    best, *others = quantize.for_platform(target)
    better = best + (f" (or {', '.join(others)})" if others else "")
    return [row("tuning", "model.onnx", "warn", f"model.onnx is int8 tuned for --target "
                f"{q['target']} (export.json) and packaged for {target}: it runs there, but an "
                f"export with --target {better} may be faster or more accurate on "
                f"that CPU")]


def check(target: str, python: str | None, cpu_name: str | None, pins: list[Pin],
          onnx_model: Path, precision: str | None, quantization: dict | None = None) -> dict:
    """Every finding for a bundle's pins and model on `target`, logged as a table, each
    warning also said on its own; a blocking one is an error (exit 2). `python` None: the
    target's usual one. `quantization`: export.json's (the bundle manifest's copy), whose
    --target says which CPU family an int8 model was tuned for. package and `target` both
    run this, so they find the same things."""
    if python is None:
        python = (DEFAULT_PYTHON if target == "linux-aarch64"
                  else ".".join(platform.python_version_tuple()[:2]))
    if python not in SYSTEMS:
        raise ConfigError(f"--target-python {python}: give one of {', '.join(SYSTEMS)}")
    pinned = next((p.version for p in pins if p.name == "onnxruntime"), None)
    rows = (wheels(pins, target, python) + model(onnx_model, pinned)
            + cpu(target, cpu_name, precision) + tuning(target, quantization))
    named, glibc = system(target, python), SYSTEMS[python][1]
    log.info("target %s, Python %s (%s, glibc %s)%s:\n%s", target, python, named, glibc,
             f", {cpu_name}" if cpu_name else "", table(rows))
    for r in rows:
        if r["status"] == "warn":  # (said even under -q, which hides the table)
            log.warning("%s", warning(r))
    blocks = [r for r in rows if r["status"] == "block"]
    if blocks:
        raise ModelError(f"--target {target} (Python {python}): {blocks[0]['subject']}: "
                         f"{blocks[0]['detail']}" + (f" (+{len(blocks) - 1} more blocking)"
                                                      if len(blocks) > 1 else ""))
    return {"target": target, "python": python, "system": named, "glibc": glibc,
            "cpu": cpu_name, "rows": rows}


def warning(r: dict) -> str:
    """A finding as one line that names what it is about."""
    return r["detail"] if r["detail"].startswith(r["subject"]) else (
        f"{r['subject']}: {r['detail']}")


def table(rows: list[dict]) -> str:
    marks = {"ok": "ok", "warn": "WARN", "block": "BLOCK"}
    width = max(len(r["subject"]) for r in rows) if rows else 10
    return "\n".join(f"  {marks[r['status']]:<5}  {r['check']:<10}  {r['subject']:<{width}}  "
                     f"{r['detail']}" for r in rows)
