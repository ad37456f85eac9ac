"""The fp32 export rewritten for an NPU: fixed shapes, standard operators only, and what an
accelerator refuses replaced by what it takes.

Written by hand: onnxruntime's tools fix the shapes (`make_dim_param_fixed`) and fold the
constants (its basic level), but none of them turns the mask into an input or decomposes
what a provider refuses. Each rewrite is exact but one (GELU's erf, an approximation within
4e-4), and the export's parity gate judges the result as it judges every graph:

- **the mask as an input**: the nodes computed from `attention_mask` alone (Unsqueeze,
  Cast, Sub, Where, Expand: what NNAPI and CoreML refuse) are cut off and the additive bias
  they end in becomes the input `attention_bias` ([1, 1, 1, L]), which the runtime computes
  (fixed_shapes.py);
- **zero padding into the convolution**: a constant zero `Pad` feeding one `Conv`
  (TensorFlow's SAME padding, which EfficientNet-Lite's strided convolutions take as an
  explicit pad: CoreML refuses `Pad`) becomes that Conv's own `pads`. onnxruntime's fold
  does it (PadFusion) once a Conv's auto_pad VALID is written as no padding, which it is;
- **the first token by Slice**: a classifier's `hidden[:, 0]` (a Gather with a constant
  scalar index, which CoreML refuses) becomes Slice + Squeeze;
- **erf** (GELU; NNAPI refuses it): tanh(z * (a + b z^2)), the tanh form of GELU;
- **LayerNormalization** (NNAPI refuses it): ReduceMean, Sub, Mul, Sqrt, Div, Mul, Add;
- **the embedding lookups outside** (CoreML's MLProgram refuses Gather): the lookups become a
  model of their own, `embeddings.onnx`, which the runtime runs on the CPU first; the NPU
  graph takes the looked-up vectors as its inputs.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from ..bundle.runtime.fixed_shapes import BIAS_INPUT, FRONT, MASK_INPUT, MASKED
from ..errors import ModelError

log = logging.getLogger(__name__)

# erf(z) ~ tanh(z (a + b z^2)): GELU's tanh form (Hendrycks & Gimpel) written for erf, with
# x = sqrt(2) z: a = 2/sqrt(pi), b = a * 0.044715 * 2. Largest error 3.6e-4 on erf.
ERF_A = 2.0 / math.sqrt(math.pi)
ERF_B = ERF_A * 0.044715 * 2.0
REWRITES = ("mask_bias", "pad_into_conv", "first_token_slice", "erf_tanh",
            "layer_norm_decomposed", "embeddings_outside")


def rewrite(src: Path, dst: Path, dims: dict[str, list[int]], decompose: tuple[str, ...]
            ) -> dict:
    """src (optimum's fp32 export, dynamic axes) -> dst: every input fixed to `dims` (input
    name -> shape), constants folded, the mask an input, `decompose` (of "erf_tanh",
    "layer_norm_decomposed") applied. Returns what was done, for export.json."""
    import onnx

    folded = dst.with_suffix(".folded.onnx")
    model = onnx.load(str(src))
    _fix_shapes(model, dims)
    _valid_as_no_padding(model)
    pads = sum(n.op_type == "Pad" for n in model.graph.node)
    onnx.save(model, str(folded))
    _fold(folded, folded)
    model = onnx.shape_inference.infer_shapes(onnx.load(str(folded)))
    folded.unlink()
    done = {"shapes": {k: list(v) for k, v in dims.items()},
            "pad_into_conv": pads - sum(n.op_type == "Pad" for n in model.graph.node)}
    if any(i.name == MASK_INPUT for i in model.graph.input):
        done["mask_bias"] = _mask_to_bias(model)
    done["first_token_slice"] = _first_token_slice(model)
    if "erf_tanh" in decompose:
        done["erf_tanh"] = _erf_as_tanh(model)
    if "layer_norm_decomposed" in decompose:
        done["layer_norm_decomposed"] = _layer_norm_decomposed(model)
    if "embeddings_outside" in decompose:
        front = _embeddings_outside(model)
        if front is not None:
            _save(front, dst.with_name(FRONT))
            done["embeddings_outside"] = {"model": FRONT, "inputs": [
                i.name for i in front.graph.input], "outputs": [
                o.name for o in front.graph.output]}
    _prune_initializers(model)
    _save(model, dst)
    return done


def _save(model, dst: Path) -> None:
    import onnx

    del model.graph.value_info[:]  # (stale after the rewrites: inferred again)
    model = onnx.shape_inference.infer_shapes(model)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(dst))


def _prune_initializers(model) -> None:
    """Initializers no node reads any more (the mask's constants, say) dropped."""
    used = {i for n in model.graph.node for i in n.input}
    kept = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)


def _embeddings_outside(model):
    """The embedding lookups (Gather of a constant table by a graph input: what CoreML's
    MLProgram refuses) moved into a model of their own, run before the NPU graph; the
    NPU graph takes their outputs as inputs. None where the graph has no such lookup."""
    from onnx import helper

    graph = model.graph
    tables = {t.name: t for t in graph.initializer if len(t.dims) == 2}
    inputs = {i.name: i for i in graph.input}
    lookups = [n for n in graph.node if n.op_type == "Gather" and n.input[0] in tables
               and n.input[1] in inputs]
    if not lookups:
        return None
    outputs = [_value_info(model, n.output[0]) for n in lookups]
    front = helper.make_graph(
        lookups, "embeddings", [inputs[n] for n in dict.fromkeys(n.input[1] for n in lookups)],
        outputs, [tables[t] for t in dict.fromkeys(n.input[0] for n in lookups)])
    kept = [n for n in graph.node if n not in lookups]
    del graph.node[:]
    graph.node.extend(kept)
    used = {i for n in kept for i in n.input}
    rest = [i for i in graph.input if i.name in used]
    del graph.input[:]
    graph.input.extend(outputs + rest)
    made = helper.make_model(front, opset_imports=list(model.opset_import))
    made.ir_version = model.ir_version
    return made


def _value_info(model, name: str, required: bool = True):
    """The value's description (shape and type) in the inferred graph."""
    for v in [*model.graph.value_info, *model.graph.input, *model.graph.output]:
        if v.name == name:
            return v
    if required:
        raise ModelError(f"the exported graph has no shape for {name}; it cannot be cut there")
    return None


def _fix_shapes(model, dims: dict[str, list[int]]) -> None:
    """Each input's shape fixed (and every value sharing its symbolic dimensions), the
    outputs' inferred: onnxruntime's own tools."""
    from onnxruntime.tools.onnx_model_utils import fix_output_shapes, make_input_shape_fixed

    for name, shape in dims.items():
        try:
            make_input_shape_fixed(model.graph, name, [int(d) for d in shape])
        except ValueError as e:
            raise ModelError(f"input {name}: cannot be fixed to {shape} ({e})") from None
    fix_output_shapes(model)


def _fold(src: Path, dst: Path) -> None:
    """onnxruntime's basic optimizations (constant folding, no contrib operators) offline:
    with the shapes fixed, the Shape/Gather/Concat arithmetic of the graph becomes
    constants."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(dst)
    options.log_severity_level = 3  # (its notes on initializers it drops are no finding)
    # (MatMulAddFusion left to load time: onnxruntime 1.32 names the initializers it adds
    # the same way each time, and a model saved after it fails to load again, "Attempt to
    # replace the existing tensor")
    ort.InferenceSession(str(src), options, providers=["CPUExecutionProvider"],
                         disabled_optimizers=["MatMulAddFusion"])


def _consumers(graph) -> dict[str, list]:
    out: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            out.setdefault(name, []).append(node)
    return out


def _shape_of(model, name: str) -> list | None:
    v = _value_info(model, name, required=False)
    return None if v is None else [d.dim_value if d.HasField("dim_value") else None
                                   for d in v.type.tensor_type.shape.dim]


def _mask_to_bias(model) -> dict:
    """The nodes computed from the mask alone removed; the additive bias they end in made
    the graph input `attention_bias`."""
    from onnx import TensorProto, helper

    graph = model.graph
    constants = {t.name for t in graph.initializer} | {""}
    derived, dropped = {MASK_INPUT}, []
    for node in graph.node:  # (topological order)
        ins = [i for i in node.input if i not in constants]
        if ins and all(i in derived for i in ins):
            derived.update(node.output)
            dropped.append(node)
    consumers = _consumers(graph)
    kept = [n for n in graph.node if n not in dropped]
    frontier = sorted({i for n in kept for i in n.input if i in derived})
    users = [n for name in frontier for n in consumers.get(name, []) if n not in dropped]
    shape = _shape_of(model, frontier[0]) if len(frontier) == 1 else None
    if (len(frontier) != 1 or any(n.op_type != "Add" for n in users) or shape is None
            or len(shape) != 4 or shape[:2] != [1, 1] or not _padding_only(model, frontier[0])):
        raise ModelError("the attention mask does not reach the attention scores as one "
                         "additive padding bias in this architecture's export, so it cannot "
                         "become an input; export it for the CPU (--for cpu)")
    shape = [1, 1, 1, shape[3]]  # (one row per key, broadcast over the queries by the Add)
    for node in users:
        for k, name in enumerate(node.input):
            if name == frontier[0]:
                node.input[k] = BIAS_INPUT
    del graph.node[:]
    graph.node.extend(kept)
    inputs = [i for i in graph.input if i.name != MASK_INPUT]
    del graph.input[:]
    graph.input.extend(inputs + [helper.make_tensor_value_info(BIAS_INPUT, TensorProto.FLOAT,
                                                               shape)])
    return {"nodes_removed": len(dropped), "ops_removed": sorted({n.op_type for n in dropped}),
            "input": BIAS_INPUT, "shape": shape}


def _padding_only(model, bias: str) -> bool:
    """Whether the mask's subgraph computes a padding bias and nothing more: on sample masks,
    every query row alike, 0 at real tokens and at most MASKED at padding (a causal or other
    structured mask differs from row to row, and cannot be one [1, 1, 1, L] input)."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx.utils import Extractor

    part = Extractor(model).extract_model([MASK_INPUT], [bias])
    session = ort.InferenceSession(part.SerializeToString(), providers=["CPUExecutionProvider"])
    length = _shape_of(model, MASK_INPUT)[1]
    dtype = {onnx.TensorProto.INT64: np.int64, onnx.TensorProto.INT32: np.int32}.get(
        next(i for i in model.graph.input if i.name == MASK_INPUT).type.tensor_type.elem_type,
        np.float32)
    for real in sorted({1, length // 2, length}):
        mask = (np.arange(length) < real).astype(dtype)[None]
        value = session.run(None, {MASK_INPUT: mask})[0]
        rows = value.reshape(-1, value.shape[-1])
        if (not np.all(rows == rows[:1]) or np.any(rows[0][:real] != 0)
                or np.any(rows[0][real:] > MASKED)):
            return False
    return True


def _scalar(model, name: str):
    from onnx import numpy_helper

    for t in model.graph.initializer:
        if t.name == name:
            value = numpy_helper.to_array(t)
            return int(value) if value.ndim == 0 else None
    return None


def _replaced(graph, rewrite) -> int:
    """Each node replaced by the nodes `rewrite(node)` gives (None: kept as it is), in
    place; how many were replaced."""
    nodes, count = [], 0
    for node in graph.node:
        new = rewrite(node)
        count += new is not None
        nodes.extend([node] if new is None else new)
    del graph.node[:]
    graph.node.extend(nodes)
    return count


def _constant(graph, name: str, value, dtype) -> str:
    """An initializer `name` holding `value`; its name."""
    import numpy as np
    from onnx import numpy_helper

    graph.initializer.append(numpy_helper.from_array(np.array(value, dtype), name))
    return name


def _valid_as_no_padding(model) -> None:
    """Conv auto_pad VALID -> NOTSET with no pads (the same convolution: VALID pads nothing).
    torch exports padding="valid" so, and onnxruntime's PadFusion, which folds a zero Pad
    into the Conv it feeds, passes such a Conv by."""
    for node in model.graph.node:
        if node.op_type == "Conv" and any(a.name == "auto_pad" and a.s == b"VALID"
                                          for a in node.attribute):
            kept = [a for a in node.attribute if a.name != "auto_pad"]
            del node.attribute[:]
            node.attribute.extend(kept)


def _first_token_slice(model) -> int:
    """Gather(hidden, k, axis=1) with a constant scalar k -> Slice [k, k+1) + Squeeze."""
    import numpy as np
    from onnx import helper

    graph = model.graph

    def rewrite(node):
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        k = _scalar(model, node.input[1]) if node.op_type == "Gather" and axis == 1 else None
        if k is None:
            return None
        p = f"{node.name or node.output[0]}/first_token"
        starts, ends, axes = (_constant(graph, f"{p}/{name}", [v], np.int64)
                              for name, v in (("starts", k), ("ends", k + 1), ("axes", 1)))
        return [helper.make_node("Slice", [node.input[0], starts, ends, axes], [f"{p}/sliced"],
                                 name=f"{p}/Slice"),
                helper.make_node("Squeeze", [f"{p}/sliced", axes], list(node.output),
                                 name=f"{p}/Squeeze")]

    return _replaced(graph, rewrite)


def _erf_as_tanh(model) -> int:
    import numpy as np
    from onnx import helper

    graph = model.graph
    a = _constant(graph, "erf_tanh/a", ERF_A, np.float32)
    b = _constant(graph, "erf_tanh/b", ERF_B, np.float32)

    def rewrite(node):
        if node.op_type != "Erf":
            return None
        z, p = node.input[0], f"{node.name or node.output[0]}/erf_tanh"
        return [helper.make_node("Mul", [z, z], [f"{p}/z2"], name=f"{p}/z2"),
                helper.make_node("Mul", [f"{p}/z2", b], [f"{p}/bz2"], name=f"{p}/bz2"),
                helper.make_node("Add", [f"{p}/bz2", a], [f"{p}/poly"], name=f"{p}/poly"),
                helper.make_node("Mul", [z, f"{p}/poly"], [f"{p}/arg"], name=f"{p}/arg"),
                helper.make_node("Tanh", [f"{p}/arg"], list(node.output), name=f"{p}/tanh")]

    return _replaced(graph, rewrite)


def _layer_norm_decomposed(model) -> int:
    import numpy as np
    from onnx import helper

    graph = model.graph
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))

    def mean(src: str, out: str):
        if opset >= 18:  # (axes became an input in opset 18)
            return helper.make_node("ReduceMean", [src, _constant(graph, f"{out}/axes", [-1],
                                                                  np.int64)],
                                    [out], name=out, keepdims=1)
        return helper.make_node("ReduceMean", [src], [out], name=out, axes=[-1], keepdims=1)

    def rewrite(node):
        axis = next((a.i for a in node.attribute if a.name == "axis"), -1)
        rank = len(_shape_of(model, node.input[0]) or [])
        if node.op_type != "LayerNormalization" or axis not in (-1, rank - 1):
            return None
        eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
        x, p, out = node.input[0], f"{node.name or node.output[0]}/decomposed", node.output[0]
        scale = node.input[1] if len(node.input) > 1 else None
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        norm = f"{p}/norm" if scale else out
        nodes = [mean(x, f"{p}/mean"),
                 helper.make_node("Sub", [x, f"{p}/mean"], [f"{p}/d"], name=f"{p}/d"),
                 helper.make_node("Mul", [f"{p}/d", f"{p}/d"], [f"{p}/d2"], name=f"{p}/d2"),
                 mean(f"{p}/d2", f"{p}/var"),
                 helper.make_node("Add", [f"{p}/var", _constant(graph, f"{p}/eps", eps,
                                                                np.float32)],
                                  [f"{p}/ve"], name=f"{p}/ve"),
                 helper.make_node("Sqrt", [f"{p}/ve"], [f"{p}/sd"], name=f"{p}/sd"),
                 helper.make_node("Div", [f"{p}/d", f"{p}/sd"], [norm], name=f"{p}/div")]
        if scale:
            scaled = f"{p}/scaled" if bias else out
            nodes.append(helper.make_node("Mul", [norm, scale], [scaled], name=f"{p}/scale"))
            if bias:
                nodes.append(helper.make_node("Add", [scaled, bias], [out], name=f"{p}/bias"))
        return nodes

    return _replaced(graph, rewrite)
