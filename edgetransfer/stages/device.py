"""Command `device`: measure a bundle on the device itself, over SSH, and gate its latency
against a baseline taken on that device.

A command of its own rather than a `verify --device` option: verify judges models against a
reference on one machine (its latency gate is relative to a reference workload timed beside
them), while this measures the bundle as shipped, where it will run; its baseline is the
device's own (p50 in milliseconds on that board), so board figures never mix with the build
machine's. The work is edgetransfer/device/ssh.py; the figures are the ones package records
here (cold start, peak RSS, per-request p50/p90/p99), from the bundle's own predict.py.
"""

from __future__ import annotations

import tempfile
from datetime import datetime, timezone
from pathlib import Path

import click
from pydantic import BaseModel, ConfigDict, Field

from .. import paths
from ..artifacts import write_json
from ..errors import ConfigError, DataError, LatencyRegression, ModelError
from ..options import MAX_COLD_STARTS, MAX_REQUESTS, MAX_THREADS

# The command's --help (edgetransfer.cli makes the command from the registry).
HELP = """Measure a bundle on a device over SSH (cold start, peak RSS, p50/p90/p99), and
gate it against that device's baseline.

\b
Examples:
  edgetransfer device --bundle models/demo/bundle.tar.gz --device ssh://pi@raspberrypi \\
      --update-baseline pi5-baseline.json
  edgetransfer device --bundle models/demo/bundle --device ssh://pi@raspberrypi \\
      --baseline pi5-baseline.json --max-latency-regression 10%

It uses your OpenSSH setup as it is (~/.ssh/config, keys, agent, jump hosts), works in
~/.edgetransfer/run-XXXXXXXX on the device and removes it afterwards.
Exit codes: 0 measured (and within the baseline); 2 bad input; 4 the device could not be
reached or used (one line says why); 6 slower than the baseline allows.
"""
BASELINE_FORMAT = "edgetransfer-device-baseline/1"


class DeviceConfig(BaseModel):
    """Settings of `edgetransfer device`; each description is the CLI help."""

    model_config = ConfigDict(extra="forbid")

    bundle: Path = Field(description="A bundle: the .tar.gz `edgetransfer package` wrote, or "
                         "its folder.")
    device: str = Field(description="ssh://user@host[:port], or a Host alias of your "
                        "~/.ssh/config.")
    remote_python: str | None = Field(None, description="A Python on the device that already "
                                      "has the bundle's requirements [default: python3, with a "
                                      "venv of requirements.txt made in the work folder].")
    latency_data: Path | None = Field(None, description="Texts to time, as predict.py "
                                      "--input reads them [default: the task's built-in "
                                      "texts].")
    cold_starts: int = Field(3, ge=1, le=MAX_COLD_STARTS, description="Fresh processes timed "
                             "to the first prediction; the median is recorded.")
    requests: int = Field(200, ge=1, le=MAX_REQUESTS, description="One-input requests timed "
                          "by predict.py --benchmark.")
    threads: int = Field(1, ge=1, le=MAX_THREADS, description="onnxruntime threads on the "
                         "device.")
    baseline: Path | None = Field(None, description="A device baseline to gate p50 against "
                                  "(written by --update-baseline on that device).")
    max_latency_regression: str = Field("10%", description="How much slower than the "
                                        "baseline the p50 may get.")
    update_baseline: Path | None = Field(None, description="Write this run's figures as the "
                                         "device's baseline.")
    out: Path = Field(Path("device.json"), description="Where to write the figures (JSON).")
    keep: bool = Field(False, description="Leave the work folder on the device (debugging).")


def run(cfg: DeviceConfig) -> dict:
    from .. import tasks
    from ..bundle import requirements
    from ..bundle.archive import check_runtime, open_bundle
    from ..bundle.runtime.predict import BundleError, read_spec
    from ..device import ssh
    from ..measure import baseline as baselines

    host = ssh.parse(cfg.device)
    _check_outputs(cfg)
    threshold = baselines.parse_threshold(cfg.max_latency_regression)
    base = _read_baseline(cfg.baseline) if cfg.baseline else None
    with tempfile.TemporaryDirectory(prefix="edgetransfer-device-") as tmp:
        folder, manifest = open_bundle(cfg.bundle, Path(tmp))
        try:  # (every name it holds checked: inside the bundle, listed in the manifest)
            read_spec(folder, manifest)
        except BundleError as e:
            raise ModelError(f"--bundle {cfg.bundle}: {e}") from None
        # (parsed as pinned, hashed wheels before any of it reaches pip on the device; and
        # the code run there is this version's runtime, not the bundle's word for it)
        pins = requirements.read(folder, manifest, f"--bundle {cfg.bundle}")
        check_runtime(folder, manifest, f"--bundle {cfg.bundle}")
        task = tasks.get(manifest.get("task") or tasks.DEFAULT)  # (format-1 bundles)
        kind = task.inputs
        if kind.device_inputs is None:
            raise ConfigError(f"--bundle {cfg.bundle}: bundles of {kind.name} inputs are not "
                              f"measured over SSH yet (their inputs would have to travel with "
                              f"them); a text bundle is")
        try:
            inputs = kind.device_inputs(task, cfg.latency_data)
        except BundleError as e:
            raise DataError(f"--latency-data {e}") from None
        figures = ssh.measure(folder, manifest, pins, inputs, kind.reader.name, host,
                              remote_python=cfg.remote_python,
                              runs=cfg.cold_starts, requests=cfg.requests,
                              threads=cfg.threads, keep=cfg.keep)
    report = {"bundle": str(cfg.bundle), "task": manifest.get("task"),
              "model": manifest.get("model", {}).get("precision"), **figures,
              "measured": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    gate = _gate(cfg, base, figures, host, threshold)
    if gate is not None:
        report["latency_gate"] = gate
    _write(cfg, report, figures, host)
    lat = figures["latency"]
    click.echo(f"{host.name} ({figures['host']['machine']}, Python "
               f"{figures['host']['python']}): cold start {figures['cold_start_s']:.3f} s, peak "
               f"RSS {figures['peak_rss_mb']} MB, p50 {lat['p50_ms']:.3f} / p90 "
               f"{lat['p90_ms']:.3f} / p99 {lat['p99_ms']:.3f} ms"
               + (f"; against the baseline {100 * gate['change']:+.1f}%" if gate else ""))
    if gate and not gate["passed"]:
        raise LatencyRegression(
            f"latency gate failed: p50 {gate['p50_ms']:.3f} ms on {host.name} is "
            f"{100 * gate['change']:+.1f}% against the baseline's {gate['baseline_p50_ms']:.3f} "
            f"ms, more than the {100 * threshold:.0f}% allowed; every figure is in {cfg.out}")
    return report


def _gate(cfg: DeviceConfig, base, figures: dict, host, threshold: float) -> dict | None:
    """The latency gate against the device's baseline (None without one)."""
    if base is None:
        return None
    change = figures["latency"]["p50_ms"] / base["p50_ms"] - 1
    return {"baseline": str(cfg.baseline), "baseline_p50_ms": base["p50_ms"],
            "p50_ms": figures["latency"]["p50_ms"], "change": round(change, 4),
            "threshold": threshold, "passed": change <= threshold,
            "same_device": base.get("device") == host.name}


def _write(cfg: DeviceConfig, report: dict, figures: dict, host) -> None:
    """The report at --out, and the figures as the new baseline where asked."""
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(cfg.out, report)
    if cfg.update_baseline:
        write_json(cfg.update_baseline, {
            "format": BASELINE_FORMAT, "device": host.name, "host": figures["host"],
            "created": report["measured"], "threads": cfg.threads,
            "p50_ms": figures["latency"]["p50_ms"], "p90_ms": figures["latency"]["p90_ms"],
            "cold_start_s": figures["cold_start_s"], "peak_rss_mb": figures["peak_rss_mb"]})


def _check_outputs(cfg: DeviceConfig) -> None:
    """Nothing this run writes is one of its inputs (under any spelling): --out and
    --update-baseline may not be the bundle, the latency data, the baseline or each other;
    --update-baseline may replace --baseline (that is what it is for)."""
    written = {"--out": cfg.out, "--update-baseline": cfg.update_baseline}
    read = {"--bundle": cfg.bundle, "--latency-data": cfg.latency_data,
            "--baseline": cfg.baseline}
    for flag, path in written.items():
        if path is None:
            continue
        for other, given in read.items():
            allowed = flag == "--update-baseline" and other == "--baseline"
            if given is not None and not allowed and paths.overlaps(path, given):
                raise ConfigError(f"{flag} {path}: is {other} (or inside it); writing it "
                                  f"would replace an input: name another file")
    if cfg.update_baseline and paths.same(cfg.out, cfg.update_baseline):
        raise ConfigError(f"--out {cfg.out}: is also --update-baseline; name two files")


def _read_baseline(path: Path) -> dict:
    from ..measure import baseline as baselines

    data = baselines.load(path, BASELINE_FORMAT)  # (missing, unreadable, other format)
    if not isinstance(data.get("p50_ms"), (int, float)) or data["p50_ms"] <= 0:
        raise ConfigError(f"--baseline {path}: not a device baseline ({BASELINE_FORMAT} with "
                          f"a positive p50_ms); write one with --update-baseline")
    return data
