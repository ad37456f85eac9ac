"""The compute floor of a BERT-family classifier at batch 1: FLOPs per inference.

Counted two ways, which must agree: torch's own counter (`torch.utils.flop_counter.
FlopCounterMode`, matmul-class ops, 2 FLOPs per multiply-add) on the PyTorch checkpoint,
and the textbook count from its config. Then the saving of edgetransfer's export pass
`first_token_last_layer` (edgetransfer/convert/onnx_export.py) is taken off: after the last layer's
attention only the first token's row goes on, so that layer's output projection and
feed-forward block run for 1 token instead of L. Element-wise work (layer norm, GELU,
softmax, embedding lookups) is left out of both counts: a few percent at these sizes.
"""

from __future__ import annotations

from pathlib import Path


def analytic(config, length: int, first_token_last_layer: bool = False) -> dict:
    """FLOPs (2 per multiply-add) of one length-`length` text, by part."""
    d, f, n = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    L = length
    per_layer = {
        "qkv_projections": 2 * 3 * L * d * d,
        "attention_scores_and_mix": 2 * 2 * L * L * d,
        "output_projection": 2 * L * d * d,
        "feed_forward": 2 * 2 * L * d * f,
    }
    parts = {k: v * n for k, v in per_layer.items()}
    parts["pooler_and_classifier"] = 2 * (d * d + d * config.num_labels)
    total = sum(parts.values())
    trimmed = 0
    if first_token_last_layer:  # the last layer's output projection and FFN: 1 row, not L
        trimmed = (L - 1) * 2 * (d * d + 2 * d * f)
    return {"parts": parts, "total": total, "trimmed": trimmed, "total_after_trim": total - trimmed}


def counted(model_dir: Path, length: int) -> int:
    """torch's FlopCounterMode over one forward pass of a length-`length` batch of 1."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import AutoModelForSequenceClassification

    # eager attention: the counter has no formula for the CPU SDPA kernel and would skip it
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, attn_implementation="eager").eval()
    ids = torch.full((1, length), 1000, dtype=torch.long)
    ids[0, 0], ids[0, -1] = 101, 102
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(input_ids=ids, attention_mask=torch.ones_like(ids))
    return int(counter.get_total_flops())


def mean_tokens(model_dir: Path, texts: list[str], max_length: int = 128) -> float:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    lengths = [len(x) for x in tok(texts, truncation=True, max_length=max_length)["input_ids"]]
    return sum(lengths) / len(lengths)


# int8 multiply-adds per cycle per core, the nominal peak of the widest int8 dot-product
# instruction (two vector ports issuing it every cycle): AVX-512 VNNI vpdpbusd 2 x 64,
# AVX-VNNI (256-bit) 2 x 32, AVX2 vpmaddubsw 2 x 32 (which also needs a vpmaddwd per use:
# onnxruntime's AVX2 u8s8 kernels reach half of it at best). Nominal: real clocks vary.
INT8_MACS_PER_CYCLE = (("avx512_vnni", 128), ("avx_vnni", 64), ("avx2", 64))


def int8_peak(isa: list[str], mhz: float | None) -> dict | None:
    """Nominal int8 GOPS of one core (2 ops per multiply-add), or None when unknown."""
    for flag, macs in INT8_MACS_PER_CYCLE:
        if flag in isa and mhz:
            return {"isa": flag, "macs_per_cycle": macs, "mhz": round(mhz),
                    "gops": round(2 * macs * mhz / 1000, 1)}
    return None


def cpu_mhz() -> float | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1])
    except (OSError, ValueError):
        pass
    return None


def floor(student_dir: Path, texts: list[str], int8_p50_ms: float, isa: list[str]) -> dict:
    """GFLOP per inference of the student at the data's mean length, the measured int8
    latency against it, and the fraction of a nominal one-core int8 peak."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(student_dir)
    mean = mean_tokens(student_dir, texts)
    length = round(mean)
    a = analytic(config, length, first_token_last_layer=True)
    torch_flops = counted(student_dir, length)
    gflop = (torch_flops - a["trimmed"]) / 1e9
    achieved = gflop / (int8_p50_ms / 1000)
    peak = int8_peak(isa, cpu_mhz())
    return {
        "mean_tokens": round(mean, 2), "length": length, "layers": config.num_hidden_layers,
        "torch_counter_gflop": round(torch_flops / 1e9, 4),
        "analytic_gflop": round(a["total"] / 1e9, 4),
        "counter_vs_analytic": round(torch_flops / a["total"], 4),
        "first_token_trim_gflop": round(a["trimmed"] / 1e9, 4),
        "gflop_per_inference": round(gflop, 4),
        "int8_p50_ms": int8_p50_ms,
        "achieved_gops": round(achieved, 1),
        "nominal_peak": peak,
        "fraction_of_peak": round(achieved / peak["gops"], 3) if peak else None,
    }
