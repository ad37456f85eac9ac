"""Choose the device and precision, and refuse what the machine cannot do.

`--device cuda` on a machine without CUDA is an error, never a silent CPU run.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError, EnvironmentProblem


@dataclass(frozen=True)
class Placement:
    device: str  # "cpu", "cuda", "mps"
    precision: str  # "fp32", "bf16", "fp16"

    def describe(self) -> str:
        import torch

        if self.device == "cuda":
            return f"cuda ({torch.cuda.get_device_name(0)}), {self.precision}"
        return f"{self.device}, {self.precision}"


def choose(device: str = "auto", precision: str = "auto") -> Placement:
    import os

    kind, _, index = device.partition(":")
    if kind in ("cuda", "auto") and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        # One process sees one GPU: otherwise the Trainer wraps the model in DataParallel over
        # every visible GPU (an effective batch of N x --batch-size) and ignores the index.
        # Set before torch first counts the devices.
        if index and not index.isdigit():
            raise ConfigError(f"--device {device}: use cuda or cuda:N")
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", index or "0")
    import torch

    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if device == "auto":
        device = "cuda" if cuda else "cpu"  # mps only on request: several ops still fall back
    kind = device.split(":")[0]
    if kind == "cuda" and cuda and torch.cuda.device_count() > 1 and \
            int(os.environ.get("WORLD_SIZE", "1")) == 1:
        import logging

        logging.getLogger(__name__).warning(
            "%d GPUs visible to one process: training uses one; start several with torchrun",
            torch.cuda.device_count())
    if kind not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"--device {device}: use auto, cpu, cuda or mps")
    if kind == "cuda" and not cuda:
        raise EnvironmentProblem(
            f"--device {device}: torch sees no CUDA device here (torch {torch.__version__}"
            f"{', a CPU-only build' if torch.version.cuda is None else ''}); use --device cpu"
        )
    if kind == "mps" and not mps:
        raise EnvironmentProblem(f"--device {device}: no Apple MPS device here; use --device cpu")

    if precision == "auto":
        # bf16 where the GPU has it (no loss scaling needed), else fp16 autocast; fp32 on CPU,
        # where autocast to bf16 is slower than fp32 on most x86 cores without AMX.
        if kind == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "fp32"
    if precision not in ("fp32", "bf16", "fp16"):
        raise ConfigError(f"--precision {precision}: use auto, fp32, bf16 or fp16")
    if precision == "fp16" and kind != "cuda":
        raise ConfigError(f"--precision fp16 needs --device cuda (it is {kind})")
    if precision == "bf16" and kind == "cuda" and not torch.cuda.is_bf16_supported():
        raise EnvironmentProblem("--precision bf16: this GPU has no bf16; use fp16")
    return Placement(device=kind, precision=precision)
