"""One variant of an exported model: the fp32 graph fused, then quantized in one mode, and
timed at batch 1 on this host.

`fused` takes optimum's export to the graph the quantizers start from (each rewrite
parity-gated by the caller's `gate`); `build` makes one --quantize mode of it (int8 dynamic
or static, int4, fp16, or fp32 as it is), with --int4-embeddings' 4-bit tables on top of
int8 layers; `sensitive_nodes` names what an int8 retry keeps in fp32; `timed_here` is the
batch-1 latency export records, and the host it was measured on.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from ..measure import latency
from ..modeling import heads
from . import quantize, rewrites

log = logging.getLogger(__name__)

# A parity gate: (an ONNX model, its precision) -> the report; raises where it drifts
Gate = Callable[[Path, str], dict]


class BuildSettings(BaseModel):
    """How a quantized variant is made (export's flags of the same names)."""

    model_config = ConfigDict(frozen=True, from_attributes=True)

    target: Literal[tuple(quantize.TARGETS)] = quantize.DEFAULT_TARGET
    per_channel: bool | None = None
    int4_embeddings: bool = False
    calibration_method: Literal[quantize.CALIBRATION] = "minmax"
    fuse: bool = True  # (recorded with fp32: whether the graph it copies was fused)


def build(mode: str, fp32: Path, tmp: Path, feeds: list[dict], settings: BuildSettings,
          exclude: list[str] | None = None, name: str | None = None,
          layers_only: bool = False) -> tuple[Path, dict]:
    """The model in `mode` as tmp/NAME.onnx (NAME: `name`, else the mode) and the
    quantizer's settings. `fp32`: the fused graph; int8-static quantizes tmp/exported.onnx,
    the unfused one. `exclude`: nodes kept in float. `feeds`: the calibration inputs."""
    dst = tmp / f"{name or mode}.onnx"
    if settings.int4_embeddings and mode.startswith("int8") and not layers_only:
        layers, made = build(mode, fp32, tmp, feeds, settings, exclude,
                             f"{name or mode}-layers", layers_only=True)
        made["embeddings"] = quantize.int4(layers, dst, ("Gather",))
        return dst, made
    tgt = quantize.target(settings.target)
    if mode == "int4":
        return dst, {"mode": "int4"} | quantize.int4(fp32, dst)
    if mode == "none":
        shutil.copyfile(fp32, dst)
        return dst, {"mode": "none", "precision": "fp32", "fused": settings.fuse}
    if mode == "int8-dynamic":
        # (the embedding Gathers left in float when they are to get 4-bit blocks next)
        return dst, quantize.dynamic(fp32, dst, tgt, settings.per_channel, exclude,
                                     ["MatMul", "Attention"] if settings.int4_embeddings
                                     else None)
    if mode == "int8-static":
        # the unfused graph: QDQ quantization cannot type the fused contrib ops
        src = tmp / "exported.onnx"
        return dst, quantize.static(src, dst, tgt, feeds, settings.calibration_method,
                                    settings.per_channel, exclude)
    return dst, quantize.fp16(fp32, dst)


class FuseSettings(BaseModel):
    """Which rewrites the fp32 graph gets (export's flags of the same names; `quantize`:
    the mode it is fused for)."""

    model_config = ConfigDict(frozen=True, from_attributes=True)

    fuse: bool = True
    first_token_last_layer: bool = True
    quantize: str
    int4_embeddings: bool = False


@dataclass(frozen=True)
class Fused:
    """The fp32 graph the quantizers start from, and what was done to it."""

    path: Path
    fusions: dict | None = None  # the fused-operator counts (None: not fused)
    first_token_last_layer: bool = False
    parity: dict | None = None  # its parity gate (None: the export's own graph)


def fused(tmp: Path, hf_config, settings: FuseSettings, first_token_allowed: bool,
          gate: Gate) -> Fused:
    """tmp/exported.onnx fused (and its last layer cut to the first token, where the task
    allows: `first_token_allowed`), the rewritten graph parity-gated."""
    fp32 = tmp / "exported.onnx"
    if not settings.fuse:
        return Fused(fp32)
    # 4-bit blocks need the weights in MatMuls and Gathers, not inside fused ops
    int4 = settings.quantize == "int4"
    fusions = rewrites.fuse(fp32, tmp / "fused.onnx", hf_config, attention=not int4,
                            embeddings=not (settings.int4_embeddings or int4))
    fp32, first_token = tmp / "fused.onnx", False
    if (settings.first_token_last_layer and first_token_allowed
            and rewrites.first_token_last_layer(fp32, tmp / "fused-first-token.onnx",
                                                hf_config)):
        fp32, first_token = tmp / "fused-first-token.onnx", True
    return Fused(fp32, fusions, first_token, gate(fp32, "fp32"))


def sensitive_nodes(path: Path) -> list[str]:
    """Nodes most int8 error flows from: the head and the last block's FFN."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    names = [n.name for n in model.graph.node if n.op_type in ("MatMul", "Gemm", "Attention")]
    head = [n for n in names if any(h in n for h in heads.HEAD_MODULES)]
    last = sorted({n.split("/")[3] for n in names if n.count("/") > 3 and "layer." in n},
                  key=lambda s: int(s.split(".")[-1]) if s.split(".")[-1].isdigit() else -1)
    tail = [n for n in names if last and f"/{last[-1]}/" in n
            and ("intermediate" in n or "output/dense" in n)]
    return head + tail


def latency_batch1(path: Path, singles: list[dict], threads: int) -> dict:
    """p50/p90 (and the rest of latency.measure's figures) over `singles`, one at a time."""
    session = latency.ort_session(path, threads)
    return latency.measure(lambda b: session.run(None, latency.feeds_for(session, b)), singles,
                           warmup=20, iterations=max(200, len(singles)))


def timed_here(model: Path, singles: list[dict], threads: int, target: str,
               on_eval_rows: bool, precision: str | None) -> tuple[dict, dict]:
    """(export.json "latency_batch1", "host"): batch-1 latency here, and the host it was
    measured on (an int8 model tuned for another CPU family: said)."""
    timed = latency_batch1(model, singles, threads) | {
        "threads": threads, "provider": "CPUExecutionProvider",
        "inputs": "eval rows, one at a time" if on_eval_rows else "probe rows"}
    machine = latency.machine()
    host = {k: machine[k] for k in ("cpu", "arch", "isa")}
    if precision == "int8":
        # the latency above is this host's: say so where the target's devices differ
        host["target_mismatch"] = quantize.host_mismatch(target, machine)
        if host["target_mismatch"]:
            log.warning("latency measured here may not hold on the target: %s",
                        host["target_mismatch"])
    return timed, host
