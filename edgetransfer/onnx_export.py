"""PyTorch checkpoint -> ONNX through optimum, then onnxruntime's transformer fusions.

optimum does the export (dynamic batch and sequence axes, the right inputs per
architecture); onnxruntime.transformers fuses attention, layer norm and GELU into single
kernels. Written here: only the checks around them and the choice of what to fuse.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .errors import ConfigError, ModelError

log = logging.getLogger(__name__)

# Opset 18: the minimum optimum-onnx 0.1 recommends for BERT-family exports (below it the
# exporter warns the graph may be suboptimal). onnxruntime has run opset 18 since 1.14
# (2023), on its full, minimal and mobile builds alike.
DEFAULT_OPSET = 18
MIN_OPSET = 14  # below 14 the exporter cannot express these models' ops (e.g. Trilu)

# config.model_type -> onnxruntime.transformers optimizer model type
FUSION_TYPES = {"bert": "bert", "roberta": "bert", "xlm-roberta": "bert", "electra": "bert",
                "distilbert": "bert", "mpnet": "bert", "camembert": "bert", "deberta-v2": "bert",
                "albert": "bert"}


def export(model_dir: Path, out_dir: Path, opset: int, trust_remote_code: bool = False) -> Path:
    """Export a sequence classifier to `out_dir/model.onnx` and check it with onnx.checker."""
    if opset < MIN_OPSET:
        raise ConfigError(f"--opset {opset}: too low for transformer exports; use {MIN_OPSET} "
                          f"or more (default {DEFAULT_OPSET})")
    import onnx
    from optimum.exporters.onnx import main_export

    try:
        main_export(str(model_dir), str(out_dir), task="text-classification", opset=opset,
                    do_validation=False,  # parity is checked by us, as a gate, on other shapes
                    trust_remote_code=trust_remote_code, local_files_only=True)
    except ValueError as e:
        text = " ".join(str(e).split())
        if "not supported" in text or "Unrecognized" in text or "custom_onnx_configs" in text:
            raise ModelError(f"--model {model_dir}: this architecture cannot be exported to ONNX"
                             f" by optimum ({text[:200]})") from e
        if "opset" in text.lower():
            raise ConfigError(f"--opset {opset}: {text[:200]}") from e
        raise
    path = out_dir / "model.onnx"
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as e:
        raise ModelError(f"{path}: the exported graph fails onnx.checker: {str(e)[:200]}") from e
    return path


def fuse(src: Path, dst: Path, config) -> dict:
    """Fuse attention, layer norm and GELU with onnxruntime's transformer optimizer.

    Returns the fused-operator counts. Models of a type the optimizer does not know are
    copied unfused (onnxruntime still applies its generic fusions when it loads them).
    """
    import shutil

    kind = FUSION_TYPES.get(config.model_type)
    if kind is None:
        log.warning("no transformer fusions for model type %s; exporting unfused",
                    config.model_type)
        shutil.copyfile(src, dst)
        return {}
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(str(src), model_type=kind, num_heads=config.num_attention_heads,
                               hidden_size=config.hidden_size, opt_level=1)
    optimized.save_model_to_file(str(dst))
    stats = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
    log.info("fused: %s", ", ".join(f"{k} {v}" for k, v in stats.items()) or "nothing")
    return stats
