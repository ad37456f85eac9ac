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

from .. import platforms
from ..errors import ConfigError

log = logging.getLogger(__name__)

# The quantized formats a model is built in; the first is the int8 a task's models get by
# default (Task.quantize_modes: transformers take dynamic int8 without calibration).
QUANTIZED = ("int8-dynamic", "int8-static", "int4", "fp16")
FORMATS = ("none", *QUANTIZED)  # none: fp32 (fused)
MODES = (*FORMATS, "auto")  # every mode export builds by (auto: the fastest that holds)
# export --quantize's choices, as --help lists them: "int8" is the task's own int8
CHOICES = ("none", "int8", *QUANTIZED, "auto")
# The modes that calibrate activation ranges on data (--calibration-data); "int8" and
# "auto" may come to one of them (a CNN's int8 is static; auto tries static too).
CALIBRATED = ("int8-static",)
# The CPU formats from the fastest at batch 1 (bench/RESULTS.md "Search": int8-dynamic the
# fastest at every depth, then int8-static; int4's unpacking 3.3x slower than int8): the
# order `auto` tries its candidates in and `search` ranks its formats by.
FASTEST_FIRST = ("int8-dynamic", "int8-static", "int4")


def calibrates(mode: str) -> bool:
    """Whether a model built in `mode` is calibrated on --calibration-data."""
    return mode in CALIBRATED


def may_calibrate(choice: str) -> bool:
    """Whether --quantize `choice` may read --calibration-data (int8: a static task's;
    auto: its static candidate)."""
    return calibrates(choice) or choice in ("int8", "auto")


def precision_of(mode: str | None) -> str | None:
    """The precision a --quantize mode gives: the one rule export, verify, runners and
    package read (none -> fp32; fp16 -> fp16; every int8 mode -> int8; int4 -> int4)."""
    if mode is None:
        return None
    return {"none": "fp32", "fp16": "fp16"}.get(mode, "int8" if mode.startswith("int8")
                                                 else mode)


# 4-bit weight-only blocks: 32 weights share one fp32 scale (5 bits a weight in all). 32 is
# the finest block onnxruntime's CPU kernels take: the smallest error where a small model
# has no weights to spare (128, its default, is tuned for LLMs' wide rows).
INT4_BLOCK = 32
# An embedding row (the hidden size, 384 for MiniLM) in blocks of 128: the table is most of a
# small model's bytes and its rows go straight into a layer norm, which evens out the coarser
# scale; 4.25 bits a weight instead of 5 (bench/RESULTS.md measures both).
INT4_EMBEDDING_BLOCK = 128
# MatMulNBits accuracy level 4: activations in int8 per block, the VNNI/dot-product kernels
# (level 0-1 unpacks the weights to fp32 for each call: slower than int8 on these CPUs)
INT4_ACCURACY_LEVEL = 4


def int4(src: Path, dst: Path, op_types: tuple[str, ...] = ("MatMul", "Gather"),
         exclude: list[str] | None = None) -> dict:
    """4-bit weight-only blocks through onnxruntime's MatMulNBitsQuantizer: constant-weight
    MatMuls -> MatMulNBits, embedding-table Gathers -> GatherBlockQuantized (rows quantized
    along the hidden axis). Activations stay float; anything else is left as it is."""
    import numpy as np
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    model = onnx.load(str(src))
    # one pass per op type: each has its block size (an embedding block no wider than the
    # rows: a narrower model's rows would be padded to the block; 16 is the kernels' least)
    consts = {t.name: t.dims for t in model.graph.initializer}
    widths = [consts[n.input[0]][-1] for n in model.graph.node
              if n.op_type == "Gather" and n.input[0] in consts and len(consts[n.input[0]]) == 2]
    blocks = {"Gather": max(16, min([INT4_EMBEDDING_BLOCK]
                                    + [1 << (w.bit_length() - 1) for w in widths])),
              "MatMul": INT4_BLOCK}
    for op in [op for op in blocks if op in op_types]:
        config = DefaultWeightOnlyQuantConfig(
            block_size=blocks[op], is_symmetric=True, accuracy_level=INT4_ACCURACY_LEVEL,
            op_types_to_quantize=(op,), quant_axes=(("MatMul", 0), ("Gather", 1)))
        # (an all-zero block divides 0 by a 0 scale; onnxruntime then stores 0, as it should)
        with _quiet_root_logger(), np.errstate(invalid="ignore", divide="ignore"):
            quantizer = MatMulNBitsQuantizer(model, algo_config=config,
                                             nodes_to_exclude=list(exclude or []))
            quantizer.process()
        model = quantizer.model.model
    onnx.save(model, str(dst))
    done = [n.op_type for n in model.graph.node]
    return {"bits": 4, "block_size": blocks,
            "symmetric": True,
            "accuracy_level": INT4_ACCURACY_LEVEL, "op_types": list(op_types),
            "MatMulNBits": done.count("MatMulNBits"),
            "GatherBlockQuantized": done.count("GatherBlockQuantized")}
CALIBRATION = ("minmax", "entropy", "percentile")


@dataclass(frozen=True)
class Target:
    """What a CPU family wants from an int8 model."""

    name: str
    per_channel: bool  # one scale per output channel: more accurate, a little slower
    reduce_range: bool  # 7-bit weights: avoids u8s8 saturation on CPUs without VNNI
    activation_type: str  # static QDQ activations: QUInt8 (x86 u8s8 kernels) or QInt8
    platform: str  # the device platform of this family (platforms.PLATFORMS)
    cpu_flag: str  # the /proc/cpuinfo flag of the instructions the tuning assumes
    ort_platform: str  # the .ort converter's --target_platform: its fixed optimizations


TARGETS = {
    # AVX2 without VNNI multiplies u8 x s8 into saturating 16-bit sums: 7-bit weights keep
    # them exact (onnxruntime's quantization guide).
    "x86-avx2": Target("x86-avx2", per_channel=False, reduce_range=True,
                       activation_type="QUInt8", platform="linux-x86_64", cpu_flag="avx2",
                       ort_platform="amd64"),
    # VNNI accumulates in 32 bits: full 8-bit range; per-channel as optimum's preset does.
    "x86-avx512-vnni": Target("x86-avx512-vnni", per_channel=True, reduce_range=False,
                              activation_type="QUInt8", platform="linux-x86_64",
                              cpu_flag="avx512_vnni", ort_platform="amd64"),
    # ARM's dot-product kernels are signed x signed.
    "arm64": Target("arm64", per_channel=True, reduce_range=False, activation_type="QInt8",
                    platform="linux-aarch64", cpu_flag="asimd", ort_platform="arm"),
}
DEFAULT_TARGET = "x86-avx512-vnni"  # export --target's default


def for_platform(platform: str) -> list[str]:
    """The CPU families of a device platform, the default one first."""
    return sorted((n for n, t in TARGETS.items() if t.platform == platform),
                  key=lambda n: n != DEFAULT_TARGET)


def host_mismatch(name: str, machine: dict) -> str | None:
    """Why latency measured on this host does not speak for the target's devices, or None.

    The model itself is portable (onnxruntime picks kernels at run time); what differs is
    the speed, and on AVX2 without VNNI the u8 x s8 products that can saturate. A host that
    reports no flags (no /proc/cpuinfo) is not judged.
    """
    tgt = TARGETS[name]
    if platforms.of_machine(str(machine.get("arch"))) != tgt.platform:
        return f"this host is {machine.get('arch')}, the target {name}"
    if machine.get("isa") and tgt.cpu_flag not in machine["isa"]:
        return (f"this CPU lacks {tgt.cpu_flag}, which --target {name} is tuned for; "
                f"onnxruntime runs it on the kernels this CPU has ({', '.join(machine['isa'])})")
    return None


def target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise ConfigError(f"--target {name}: use one of {', '.join(TARGETS)}") from None


def dynamic(src: Path, dst: Path, tgt: Target, per_channel: bool | None = None,
            exclude: list[str] | None = None, op_types: list[str] | None = None) -> dict:
    """`op_types`: quantize only these (None: every op the dynamic quantizer knows)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    settings = {"mode": "int8-dynamic", "target": tgt.name,
                "per_channel": tgt.per_channel if per_channel is None else per_channel,
                "reduce_range": tgt.reduce_range, "weight_type": "QInt8",
                "nodes_excluded": list(exclude or [])}
    if op_types:
        settings["op_types"] = list(op_types)
    with _quiet_root_logger():
        quantize_dynamic(
            str(src), str(dst), weight_type=QuantType.QInt8, per_channel=settings["per_channel"],
            reduce_range=tgt.reduce_range, nodes_to_exclude=exclude or None,
            op_types_to_quantize=op_types or None,
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
    if not feeds:
        raise ConfigError("--quantize int8-static needs --calibration-data with some texts")
    settings = {"mode": "int8-static", "format": "QDQ", "target": tgt.name,
                "calibration_method": method, "calibration_examples": len(feeds),
                "per_channel": tgt.per_channel if per_channel is None else per_channel,
                "reduce_range": tgt.reduce_range, "activation_type": tgt.activation_type,
                "weight_type": "QInt8", "nodes_excluded": list(exclude or [])}
    ops = static_ops(src)
    settings["op_types"] = ops or "all onnxruntime quantizes"
    qdq_static(src, dst, feeds, activation_type=tgt.activation_type, weight_type="QInt8",
               per_channel=settings["per_channel"], reduce_range=tgt.reduce_range,
               method=method, ops=ops, exclude=exclude)
    return settings


def calibration_reader(feeds: list[dict]):
    """onnxruntime's CalibrationDataReader over `feeds` (one dict of numpy inputs each)."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(feeds)

        def get_next(self):
            return next(self.it, None)

    return Reader()


def calibrate_method(name: str):
    """onnxruntime's CalibrationMethod for --calibration-method NAME."""
    from onnxruntime.quantization import CalibrationMethod

    if name not in CALIBRATION:
        raise ConfigError(f"--calibration-method {name}: use one of {', '.join(CALIBRATION)}")
    return {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile}[name]


@contextlib.contextmanager
def in_scratch_dir():
    """Run onnxruntime's static quantizers in a temporary working directory: they drop
    scratch files (sym_shape_infer_temp.onnx, *.data) into the working directory and leave
    them there when they fail (seen with symbolic shape inference on). Yields the folder."""
    import os
    import tempfile

    here = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            yield Path(tmp)
        finally:
            os.chdir(here)


def qdq_static(src: Path, dst: Path, feeds: list[dict], *, activation_type: str,
               weight_type: str, per_channel: bool, reduce_range: bool, method: str,
               ops: list[str] | None, exclude: list[str] | None = None,
               overrides: dict | None = None) -> None:
    """src -> dst in QDQ through onnxruntime's quantize_static, calibrated on `feeds`
    (ONNX shape inference only: the symbolic pass cannot resolve these dynamic axes);
    `overrides`: its TensorQuantOverrides (a tensor's own type, axis, symmetry)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quant_pre_process, quantize_static

    calibrate = calibrate_method(method)
    src, dst = Path(src).resolve(), Path(dst).resolve()
    with in_scratch_dir() as tmp:
        prepared = tmp / "prepared.onnx"
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared), str(dst), calibration_reader(feeds), quant_format=QuantFormat.QDQ,
            per_channel=per_channel, reduce_range=reduce_range,
            activation_type=getattr(QuantType, activation_type),
            weight_type=getattr(QuantType, weight_type), nodes_to_exclude=exclude or None,
            calibrate_method=calibrate, op_types_to_quantize=ops,
            extra_options={"ActivationSymmetric": activation_type == "QInt8",
                           "TensorQuantOverrides": overrides or {}})


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
