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


def parse(url: str) -> Host:
    """ssh://user@host[:port], or user@host / an ssh-config alias."""
    m = re.fullmatch(r"(?:ssh://)?([^\s:/@]+@)?([^\s:/@]+)(?::(\d+))?/?", url.strip())
    if not m:
        raise ConfigError(f"--device {url}: give ssh://user@host[:port] (or a Host alias from "
                          f"~/.ssh/config)")
    return Host(destination=(m.group(1) or "") + m.group(2),
                port=int(m.group(3)) if m.group(3) else None)


def _ssh(host: Host, command: str, *, stdin=None, timeout: float = 600,
         ssh_options: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    cmd = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}",
           *ssh_options, *(["-p", str(host.port)] if host.port else []), host.destination,
           command]
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


def measure(bundle: Path, inputs: list, kind: str, host: Host, *, remote_python: str | None,
            runs: int = 3, requests: int = 200, threads: int = 1, keep: bool = False,
            ssh_options: tuple[str, ...] = ()) -> dict:
    """The bundle's figures on the device (as footprint.measure gives them here)."""
    from ..bundle.runtime.predict import input_row

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
            with tarfile.open(archive, "w") as tar:
                for f in sorted(p for p in bundle.iterdir() if p.is_file()):
                    tar.add(f, arcname=f"bundle/{f.name}")
                tar.add(listing, arcname="inputs.jsonl")
            _check(host, _ssh(host, f"tar -C {q(work)} -xf -", stdin=archive.read_bytes(),
                              ssh_options=ssh_options), "copying the bundle")
        if remote_python is None:  # a venv of the bundle's own requirements
            _check(host, _ssh(host, f"cd {q(work)} && {q(python)} -m venv venv && "
                                    f"venv/bin/pip install -q -r bundle/requirements.txt",
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
            cold.append(float(proc.stdout.decode().strip().splitlines()[-1]))
        proc = _check(host, _ssh(host, head + " ".join(map(q, predict + [
            "--benchmark", str(requests), "--input", "../inputs.jsonl"])),
            ssh_options=ssh_options), "timing requests")
        bench = json.loads(proc.stdout.decode().strip().splitlines()[-1])
        about = _check(host, _ssh(host, f"{q(python)} -c " + q(
            "import platform, os; print(platform.machine(), platform.python_version(), "
            "os.cpu_count())"), ssh_options=ssh_options), "reading the platform")
        machine, version, cpus = about.stdout.decode().split()
    finally:
        if not keep:
            _ssh(host, f"rm -rf {q(work)}", ssh_options=ssh_options)
    cold.sort()
    return {"device": host.name, "cold_start_s": round(cold[len(cold) // 2], 3),
            "cold_start_runs_s": [round(c, 3) for c in cold],
            "peak_rss_mb": bench.pop("peak_rss_mb"), "latency": bench,
            "host": {"machine": machine, "python": version, "cpus": int(cpus)},
            "work_folder": f"~/{work}" + (" (kept)" if keep else " (removed)")}
