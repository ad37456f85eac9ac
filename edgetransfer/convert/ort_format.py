"""`export --ort-format`: model.ort and required_operators.config for onnxruntime's minimal
and mobile builds (and what the bundled runtime runs when the bundle has it)."""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelError
from . import quantize


def convert(path: Path, folder: Path, target: str = quantize.DEFAULT_TARGET) -> dict:
    """Write FOLDER/NAME.ort and its operator config; export.json "ort_format": the files,
    and the converter's --target_platform (the CPU family's: its fixed optimizations)."""
    import subprocess
    import sys

    platform = quantize.TARGETS[target].ort_platform
    cmd = [sys.executable, "-m", "onnxruntime.tools.convert_onnx_models_to_ort", str(path),
           "--output_dir", str(folder),
           # graph optimizations fixed at conversion: one .ort, runnable by minimal builds
           "--optimization_style", "Fixed", "--target_platform", platform]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ModelError(f"ORT format conversion failed: {proc.stderr.strip().splitlines()[-1]}")
    ort_files = sorted(p.name for p in folder.glob("*.ort"))
    configs = sorted(p.name for p in folder.glob("*.config"))
    return {"files": ort_files + configs, "target_platform": platform}
