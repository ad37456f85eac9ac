"""Command `target`: check a bundle against a device before shipping it.

Not a pipeline step (package runs the same checks when it builds a bundle; this command
re-checks one already built, for another device or Python): every requirement has a wheel for
the target platform and Python (with a glibc the system has), the pinned onnxruntime has a
CPU kernel for every operator and loads the model, int8 suits the CPU and was tuned for its
family (edgetransfer/device/target_check.py: package's own check()). Prints the table and
each warning; exit 2 on a blocking finding.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

import click
from pydantic import ConfigDict, Field

from .. import platforms
from ..convert import accelerators, npu_export
from ..errors import ConfigError, EnvironmentProblem, ModelError
from ..measure import coverage
from ..options import TargetOptions

# The command's --help (edgetransfer.cli makes the command from the registry).
HELP = """Check a bundle against a device: wheels for its platform and Python, operators
in the pinned onnxruntime, int8 on its CPU.

\b
Examples:
  edgetransfer target --bundle models/demo/bundle --target linux-aarch64 \\
      --target-python 3.13 --target-cpu cortex-a76
  edgetransfer target --bundle models/demo/bundle.tar.gz --json
  edgetransfer target --bundle models/demo/bundle-nnapi --accelerator nnapi \\
      --min-coverage 0.99

Exit codes: 0 it will run (warnings are printed); 2 a blocking finding (no wheel, an operator
without a kernel, a model onnxruntime refuses, coverage under --min-coverage).
"""


class TargetConfig(TargetOptions):
    """Settings of `edgetransfer target`; each description is the CLI help."""

    model_config = ConfigDict(extra="forbid")

    bundle: Path = Field(description="A bundle: the .tar.gz `edgetransfer package` wrote, or "
                         "its folder.")
    target: Literal[tuple(platforms.PLATFORMS)] | None = Field(
        None, description="The device's platform [default: the bundle's manifest target].")
    accelerator: Literal[tuple(accelerators.PROFILES)] | None = Field(
        None, description="Also check how much of the bundle's model this accelerator runs "
        "(nnapi: onnxruntime's usability checker on NNAPI's operator list; coreml: the same "
        "on CoreML MLProgram's; qnn: compiled for HTP, needs onnxruntime-qnn) and print the "
        "coverage table.")
    min_coverage: float | None = Field(None, ge=0, le=1, description="With --accelerator: "
                                       "exit 2 when the largest partition (QNN: the nodes on "
                                       "HTP) holds less than this share of the model's nodes, "
                                       "e.g. 0.99.")


def run(cfg: TargetConfig, json: bool = False) -> dict:
    if cfg.min_coverage is not None and cfg.accelerator is None:
        raise ConfigError("--min-coverage holds an accelerator's coverage: name it with "
                          "--accelerator nnapi, coreml or qnn")
    import json as json_module

    from ..bundle import requirements
    from ..bundle.archive import model_file, open_bundle
    from ..device.target_check import check

    with tempfile.TemporaryDirectory(prefix="edgetransfer-target-") as tmp:
        folder, manifest = open_bundle(cfg.bundle, Path(tmp))
        # (parsed as pinned, hashed wheels before pip sees any of it)
        pins = requirements.read(folder, manifest, f"--bundle {cfg.bundle}")
        model, precision = model_file(folder, manifest, f"--bundle {cfg.bundle}")
        target = cfg.target or manifest.get("target", "linux-x86_64")
        if not isinstance(target, str) or target not in platforms.PLATFORMS:
            raise ConfigError(f"--bundle {cfg.bundle}: manifest.json target "
                              f"{str(target)[:40]!r} is not one of "
                              f"{', '.join(platforms.PLATFORMS)}; give --target")
        # (export's settings as package recorded them: the CPU family int8 was tuned for;
        # model_file has checked that "model" is an object)
        result = check(target, cfg.target_python, cfg.target_cpu, pins, model, precision,
                       manifest["model"].get("quantization"))
        if cfg.accelerator:
            result["coverage"] = _coverage(model, cfg.accelerator, Path(tmp))
    click.echo(json_module.dumps(result, indent=2) if json else
               f"{cfg.bundle}: runs on {result['target']}, Python {result['python']} "
               f"({result['system']})" + (f", {result['cpu']}" if result["cpu"] else ""))
    if cfg.accelerator and not json:
        for line in coverage.lines(result["coverage"]):
            click.echo(f"  {cfg.accelerator}: {line}")
    share = coverage.share(result["coverage"]) if cfg.min_coverage is not None else None
    if share is not None and share < cfg.min_coverage:
        raise ModelError(f"--bundle {cfg.bundle}: {cfg.accelerator} runs {share:.1%} of its "
                         f"model in one piece, under --min-coverage {cfg.min_coverage:g}; "
                         f"export the model with --for {cfg.accelerator} and package it again")
    return result


def _coverage(model: Path, accelerator: str, scratch: Path) -> dict:
    """The coverage of the bundle's model (measured here, not read from its manifest: a
    bundle may come from anyone), as export measures it."""
    prof = accelerators.profile(accelerator)
    try:
        record = npu_export.coverage_of(model, prof, scratch, (accelerators.QNN_HTP_ARCH,
                                                               accelerators.QNN_SOC_MODEL))[0]
    except ModelError as e:  # (a node HTP refuses: the table says none of it runs there)
        return {"provider": prof.provider, "htp_nodes": 0, "nodes": 0, "htp_share": 0.0,
                "cpu_fallback": False, "refused": str(e)[:300]}
    if record.get("checked") is False:  # (asked for, and not measurable here)
        raise EnvironmentProblem(f"--accelerator {accelerator}: {record['why']}")
    return record
