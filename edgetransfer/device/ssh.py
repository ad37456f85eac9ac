"""A bundle measured on the device itself, over SSH: copied to a work folder there, its
requirements installed into a venv there (or a given Python used), its own predict.py timed
there (cold start, peak RSS, per-request p50/p90/p99), the work folder removed.

The user's OpenSSH is used as it is (their ~/.ssh/config, keys, agent, jump hosts): `ssh` is
called with the host they name and only BatchMode (never a password prompt in the middle of a
run) and a connect timeout added. Every failure is one line, exit 4.
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, EnvironmentProblem

CONNECT_TIMEOUT_S = 10
# The timing the device runs: process start to the first prediction line (cold start),
# measured on the device so the network's round trips are not in it
COLD_START = """
import subprocess, sys, time
t = time.perf_counter()
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
first = p.stdout.readline()
elapsed = time.perf_counter() - t
_, err = p.communicate()
if p.returncode != 0 or not first:
    sys.exit("predict.py failed: " + (err.strip().splitlines() or ["no message"])[-1])
print(elapsed)
"""


@dataclass(frozen=True)
class Host:
    destination: str  # what ssh takes: user@host, or a Host alias of ~/.ssh/config
    port: int | None

    @property
    def name(self) -> str:
        return self.destination + (f":{self.port}" if self.port else "")


# A user or host name: letters, digits and . _ - (a host's IPv6 form is not taken: use an
# ssh-config alias), never starting with "-", which ssh would read as an option (an older
# OpenSSH runs `-oProxyCommand=...` given as a host name)
NAME = r"[A-Za-z0-9_.][A-Za-z0-9_.-]*"
URL = re.compile(rf"(?:ssh://)?(?:({NAME})@)?({NAME})(?::(\d{{1,5}}))?/?")
FLAG = "--device"  # the option a host string comes from (search says it too)


def parse(url: str, flag: str = FLAG) -> Host:
    """ssh://user@host[:port], or user@host / an ssh-config alias; anything else (an option
    in disguise, spaces, a second @) refused in one line."""
    shown = url if len(url) <= 80 else url[:77] + "..."
    m = URL.fullmatch(url.strip())
    if not m or (m.group(3) and not 1 <= int(m.group(3)) <= 65535):
        why = (" (a host or user may not start with '-': ssh would read it as an option)"
               if re.search(r"(^|@|//)-", url.strip()) else "")
        raise ConfigError(f"{flag} {shown!r}: give ssh://user@host[:port] (or a Host alias "
                          f"from ~/.ssh/config){why}")
    return Host(destination=(f"{m.group(1)}@" if m.group(1) else "") + m.group(2),
                port=int(m.group(3)) if m.group(3) else None)


def _ssh(host: Host, command: str, *, stdin=None, timeout: float = 600,
         ssh_options: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    cmd = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}",
           *ssh_options, *(["-p", str(host.port)] if host.port else []),
           "--", host.destination, command]  # (--: nothing after is an option)
    try:
        return subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise EnvironmentProblem(f"{host.name}: no answer within {timeout:.0f} s (the "
                                 f"connection hangs or the device is overloaded)") from None


def _explain(host: Host, proc, doing: str) -> str:
    err = proc.stderr.decode(errors="replace") if isinstance(proc.stderr, bytes) \
        else proc.stderr
    text = " ".join(err.split())
    low = text.lower()
    if proc.returncode == 255:
        if "permission denied" in low or "publickey" in low:
            return (f"{host.name}: authentication refused ({text[:160]}); check the key, "
                    f"agent or ~/.ssh/config entry for it")
        if "connection lost" in low or "broken pipe" in low or "closed by remote" in low \
                or "connection reset" in low:
            return f"{host.name}: the connection was lost while {doing}"
        return f"{host.name}: unreachable ({text[:160] or 'ssh exit 255'})"
    if "no space left" in low:
        return f"{host.name}: no space left on the device while {doing}; free some space"
    if "not found" in low or "no such file" in low:
        return f"{host.name}: {text[:200]} (while {doing})"
    return f"{host.name}: {doing} failed: {text[-240:] or f'exit {proc.returncode}'}"


def _check(host: Host, proc, doing: str):
    if proc.returncode != 0:
        raise EnvironmentProblem(_explain(host, proc, doing))
    return proc


def measure(bundle: Path, manifest: dict, pins: list, inputs: list, kind: str, host: Host, *,
            remote_python: str | None, runs: int = 3, requests: int = 200, threads: int = 1,
            keep: bool = False, ssh_options: tuple[str, ...] = ()) -> dict:
    """The bundle's figures on the device (as footprint.measure gives them here). What
    travels: the files the (checked) manifest lists, and `pins` (requirements.read's) as
    requirements.write_for_pip writes them, which the device's venv installs with PIP_FLAGS."""
    from ..bundle import requirements
    from ..bundle.runtime.predict import MANIFEST, PIP_FLAGS, input_row, inside

    work = f".edgetransfer/run-{secrets.token_hex(4)}"  # named, and removed when done
    q = shlex.quote
    python = remote_python or "python3"
    _check(host, _ssh(host, f"command -v {q(python)} >/dev/null || {{ echo "
                            f"'{python}: not found on the device' >&2; exit 127; }}; "
                            f"mkdir -p {q(work)}/bundle", ssh_options=ssh_options),
           "preparing the work folder")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            listing = Path(tmp) / "inputs.jsonl"
            listing.write_text("".join(json.dumps(input_row(t, kind)) + "\n" for t in inputs))
            archive = Path(tmp) / "bundle.tar"
            checked = requirements.write_for_pip(pins, Path(tmp) / "requirements.txt")
            with tarfile.open(archive, "w") as tar:
                for name in sorted([*manifest["files"], MANIFEST]):
                    tar.add(inside(bundle, name, "bundle"), arcname=f"bundle/{name}")
                tar.add(listing, arcname="inputs.jsonl")
                tar.add(checked, arcname="requirements.txt")
            _check(host, _ssh(host, f"tar -C {q(work)} -xf -", stdin=archive.read_bytes(),
                              ssh_options=ssh_options), "copying the bundle")
        if remote_python is None:  # a venv of the bundle's own requirements
            flags = " ".join(map(q, PIP_FLAGS))
            _check(host, _ssh(host, f"cd {q(work)} && {q(python)} -m venv venv && "
                                    f"venv/bin/pip install -q {flags} -r requirements.txt",
                              timeout=1800, ssh_options=ssh_options),
                   "installing the requirements")
            python = f"{work}/venv/bin/python"
        head = f"cd {q(work)}/bundle && "
        predict = [python, "-I", "-B", "predict.py", "--threads", str(threads)]
        first = "head -n 1 ../inputs.jsonl > ../first.jsonl && "
        cold = []
        for _ in range(runs):
            proc = _check(host, _ssh(host, head + first + f"{q(python)} -c {q(COLD_START)} "
                                     + " ".join(map(q, predict + ["--input", "../first.jsonl"])),
                                     ssh_options=ssh_options), "timing a cold start")
            cold.append(_answer(host, proc, "a cold start", _seconds))
        proc = _check(host, _ssh(host, head + " ".join(map(q, predict + [
            "--benchmark", str(requests), "--input", "../inputs.jsonl"])),
            ssh_options=ssh_options), "timing requests")
        bench = _answer(host, proc, "the timing", _figures)
        about = _check(host, _ssh(host, f"{q(python)} -c " + q(
            "import platform, os; print(platform.machine(), platform.python_version(), "
            "os.cpu_count())"), ssh_options=ssh_options), "reading the platform")
        machine, version, cpus = _answer(host, about, "the platform", _platform)
    finally:
        if not keep:
            _ssh(host, f"rm -rf {q(work)}", ssh_options=ssh_options)
    cold.sort()
    return {"device": host.name, "cold_start_s": round(cold[len(cold) // 2], 3),
            "cold_start_runs_s": [round(c, 3) for c in cold],
            "peak_rss_mb": bench.pop("peak_rss_mb"), "latency": bench,
            "host": {"machine": machine, "python": version, "cpus": cpus},
            "work_folder": f"~/{work}" + (" (kept)" if keep else " (removed)")}


# What the device prints is read as untrusted too (a login banner on stdout, another program
# under the name of python3): its last line, parsed, bounded, or one line, exit 4.
MAX_ANSWER = 64 * 2**10


def _answer(host: Host, proc, what: str, parse):
    from ..untrusted import clip

    lines = proc.stdout[-MAX_ANSWER:].decode("utf-8", "replace").strip().splitlines()
    try:
        return parse(lines[-1])
    except (IndexError, ValueError, TypeError, KeyError, RecursionError):
        shown = clip(lines[-1], 80) if lines else "nothing"
        raise EnvironmentProblem(f"{host.name}: {what} it printed is not what predict.py "
                                 f"gives ({shown}); is the device's Python the bundle's?"
                                 ) from None


def _seconds(line: str) -> float:
    value = float(line)
    if not 0 <= value < 1e6:  # (nan and inf fail this too)
        raise ValueError(line)
    return value


def _figures(line: str) -> dict:
    bench = json.loads(line)
    numbers = ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "peak_rss_mb")
    if not isinstance(bench, dict) or not all(
            isinstance(bench.get(k), (int, float)) and not isinstance(bench.get(k), bool)
            for k in numbers):
        raise ValueError("not predict.py --benchmark figures")
    return bench


def _platform(line: str) -> tuple[str, str, int]:
    machine, version, cpus = line.split()
    return machine[:40], version[:20], int(cpus)

