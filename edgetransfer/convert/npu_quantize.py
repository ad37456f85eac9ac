"""Static QDQ quantization of a fixed-shape graph, the way an accelerator computes, through
onnxruntime.quantization: its generic QDQ quantizer (NNAPI: u8 activations and weights,
per tensor; quantize.qdq_static, as the CPU's int8-static), or its QNN recipe
(qnn_preprocess_model, get_qnn_qdq_config: 16-bit or 8-bit activations, 8-bit weights).
Convolution weights per channel, s8 symmetric, for both (accelerators.Profile.
conv_per_channel), through the quantizer's own tensor-level overrides. Only the settings
are ours.

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
    overrides = conv_overrides(src) if prof.conv_per_channel else {}
    settings = {"mode": "int8-static", "precision": "int8", "format": "QDQ",
                "accelerator": prof.name, "activation_type": activation,
                "weight_type": prof.weight_type,
                "per_channel": f"Conv weights only: {CONV_WEIGHTS}, symmetric, axis 0"
                if overrides else False, "calibration_method": method,
                "calibration_examples": len(feeds), "op_types": ops or "all onnxruntime quantizes"}
    if prof.name == "qnn":
        _qnn(Path(src).resolve(), Path(dst).resolve(), feeds, activation, prof, method,
             overrides)
    else:
        quantize.qdq_static(src, dst, feeds, activation_type=activation,
                            weight_type=prof.weight_type, per_channel=False,
                            reduce_range=False, method=method, ops=ops, overrides=overrides)
    settings["opset"] = next(o.version for o in onnx.load(str(dst), load_external_data=False)
                             .opset_import if o.domain in ("", "ai.onnx"))
    return settings


CONV_WEIGHTS = "QInt8"


def conv_overrides(src: Path) -> dict:
    """onnxruntime's TensorQuantOverrides giving each Conv's weight one s8 symmetric scale
    per output channel (axis 0 of [out, in/groups, kH, kW]); {} for a graph with none."""
    import onnx
    from onnxruntime.quantization import QuantType

    graph = onnx.load(str(src), load_external_data=False).graph
    weights = {t.name for t in graph.initializer}
    return {n.input[1]: [{"axis": 0, "quant_type": getattr(QuantType, CONV_WEIGHTS),
                          "symmetric": True}]
            for n in graph.node if n.op_type == "Conv" and n.input[1] in weights}


def _qnn(src: Path, dst: Path, feeds, activation: str, prof: Profile, method: str,
         overrides: dict) -> None:
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize as quantize_with
    from onnxruntime.quantization.execution_providers.qnn import (
        get_qnn_qdq_config,
        qnn_preprocess_model,
    )

    with quantize.in_scratch_dir() as tmp:
        prepared = tmp / "prepared.onnx"
        source = prepared if qnn_preprocess_model(str(src), str(prepared)) else src
        import os
        if os.environ.get("ET_EXPERIMENT_LN16"):
            import onnx
            g = onnx.load(str(source), load_external_data=False).graph
            inits = {t.name for t in g.initializer}
            for n in g.node:
                if n.op_type == "LayerNormalization":
                    for name in n.input[1:]:
                        if name in inits:
                            overrides = {**overrides, name: [{"quant_type": getattr(QuantType, activation)}]}
            print("EXPERIMENT LN16", len(overrides))
        config = get_qnn_qdq_config(str(source), quantize.calibration_reader(feeds),
                                    calibrate_method=quantize.calibrate_method(method),
                                    activation_type=getattr(QuantType, activation),
                                    weight_type=getattr(QuantType, prof.weight_type),
                                    init_overrides=overrides or None)
        quantize_with(str(source), str(dst), config)
