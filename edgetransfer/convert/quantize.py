"""int8 (dynamic, static QDQ) and fp16 conversion, through onnxruntime's own tools.

The order matters: onnxruntime's quantizer cannot type the outputs of the fused contrib
ops (Attention, SkipLayerNormalization) and stops with "Unable to find data type for
weight_name" -- the error optimum's ORTQuantizer shows on a fused BERT. Dynamic
quantization of the fused graph works once the quantizer is told that untyped tensors are
float (`DefaultTensorType`), and gives QAttention and QEmbedLayerNormalization kernels.
Static QDQ quantizes the unfused graph (after shape inference); onnxruntime fuses the QDQ
pattern itself when it loads the model.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

log = logging.getLogger(__name__)

MODES = ("none", "int8-dynamic", "int8-static", "fp16", "auto")


def precision_of(mode: str | None) -> str | None:
    """The precision a --quantize mode gives: the one rule export, verify, runners and
    package read (none -> fp32; fp16 -> fp16; every int8 mode -> int8)."""
    if mode is None:
        return None
    return {"none": "fp32", "fp16": "fp16"}.get(mode, "int8" if mode.startswith("int8")
                                                 else mode)
CALIBRATION = ("minmax", "entropy", "percentile")


@dataclass(frozen=True)
class Target:
    """What a CPU family wants from an int8 model."""

    name: str
    per_channel: bool  # one scale per output channel: more accurate, a little slower
    reduce_range: bool  # 7-bit weights: avoids u8s8 saturation on CPUs without VNNI
    activation_type: str  # static QDQ activations: QUInt8 (x86 u8s8 kernels) or QInt8


TARGETS = {
    # AVX2 without VNNI multiplies u8 x s8 into saturating 16-bit sums: 7-bit weights keep
    # them exact (onnxruntime's quantization guide).
    "x86-avx2": Target("x86-avx2", per_channel=False, reduce_range=True,
                       activation_type="QUInt8"),
    # VNNI accumulates in 32 bits: full 8-bit range; per-channel as optimum's preset does.
    "x86-avx512-vnni": Target("x86-avx512-vnni", per_channel=True, reduce_range=False,
                              activation_type="QUInt8"),
    # ARM's dot-product kernels are signed x signed.
    "arm64": Target("arm64", per_channel=True, reduce_range=False, activation_type="QInt8"),
}


# What a host needs to run a target's int8 kernels as tuned: its architecture (platform's
# name) and the /proc/cpuinfo flag of the instructions the target assumes.
TARGET_HOST = {"x86-avx2": (("x86_64", "AMD64"), "avx2"),
               "x86-avx512-vnni": (("x86_64", "AMD64"), "avx512_vnni"),
               "arm64": (("aarch64", "arm64"), "asimd")}


def host_mismatch(name: str, machine: dict) -> str | None:
    """Why latency measured on this host does not speak for the target's devices, or None.

    The model itself is portable (onnxruntime picks kernels at run time); what differs is
    the speed, and on AVX2 without VNNI the u8 x s8 products that can saturate. A host that
    reports no flags (no /proc/cpuinfo) is not judged.
    """
    archs, flag = TARGET_HOST[name]
    if machine.get("arch") not in archs:
        return f"this host is {machine.get('arch')}, the target {name}"
    if machine.get("isa") and flag not in machine["isa"]:
        return (f"this CPU lacks {flag}, which --target {name} is tuned for; onnxruntime "
                f"runs it on the kernels this CPU has ({', '.join(machine['isa'])})")
    return None


def target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise ConfigError(f"--target {name}: use one of {', '.join(TARGETS)}") from None


def dynamic(src: Path, dst: Path, tgt: Target, per_channel: bool | None = None,
            exclude: list[str] | None = None) -> dict:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    settings = {"mode": "int8-dynamic", "target": tgt.name,
                "per_channel": tgt.per_channel if per_channel is None else per_channel,
                "reduce_range": tgt.reduce_range, "weight_type": "QInt8",
                "nodes_excluded": list(exclude or [])}
    with _quiet_root_logger():
        quantize_dynamic(
            str(src), str(dst), weight_type=QuantType.QInt8, per_channel=settings["per_channel"],
            reduce_range=tgt.reduce_range, nodes_to_exclude=exclude or None,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    return settings


@contextlib.contextmanager
def _quiet_root_logger():
    """onnxruntime's quantizer advises pre-processing through the root logger on every call
    ("WARNING:root:Please consider..."), which reads as a problem; shown only with -vv."""
    root = logging.getLogger()
    level = root.level
    if not logging.getLogger("edgetransfer").isEnabledFor(logging.DEBUG):
        root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def static(src: Path, dst: Path, tgt: Target, feeds: list[dict], method: str = "minmax",
           per_channel: bool | None = None, exclude: list[str] | None = None) -> dict:
    """QDQ int8 calibrated on `feeds` (one dict of numpy inputs per calibration example)."""
    import tempfile

    from onnxruntime.quantization import CalibrationDataReader

    if method not in CALIBRATION:
        raise ConfigError(f"--calibration-method {method}: use one of {', '.join(CALIBRATION)}")
    if not feeds:
        raise ConfigError("--quantize int8-static needs --calibration-data with some texts")

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(feeds)

        def get_next(self):
            return next(self.it, None)

    settings = {"mode": "int8-static", "format": "QDQ", "target": tgt.name,
                "calibration_method": method, "calibration_examples": len(feeds),
                "per_channel": tgt.per_channel if per_channel is None else per_channel,
                "reduce_range": tgt.reduce_range, "activation_type": tgt.activation_type,
                "weight_type": "QInt8", "nodes_excluded": list(exclude or [])}
    import os

    src, dst = Path(src).resolve(), Path(dst).resolve()
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        # onnxruntime's static quantizer drops scratch files (sym_shape_infer_temp.onnx,
        # *.data) into the working directory and leaves them there when it fails (seen with
        # symbolic shape inference on): keep them in our temp folder
        os.chdir(tmp)
        try:
            _static_in(src, dst, Path(tmp) / "prepared.onnx", Reader, settings, tgt, exclude,
                       method)
        finally:
            os.chdir(here)
    return settings


def _static_in(src, dst, prepared, reader, settings, tgt, exclude, method) -> None:
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    # ONNX shape inference only: the symbolic pass cannot resolve these dynamic axes
    quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
    ops = static_ops(prepared)
    settings["op_types"] = ops or "all onnxruntime quantizes"
    quantize_static(
        str(prepared), str(dst), reader(), quant_format=QuantFormat.QDQ,
        per_channel=settings["per_channel"], reduce_range=tgt.reduce_range,
        activation_type=getattr(QuantType, tgt.activation_type),
        weight_type=QuantType.QInt8, nodes_to_exclude=exclude or None,
        calibrate_method={"minmax": CalibrationMethod.MinMax,
                          "entropy": CalibrationMethod.Entropy,
                          "percentile": CalibrationMethod.Percentile}[method],
        op_types_to_quantize=ops,
        extra_options={"ActivationSymmetric": tgt.activation_type == "QInt8"},
    )


def static_ops(path: Path) -> list[str] | None:
    """The op types static int8 quantizes in this graph. A transformer: only MatMul
    (quantizing Add/Gather costs more in (de)quantize nodes than it saves). A CNN (any Conv):
    None, i.e. every op onnxruntime's QDQ quantizer knows, so activations stay int8 from one
    convolution to the next (Clip/ReLU folded in, residual Adds and pooling quantized)
    instead of a float round trip around each convolution."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return None if any(n.op_type == "Conv" for n in graph.node) else ["MatMul"]


# Kept in fp32 inside an fp16 model: reductions and exponentials overflow or lose
# precision in 16 bits (LayerNorm's variance, Softmax's exp, GELU's erf).
FP16_KEEP = ["LayerNormalization", "SkipLayerNormalization", "EmbedLayerNormalization",
             "Softmax", "ReduceMean", "Pow", "Sqrt", "Erf"]


def fp16(src: Path, dst: Path) -> dict:
    import onnx
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(onnx.load(str(src)))
    model.convert_float_to_float16(keep_io_types=True, op_block_list=FP16_KEEP)
    model.save_model_to_file(str(dst))
    return {"mode": "fp16", "kept_fp32": FP16_KEEP, "io_types": "float32"}
