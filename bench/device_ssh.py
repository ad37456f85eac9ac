"""A bundle measured over SSH next to package's local figures, on a rehearsal board: a
throwaway sshd on 127.0.0.1 (edgetransfer/device/rehearsal.py) whose Python is either this
host's or the emulated aarch64 one (Cortex-A72 and A76 under qemu).

    python bench/device_ssh.py --bundle models/quickstart/bundle

Each row is `edgetransfer device --bundle B --device ssh://testboard --remote-python P`; the
first is package's own measurement (bundle.json). Under qemu the figures are the emulator's,
not a board's: the point is that the whole path (copy, run, figures back, clean up) works.
Writes OUT/device_ssh.json and a section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_all import _json, write_section  # noqa: E402


def main() -> None:
    from edgetransfer.device import arm_emulation, rehearsal

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=ROOT / "models/quickstart/bundle")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/device-ssh")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--render-only", action="store_true")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    summary = args.out / "device_ssh.json"
    if args.render_only:
        r = _json(summary)
        write_section(ROOT / "bench/RESULTS.md", render(r), "device-ssh")
        print(render(r))
        return
    local = _json(args.bundle.parent / f"{args.bundle.name}.json") or {}
    rows = [{"where": "this host, package's measurement", "machine": "x86_64",
             **{k: (local.get("measurements") or {}).get(k) for k in ("cold_start_s",
                                                                     "peak_rss_mb")},
             **{k: ((local.get("measurements") or {}).get("latency") or {}).get(k)
                for k in ("p50_ms", "p90_ms", "p99_ms")}}]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cpus = {"ssh, this host's Python": None, "ssh, emulated cortex-a72": "cortex-a72",
                "ssh, emulated cortex-a76": "cortex-a76"}
        with rehearsal.local_board(tmp / "sshd") as config:
            env = dict(os.environ, PATH=f"{rehearsal.ssh_on_path(tmp / 'bin', config)}:"
                                        f"{os.environ['PATH']}")
            for where, cpu in cpus.items():
                # built right before its run: the sysroot serves one cpuinfo at a time
                python = (sys.executable if cpu is None else str(arm_emulation.python_wrapper(
                    cpu, args.bundle / "requirements.txt", tmp)))
                out = tmp / "device.json"
                proc = subprocess.run([sys.executable, "-m", "edgetransfer", "device",
                                       "--bundle", str(args.bundle), "--device",
                                       "ssh://testboard", "--remote-python", python,
                                       "--requests", str(args.requests), "--out", str(out)],
                                      env=env, capture_output=True, text=True)
                if proc.returncode != 0:
                    raise SystemExit(proc.stderr.strip()[-400:])
                d = json.loads(out.read_text())
                rows.append({"where": where, "machine": d["host"]["machine"],
                             "cold_start_s": d["cold_start_s"], "peak_rss_mb": d["peak_rss_mb"],
                             **{k: d["latency"][k] for k in ("p50_ms", "p90_ms", "p99_ms")}})
                print(rows[-1], flush=True)
    r = {"date": date.today().isoformat(), "bundle": str(args.bundle), "rows": rows}
    summary.write_text(json.dumps(r, indent=2), encoding="utf-8")
    write_section(ROOT / "bench/RESULTS.md", render(r), "device-ssh")
    print(render(r))


def render(r: dict) -> str:
    out = ["## On the device over SSH (rehearsal board)", "",
           f"Measured {r['date']} by `python bench/device_ssh.py` on `{r['bundle']}`: "
           f"`edgetransfer device` through a throwaway sshd on 127.0.0.1, the remote Python "
           f"this host's or the emulated aarch64 one (qemu: the emulator's speed, not a "
           f"board's), beside package's local measurement.", "",
           "| where | machine | cold start s | peak RSS MB | p50 ms | p90 ms | p99 ms |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
    out += [f"| {x['where']} | {x['machine']} | {x['cold_start_s']} | {x['peak_rss_mb']} | "
            f"{x['p50_ms']} | {x['p90_ms']} | {x['p99_ms']} |" for x in r["rows"]]
    return "\n".join(out) + "\n\n"


if __name__ == "__main__":
    main()
