"""The latency baseline that `verify --baseline` gates against, and `--update-baseline` writes.

Milliseconds alone do not carry from one machine to another, or from a quiet machine to a
busy CI runner: the baseline stores each model's p50 divided by the p50 of the reference
workload (latency.reference_workload) timed in the same interleaved rounds, and the gate
compares those ratios. What the ratio does not cancel: a change of instruction set (an int8
model gains more from VNNI than the fp32 workload does), so a baseline is best taken on the
kind of machine it will judge; the machine it was taken on is recorded and shown.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..artifacts import write_json
from ..errors import ConfigError
from ..untrusted import clip, read_json, shorten

FORMAT = "edgetransfer-latency-baseline/1"


class Figures(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # (JSON has Infinity)

    p50_ms: float = Field(gt=0)
    p90_ms: float = Field(gt=0)
    relative_p50: float = Field(gt=0, description="p50 / the reference workload's p50")


class Baseline(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # (JSON has Infinity)

    format: Literal["edgetransfer-latency-baseline/1"]
    created: str
    machine: dict
    threads: int = Field(ge=1)
    provider: str
    workload_p50_ms: float = Field(gt=0)
    models: dict[str, dict[str, Figures]] = Field(
        description="model name -> 'batch<N>' -> figures")


def parse_threshold(value: str | float) -> float:
    """'10%', '10 %' or 0.1 -> 0.1."""
    text = str(value).strip()
    try:
        number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise ConfigError(f"--max-latency-regression {value}: give a share like 10% or 0.1") \
            from None
    if not 0 < number < 10:
        raise ConfigError(f"--max-latency-regression {value}: must be above 0 (e.g. 10%)")
    return number


def read(path: Path) -> Baseline:
    raw = load(path, FORMAT)
    try:
        return Baseline.model_validate(raw)  # (not **raw: a key may be no string)
    except ValidationError as e:
        err = e.errors()[0]
        where = clip(".".join(str(p) for p in err["loc"]))
        raise ConfigError(f"--baseline {path}: field {where}: {clip(err['msg'])}; rewrite it "
                          f"with --update-baseline") from None


def load(path: Path, format: str) -> dict:
    """A baseline file's JSON (verify's or a device's), refused in one line when missing,
    unreadable or of another format."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--baseline {path}: no such file; write one with "
                          f"--update-baseline {path}")
    # bounded: size, nesting; not UTF-8 or not JSON is one line naming the file
    raw = read_json(path, label=f"--baseline {path}", what="baseline file", expect=None,
                    fix="rewrite it with --update-baseline")
    if not isinstance(raw, dict) or raw.get("format") != format:
        found = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
        raise ConfigError(f"--baseline {path}: format {shorten(found, 80)} is not {format!r}; "
                          f"write one with --update-baseline")
    return raw


def write(path: Path, *, machine: dict, threads: int, provider: str, workload_p50_ms: float,
          models: dict[str, dict[str, dict]]) -> Baseline:
    baseline = Baseline(
        format=FORMAT,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        machine=machine, threads=threads, provider=provider, workload_p50_ms=workload_p50_ms,
        models={name: {b: Figures(**f) for b, f in by_batch.items()}
                for name, by_batch in models.items()})
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_json(Path(path), baseline.model_dump())
    return baseline


def check_comparable(baseline: Baseline, path: Path, threads: int, provider: str) -> None:
    """The ratio corrects for machine speed, not for a different thread count or provider."""
    if baseline.threads != threads:
        raise ConfigError(f"--baseline {path}: taken with --threads {baseline.threads}, this "
                          f"run uses {threads}; use the same, or update the baseline")
    if baseline.provider != provider:
        raise ConfigError(f"--baseline {path}: taken on {baseline.provider}, this run uses "
                          f"{provider}; use the same, or update the baseline")


def gate(baseline: Baseline, current: dict[str, dict[str, dict]], threshold: float):
    """Compare each model and batch size present in both; (rows, skipped). A failed row
    carries its one-line message."""
    rows, skipped = [], []
    for name, by_batch in current.items():
        if name not in baseline.models:
            skipped.append(f"{name}: not in the baseline (names: "
                           f"{', '.join(baseline.models) or 'none'})")
            continue
        for batch, figures in by_batch.items():
            old = baseline.models[name].get(batch)
            if old is None:
                skipped.append(f"{name} {batch}: not in the baseline")
                continue
            change = figures["relative_p50"] / old.relative_p50 - 1
            row = {"model": name, "batch": batch, "baseline_relative_p50": old.relative_p50,
                   "relative_p50": figures["relative_p50"], "change": round(change, 4),
                   "baseline_p50_ms": old.p50_ms, "p50_ms": figures["p50_ms"],
                   "passed": change <= threshold}
            rows.append(row)
            if not row["passed"]:
                row["message"] = (
                    f"{name} {batch}: p50 is {100 * change:+.1f}% against the baseline "
                    f"(relative to the reference workload; {figures['p50_ms']:.3f} ms now, "
                    f"{old.p50_ms:.3f} ms then), more than the {100 * threshold:.0f}% allowed")
    return rows, skipped
