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
    check_opset(opset)
    import onnx
    from optimum.exporters.onnx import main_export

    import warnings

    try:
        with warnings.catch_warnings():
            # the tracer's notes on constants in the attention mask: parity is what judges
            if not log.isEnabledFor(logging.DEBUG):
                warnings.filterwarnings("ignore", message=".*results are registered as "
                                        "constants in the trace")
            main_export(str(model_dir), str(out_dir), task="text-classification", opset=opset,
                        do_validation=False,  # parity is checked by us, on other shapes
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


def check_opset(opset: int) -> None:
    """Refuse, before any work, an opset too old for these models' ops or too new to run."""
    if opset < MIN_OPSET:
        raise ConfigError(f"--opset {opset}: too low for transformer exports (their attention "
                          f"masks need Trilu, opset 14); use {MIN_OPSET} or more (default "
                          f"{DEFAULT_OPSET})")
    most = max_opset()
    if opset > most:
        raise ConfigError(f"--opset {opset}: newer than the installed onnx, torch exporter and "
                          f"onnxruntime all support (at most {most}); use {most} or less "
                          f"(default {DEFAULT_OPSET})")


def max_opset() -> int:
    """The newest opset that the onnx package, torch's exporter and onnxruntime all know."""
    import onnx

    from .onnx_check import _probe

    most = onnx.defs.onnx_opset_version()
    try:
        from torch.onnx._constants import ONNX_MAX_OPSET

        most = min(most, ONNX_MAX_OPSET)
    except ImportError:  # (a private constant; onnx's and onnxruntime's limits still hold)
        pass
    while most > MIN_OPSET and _probe(8, most) is not None:
        most -= 1
    return most


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


# Classifiers of these model types read only the first token ([CLS] / <s>) of the last
# layer's output: BERT's pooler, RoBERTa's and ELECTRA's heads, DistilBERT's pre_classifier.
FIRST_TOKEN_HEADS = {"bert", "roberta", "xlm-roberta", "electra", "distilbert", "camembert",
                     "mpnet"}


def first_token_last_layer(src: Path, dst: Path, config) -> bool:
    """Make the last layer compute its feed-forward part for the first token only.

    The head reads one token of the last layer; attention still looks at every token, but
    the attention output projection, both layer norms and the feed-forward block after it
    are per-token, so only the first token's row is needed. Slicing right after the last
    fused Attention node removes (n-1)/n of that work: about a fifth of a 3-layer model at
    batch 1. onnxruntime has no such pass; written here. Exact: the parity gate checks it.
    Returns False (and copies) when the model's head is not known to read the first token.
    """
    import shutil

    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    attention = [n for n in model.graph.node if n.op_type == "Attention"]
    if config.model_type not in FIRST_TOKEN_HEADS or not attention:
        shutil.copyfile(src, dst)
        return False
    last = attention[-1]
    nodes = list(model.graph.node)
    after = nodes[nodes.index(last) + 1:]
    layer_in, att_out = last.input[0], last.output[0]
    for name, value in (("et_first_starts", 0), ("et_first_ends", 1), ("et_first_axes", 1)):
        model.graph.initializer.append(numpy_helper.from_array(np.array([value], np.int64), name))
    sliced = {}
    for tensor in (att_out, layer_in):
        sliced[tensor] = f"{tensor}_first_token"
    for node in after:
        for i, name in enumerate(node.input):
            if name in sliced:
                node.input[i] = sliced[name]
    slices = [helper.make_node("Slice", [t, "et_first_starts", "et_first_ends", "et_first_axes"],
                               [s], name=f"FirstToken_{i}")
              for i, (t, s) in enumerate(sliced.items())]
    index = nodes.index(last) + 1
    for offset, node in enumerate(slices):
        model.graph.node.insert(index + offset, node)
    onnx.save(model, str(dst))
    return True
