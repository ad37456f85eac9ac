"""What each accelerator takes: the profiles of `export --for`, stated once.

`cpu` is today's export (fused contrib operators, dynamic shapes). The NPU profiles give a
fixed-shape graph of standard operators (npu_graph.py), quantized the way the accelerator
computes (npu_quantize.py), with its coverage checked (measure/coverage.py):

- **nnapi** (Android): NNAPI refuses Erf and LayerNormalization (onnxruntime's own list of
  what its NNAPI provider takes, nnapi_supported_ops.md), so both are decomposed; its
  quantized operators are asymmetric uint8 with one scale per tensor (NNAPI's
  TENSOR_QUANT8_ASYMM; per-channel scales are for convolutions only), hence u8/u8 QDQ.
  int8 only: NNAPI's NPUs and DSPs run quantized models, and its float graph holds GELU in
  tanh form, ~1e-2 from the PyTorch logits of a 3-layer student, which verify's fp32
  tolerance (1e-4) would refuse downstream.
- **coreml** (iOS, macOS; the MLProgram format): it takes Erf and LayerNormalization whole,
  but neither of onnxruntime's CoreML lists holds QuantizeLinear or DequantizeLinear, so a
  QDQ graph would be cut at every quantized tensor: the graph stays float (CoreML runs it in
  fp16 on the Neural Engine itself), and fp16 weights (--quantize fp16) halve the file.
  MLProgram refuses Gather, the embedding lookup: it becomes a model of its own
  (embeddings.onnx) that the runtime runs on the CPU before the CoreML graph, which also
  keeps the vocabulary-sized table (CoreML refuses a dimension over 16,384) out of CoreML.
- **qnn** (Snapdragon HTP): 16-bit activations with 8-bit weights by default (the probe
  that drafted this profile: parity 0.0014 on a BERT, against 0.057 with 8-bit ones),
  through onnxruntime's QNN quantization recipe (qnn_preprocess_model, get_qnn_qdq_config).
"""

from __future__ import annotations

from dataclasses import dataclass

CPU = "cpu"


@dataclass(frozen=True)
class Profile:
    name: str
    provider: str  # the onnxruntime execution provider the bundle tries first
    device: str  # the devices it is for, as the README's table says
    # 17: the oldest opset with LayerNormalization, which CoreML takes whole; the mobile
    # providers' builders check operator versions, and an older version has been supported
    # longer. (QNN's 16-bit QDQ needs 21: its quantizer moves the graph there itself.)
    opset: int
    checker: str | None  # onnxruntime's list of the ops the provider takes (usability checker)
    max_rank: int  # the highest tensor rank the provider takes (the checker's CoreML limit: 5)
    decompose: tuple[str, ...]  # npu_graph's rewrites of what the provider refuses
    quantize: tuple[str, ...]  # the --quantize modes it takes; the first is its default
    activation_bits: int = 8  # QDQ activations (qnn: 16 or 8)
    # the tolerance (measure/parity.py's TOLERANCES) the rewritten float graph is held to
    # against PyTorch before quantization: fp32, unless a rewrite approximates (NNAPI's
    # tanh-form GELU moves a 3-layer student's logits by ~1e-2: fp16's error, which NNAPI
    # itself takes when it runs a float model with relaxed fp16 computation)
    graph_precision: str = "fp32"
    # the arithmetic the accelerator runs a float graph in (QNN's HTP: fp16, its default
    # enable_htp_fp16_precision), so the tolerance its simulator's run of one is held to
    float_runs_as: str = "fp32"

    def held_to(self, precision: str) -> str:
        """The tolerance the accelerator's own run of a model of `precision` is held to."""
        return self.float_runs_as if precision == "fp32" else precision
    weight_type: str = "QUInt8"  # every quantized weight but per_channel_ops': per tensor
    # the op types whose weights get one scale per output channel, signed and symmetric.
    # Convolutions everywhere (NNAPI's TENSOR_QUANT8_SYMM_PER_CHANNEL is for them only): a
    # depthwise convolution's channels differ in range by orders of magnitude, and one scale
    # per tensor flattens the small ones (the Fashion-MNIST Lite0 student per tensor: 27%
    # label agreement with its fp32 model). QNN's HTP also takes them for FullyConnected
    # (its Gemm; 16-bit weights it refuses): the SST-2 3-layer student's agreement went from
    # 0.983 to 0.997. CoreML's profile stays float.
    per_channel_ops: tuple[str, ...] = ("Conv",)


PROFILES: dict[str, Profile] = {
    "nnapi": Profile("nnapi", "NnapiExecutionProvider", "Android phones and boards (NNAPI)",
                     17, "nnapi_supported_ops.md", 999, ("erf_tanh", "layer_norm_decomposed"),
                     ("int8-static",), graph_precision="fp16"),
    "coreml": Profile("coreml", "CoreMLExecutionProvider", "iPhone, iPad, Mac (CoreML "
                      "MLProgram, Neural Engine)", 17, "coreml_supported_mlprogram_ops.md", 5,
                      ("embeddings_outside",), ("none", "fp16")),
    "qnn": Profile("qnn", "QNNExecutionProvider", "Snapdragon SoCs (QNN HTP)", 17, None, 999,
                   (), ("int8-static", "none"), activation_bits=16, float_runs_as="fp16",
                   per_channel_ops=("Conv", "Gemm")),
}
CHOICES = (CPU, *PROFILES)

# QNN's HTP architecture and SoC the context binary is compiled for. An invalid htp_arch is
# accepted without a word by onnxruntime-qnn 2.7, so both are named: v73 and SoC 60 are the
# Snapdragon 8 Gen 2's (export --qnn-htp-arch / --qnn-soc-model to change them).
QNN_HTP_ARCH = 73
QNN_SOC_MODEL = 60


def profile(name: str) -> Profile | None:
    """The profile of `export --for NAME` (None: the CPU, today's export)."""
    return PROFILES.get(name)
