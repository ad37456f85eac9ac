"""What the bundled runtime costs on a device: cold start, peak memory, per-request latency.

Measured by running the bundle's own predict.py in fresh processes, the way a device runs
it, never by importing it here (that would time an interpreter already holding torch):

- cold start: process start to the first prediction read from its stdout (interpreter
  start, imports, the checksum check, tokenizer and session load, one inference); the
  median of a few fresh processes;
- peak RSS and per-request latency: `predict.py --benchmark N`, which times N one-text
  requests (tokenization to scores) and reports its own peak RSS.

The child runs `python -I -B` (isolated: no user site-packages, no PYTHONPATH, no .pyc left
in the bundle). It is this machine's interpreter, so the figures are this machine's: the
host is recorded beside them.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..bundle.runtime.predict import input_row
from ..errors import CheckFailed


def measure(folder: Path, texts: list, *, runs: int, requests: int, threads: int,
            reader) -> dict:
    """`texts`: what the runtime takes, texts or (text, pair) tuples, or image paths;
    `reader`: the runtime's reader of them (bundle.inputs.Reader)."""
    folder = folder.resolve()
    script = folder / "predict.py"
    base = [sys.executable, "-I", "-B", str(script), "--threads", str(threads)]
    with tempfile.TemporaryDirectory(prefix="edgetransfer-bench-") as tmp:
        texts = reader.listed(texts, Path(tmp))  # (as the listing below names them)
        listing = Path(tmp) / "texts.jsonl"
        listing.write_text("".join(json.dumps(input_row(t, reader.name)) + "\n" for t in texts),
                           encoding="utf-8")
        first = Path(tmp) / "first.jsonl"  # (a pair cannot be one argument: a file of one)
        first.write_text(json.dumps(input_row(texts[0], reader.name)) + "\n", encoding="utf-8")
        cold = [_first_prediction_s(base + ["--input", str(first)], folder)
                for _ in range(runs)]
        proc = _run(base + ["--benchmark", str(requests), "--input", str(listing)], folder)
    bench = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "cold_start_s": round(statistics.median(cold), 3),
        "cold_start_runs_s": [round(c, 3) for c in cold],
        "peak_rss_mb": bench.pop("peak_rss_mb"),
        "latency": bench,
        "host": {"machine": platform.machine(), "system": platform.system(),
                 "python": platform.python_version(), "cpus": os.cpu_count()},
    }


def _first_prediction_s(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    first = proc.stdout.readline()
    elapsed = time.perf_counter() - start
    _, err = proc.communicate()
    if proc.returncode != 0 or not first:
        _failed(cmd, err)
    return elapsed


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        _failed(cmd, proc.stderr)
    return proc


def _failed(cmd: list[str], stderr: str) -> None:
    last = (stderr or "").strip().splitlines()[-1:] or ["no message"]
    raise CheckFailed(f"the bundled predict.py failed to run: {last[0][:300]}")
