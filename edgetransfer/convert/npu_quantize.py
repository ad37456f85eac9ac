"""Static QDQ quantization of a fixed-shape graph, the way an accelerator computes, through
onnxruntime.quantization: its generic QDQ quantizer (NNAPI: u8 activations and weights,
per tensor; quantize.qdq_static, as the CPU's int8-static), or its QNN recipe
(qnn_preprocess_model, get_qnn_qdq_config: 16-bit or 8-bit activations, 8-bit weights).
The weights of the op types the accelerator takes per channel (accelerators.Profile.
per_channel_ops) get one s8 symmetric scale per output channel, through the quantizer's own
tensor-level overrides. Only the settings are ours.

Calibration feeds are what the fixed-shape model takes (fixed_shapes.FixedShapes.
model_feeds: padded to the bucket, the mask as its additive bias).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from . import quantize
from .accelerators import Profile


def qdq(src: Path, dst: Path, prof: Profile, feeds: list[dict], activation_bits: int,
        method: str = "minmax") -> dict:
    """src -> dst in QDQ for `prof`; the quantizer's settings (export.json "quantization")."""
    import onnx

    if not feeds:
        raise ConfigError(f"--for {prof.name} --quantize int8-static needs --calibration-data")
    activation = {8: "QUInt8", 16: "QUInt16"}[activation_bits]
    # NNAPI: a transformer's MatMuls only (the rest in float inside the same partition, as
    # quantize.static_ops says why); QNN's HTP runs quantized tensors only: every op
    ops = None if prof.name == "qnn" else quantize.static_ops(src)
    settings = {"mode": "int8-static", "precision": "int8", "format": "QDQ",
                "accelerator": prof.name, "activation_type": activation,
                "weight_type": prof.weight_type, "calibration_method": method,
                "calibration_examples": len(feeds), "op_types": ops or "all onnxruntime quantizes"}
    if prof.name == "qnn":
        overrides = _qnn(Path(src).resolve(), Path(dst).resolve(), feeds, activation, prof,
                         method)
    else:
        overrides = per_channel_overrides(src, prof.per_channel_ops)
        quantize.qdq_static(src, dst, feeds, activation_type=activation,
                            weight_type=prof.weight_type, per_channel=False,
                            reduce_range=False, method=method, ops=ops, overrides=overrides)
    settings["per_channel"] = (f"{PER_CHANNEL} weights of {', '.join(prof.per_channel_ops)} "
                               f"({len(overrides)}): symmetric, one scale per output channel"
                               if overrides else False)
    settings["opset"] = next(o.version for o in onnx.load(str(dst), load_external_data=False)
                             .opset_import if o.domain in ("", "ai.onnx"))
    return settings


PER_CHANNEL = "QInt8"


def per_channel_overrides(src: Path, ops: tuple[str, ...]) -> dict:
    """onnxruntime's TensorQuantOverrides giving the weight of each node of `ops` one s8
    symmetric scale per output channel: a Conv's axis 0 ([out, in/groups, kH, kW]), a
    Gemm's axis 0 with transB, else 1 ([in, out]); {} where the graph has none."""
    import onnx
    from onnxruntime.quantization import QuantType

    graph = onnx.load(str(src), load_external_data=False).graph
    weights = {t.name for t in graph.initializer}
    out = {}
    for node in graph.node:
        if node.op_type in ops and node.input[1] in weights:
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            axis = 1 if node.op_type == "Gemm" and not trans_b else 0
            out[node.input[1]] = [{"axis": axis, "quant_type": getattr(QuantType, PER_CHANNEL),
                                   "symmetric": True}]
    return out


def _qnn(src: Path, dst: Path, feeds, activation: str, prof: Profile, method: str) -> dict:
    """QNN's recipe; the per-channel overrides it was given (read after its preprocessing,
    which fuses MatMul + Add into the Gemm that HTP runs as FullyConnected)."""
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize as quantize_with
    from onnxruntime.quantization.execution_providers.qnn import (
        get_qnn_qdq_config,
        qnn_preprocess_model,
    )

    with quantize.in_scratch_dir() as tmp:
        prepared = tmp / "prepared.onnx"
        source = prepared if qnn_preprocess_model(str(src), str(prepared)) else src
        overrides = per_channel_overrides(source, prof.per_channel_ops)
        config = get_qnn_qdq_config(str(source), quantize.calibration_reader(feeds),
                                    calibrate_method=quantize.calibrate_method(method),
                                    activation_type=getattr(QuantType, activation),
                                    weight_type=getattr(QuantType, prof.weight_type),
                                    init_overrides=overrides or None)
        quantize_with(str(source), str(dst), config)
    return overrides
