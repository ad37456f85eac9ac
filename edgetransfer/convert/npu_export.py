"""The steps `export --for nnapi|coreml|qnn` takes instead of fusing for the CPU: the
fixed-shape graph (npu_graph.py) and its coverage (measure/coverage.py; measure/qnn.py);
`target --accelerator` measures a bundle's coverage the same way. export.py calls them and
quantizes (npu_quantize.py); the gates are export's own.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..bundle.runtime.fixed_shapes import MASK_INPUT
from ..errors import ConfigError
from ..measure import coverage, qnn
from . import npu_graph
from .accelerators import Profile

log = logging.getLogger(__name__)


def fixed_dims(exported: Path, probe: dict, length: int) -> dict[str, list[int]]:
    """Each input's fixed shape: batch 1; a token input's length the bucket; any other
    dimension as the probe has it (an image's channels and size)."""
    import onnx

    dims = {}
    for value in onnx.load(str(exported), load_external_data=False).graph.input:
        shape = list(probe[value.name].shape) if value.name in probe else None
        if shape is None:
            raise ConfigError(f"the exported graph's input {value.name} is not one the task "
                              f"feeds; it cannot be given a fixed shape")
        tokens = value.name in ("input_ids", "token_type_ids", MASK_INPUT)
        dims[value.name] = [1, length, *shape[2:]] if tokens else [1, *shape[1:]]
    return dims


def graph(exported: Path, dst: Path, prof: Profile, probe: dict, length: int, opset: int
          ) -> dict:
    """dst: the exported graph rewritten for `prof` (export gates it). Returns export.json's
    "accelerator" record so far."""
    dims = fixed_dims(exported, probe, length)
    done = npu_graph.rewrite(exported, dst, dims, prof.decompose)
    record = {"name": prof.name, "provider": prof.provider, "opset": opset,
              "rewrites": done}
    if MASK_INPUT in dims or "input_ids" in dims:
        record["sequence_length"] = length
    log.info("%s graph: fixed shapes %s; %s", prof.name, dims, ", ".join(
        k for k in npu_graph.REWRITES if done.get(k)))
    return record


def check_mode(mode: str, prof: Profile) -> str:
    """The --quantize mode `prof` builds (int8: its own int8), or a one-line refusal."""
    if mode == "int8":
        if "int8-static" not in prof.quantize:
            raise ConfigError(f"--for {prof.name} takes no int8 ({_why(prof)}); use "
                              f"--quantize {' or '.join(prof.quantize)}")
        return "int8-static"
    if mode not in prof.quantize:
        raise ConfigError(f"--for {prof.name} --quantize {mode}: not for this accelerator; "
                          f"use {' or '.join(_said(m) for m in prof.quantize)}" + (
                              f" ({_why(prof)})" if prof.name in WHY else ""))
    return mode


# why a profile takes only some modes (accelerators.py says it at length)
WHY = {"coreml": "onnxruntime's CoreML provider takes no QuantizeLinear/DequantizeLinear: a "
                 "QDQ graph would be cut at every quantized tensor",
       "nnapi": "NNAPI's accelerators run quantized models, and its float graph holds GELU "
                "in tanh form, ~1e-2 from PyTorch's logits, which verify's fp32 tolerance "
                "refuses"}


def _said(mode: str) -> str:
    return "int8" if mode == "int8-static" else mode


def _why(prof: Profile) -> str:
    return WHY.get(prof.name, f"{prof.name} takes {', '.join(prof.quantize)}")


def coverage_of(model: Path, prof: Profile, scratch: Path, htp: tuple[int, int]) -> tuple:
    """(the coverage record, a QNN simulator session or None), measured on the model at
    `model`. NNAPI and CoreML: onnxruntime's usability checker. QNN: compiled for HTP with
    CPU fallback disabled (the context binary written under `scratch`) where onnxruntime-qnn
    is installed; otherwise said, not guessed. A graph HTP refuses is a ModelError."""
    if prof.checker is not None:
        return coverage.mobile(model, prof.checker, prof.max_rank, prof.provider), None
    if not qnn.available():
        log.warning("QNN coverage not checked: onnxruntime-qnn is not installed (%s)",
                    qnn.INSTALL)
        return {"provider": prof.provider, "checked": False,
                "why": f"onnxruntime-qnn not installed: {qnn.INSTALL}"}, None
    return qnn.compile_report(model, htp[0], htp[1], scratch)
