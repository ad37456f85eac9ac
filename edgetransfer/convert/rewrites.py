"""Graph rewrites after export: onnxruntime's transformer fusions, and our first-token slice.

onnxruntime.transformers fuses attention, layer norm and GELU into single kernels; the
first-token slice is ours (onnxruntime has no such pass). A task names which rewrites are
safe for its head (Task.rewrites); each is checked by the parity gate after it runs.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

FIRST_TOKEN = "first_token_last_layer"  # the name a Task lists in `rewrites` to allow it

# config.model_type -> onnxruntime.transformers optimizer model type
FUSION_TYPES = {"bert": "bert", "roberta": "bert", "xlm-roberta": "bert", "electra": "bert",
                "distilbert": "bert", "mpnet": "bert", "camembert": "bert", "deberta-v2": "bert",
                "albert": "bert"}


def fuse(src: Path, dst: Path, config, *, attention: bool = True,
         embeddings: bool = True) -> dict:
    """Fuse attention, layer norm and GELU with onnxruntime's transformer optimizer.

    Returns the fused-operator counts. Models of a type the optimizer does not know are
    copied unfused (onnxruntime still applies its generic fusions when it loads them).
    `attention=False` keeps Q/K/V as MatMuls and `embeddings=False` keeps the embedding
    Gathers: what 4-bit weight-only blocks can quantize (the fused ops hold their weights
    in float, out of the 4-bit quantizer's reach).
    """
    import shutil

    kind = FUSION_TYPES.get(config.model_type)
    if kind is None:
        if getattr(config, "num_attention_heads", None) is None:  # not a transformer (a CNN)
            log.info("%s: no transformer fusions apply (the exporter folds BatchNorm into the "
                     "convolutions; onnxruntime fuses the rest as it loads)", config.model_type)
        else:
            log.warning("no transformer fusions for model type %s; exporting unfused",
                        config.model_type)
        shutil.copyfile(src, dst)
        return {}
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions(kind)
    options.enable_attention = attention
    options.enable_embed_layer_norm = embeddings
    optimized = optimize_model(str(src), model_type=kind, num_heads=config.num_attention_heads,
                               hidden_size=config.hidden_size, opt_level=1,
                               optimization_options=options)
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
