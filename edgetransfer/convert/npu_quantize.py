"""Static QDQ quantization of a fixed-shape graph, the way an accelerator computes, through
onnxruntime.quantization: its generic QDQ quantizer (NNAPI: u8 activations and weights,
per tensor), or its QNN recipe (qnn_preprocess_model, get_qnn_qdq_config: 16-bit or 8-bit
activations, 8-bit weights). Only the calibration reader and the settings are ours.

Calibration feeds are what the fixed-shape model takes (fixed_shapes.FixedShapes.
model_feeds: padded to the bucket, the mask as its additive bias).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import ConfigError
from .accelerators import Profile


def _reader(feeds: list[dict]):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(feeds)

        def get_next(self):
            return next(self.it, None)

    return Reader()


def qdq(src: Path, dst: Path, prof: Profile, feeds: list[dict], activation_bits: int,
        method: str = "minmax") -> dict:
    """src -> dst in QDQ for `prof`; the quantizer's settings (export.json "quantization")."""
    from onnxruntime.quantization import CalibrationMethod

    from . import quantize

    if not feeds:
        raise ConfigError(f"--for {prof.name} --quantize int8-static needs --calibration-data")
    activation = {8: "QUInt8", 16: "QUInt16"}[activation_bits]
    calibration = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                   "percentile": CalibrationMethod.Percentile}[method]
    # NNAPI: a transformer's MatMuls only (the rest in float inside the same partition, as
    # quantize.static_ops says why); QNN's HTP runs quantized tensors only: every op
    ops = None if prof.name == "qnn" else quantize.static_ops(src)
    settings = {"mode": "int8-static", "precision": "int8", "format": "QDQ",
                "accelerator": prof.name, "activation_type": activation,
                "weight_type": prof.weight_type, "per_channel": prof.per_channel,
                "calibration_method": method, "calibration_examples": len(feeds),
                "op_types": ops or "all onnxruntime quantizes"}
    src, dst = Path(src).resolve(), Path(dst).resolve()
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # (the quantizers leave scratch files in the working directory)
        try:
            if prof.name == "qnn":
                _qnn(src, dst, Path(tmp), feeds, activation, prof, calibration, ops)
            else:
                _generic(src, dst, Path(tmp), feeds, activation, prof, calibration, ops)
        finally:
            os.chdir(here)
    import onnx

    settings["opset"] = next(o.version for o in onnx.load(str(dst), load_external_data=False)
                             .opset_import if o.domain in ("", "ai.onnx"))
    return settings


def _generic(src, dst, tmp, feeds, activation, prof, calibration, ops) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType, quant_pre_process, quantize_static

    prepared = tmp / "prepared.onnx"
    quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
    quantize_static(str(prepared), str(dst), _reader(feeds), quant_format=QuantFormat.QDQ,
                    per_channel=prof.per_channel, activation_type=getattr(QuantType, activation),
                    weight_type=getattr(QuantType, prof.weight_type), calibrate_method=calibration,
                    op_types_to_quantize=ops)


def _qnn(src, dst, tmp, feeds, activation, prof, calibration, _ops) -> None:
    from onnxruntime.quantization import QuantType, quantize
    from onnxruntime.quantization.execution_providers.qnn import (
        get_qnn_qdq_config,
        qnn_preprocess_model,
    )

    prepared = tmp / "prepared.onnx"
    source = prepared if qnn_preprocess_model(str(src), str(prepared)) else src
    config = get_qnn_qdq_config(str(source), _reader(feeds), calibrate_method=calibration,
                                activation_type=getattr(QuantType, activation),
                                weight_type=getattr(QuantType, prof.weight_type),
                                per_channel=prof.per_channel)
    quantize(str(source), str(dst), config)
