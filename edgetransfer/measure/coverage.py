"""How much of a model an accelerator will run, before anything is shipped.

NNAPI and CoreML: onnxruntime's own mobile usability checker (onnxruntime.tools.
mobile_helpers.usability_checker), which partitions the graph as the provider would, from
onnxruntime's list of the operators it takes, on the graph as onnxruntime loads it (basic
optimizations applied first, as the checker's own command does). Reported: the nodes it
takes, the partitions, the largest partition's share of the nodes (one partition holding
nearly every node is what runs well: each cut is a copy between the NPU and the CPU), and
the operators it refuses. QNN: measure/qnn.py compiles the graph instead.

Written here: only the reading of the checker's PartitioningInfo into a record.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

CHECKER = "onnxruntime usability_checker"


def mobile(path: Path, checker: str, max_rank: int, provider: str) -> dict:
    """The checker's partitioning of the model at `path` for one provider's op list."""
    import onnx
    from onnxruntime.tools.mobile_helpers import usability_checker as u
    from onnxruntime.tools.onnx_model_utils import optimize_model

    with tempfile.TemporaryDirectory() as tmp:
        loaded = Path(tmp) / "loaded.onnx"
        optimize_model(Path(path), loaded)  # (basic level: what a session does on load)
        model = onnx.shape_inference.infer_shapes(onnx.load(str(loaded)))
    ops = Path(u.__file__).with_name(checker)
    info = u._check_ep_partitioning(model, ops, True, max_rank)
    return summary(info, provider)


def summary(info, provider: str) -> dict:
    """A PartitioningInfo as export.json and the bundle's manifest record it."""
    largest = max((len(g) for g in info.supported_groups), default=0)
    nodes = max(info.num_nodes, 1)
    return {"checker": CHECKER, "provider": provider, "nodes": info.num_nodes,
            "supported_nodes": info.num_supported_nodes,
            "partitions": info.num_partitions,
            "partition_sizes": [len(g) for g in info.supported_groups],
            "largest_partition_share": round(largest / nodes, 4),
            "supported_share": round(info.num_supported_nodes / nodes, 4),
            "refused_ops": sorted(info.unsupported_ops),
            "refused_for_dynamic_shapes": info.nodes_unsupported_due_to_dynamic_input}


def share(record: dict) -> float:
    """The figure --min-coverage is held to: the largest partition's share of the nodes
    (QNN: the nodes on HTP)."""
    return float(record.get("largest_partition_share", record.get("htp_share", 0.0)))


def lines(record: dict) -> list[str]:
    """The coverage table's rows, for the terminal."""
    if record.get("checked") is False:
        return [f"{record['provider']}: not checked ({record['why']})"]
    if "htp_nodes" in record:
        return [f"{record['provider']}: {record['htp_nodes']}/{record['nodes']} nodes on HTP "
                f"({record['htp_share']:.1%}), CPU fallback "
                f"{'disabled' if not record.get('cpu_fallback') else 'allowed'}"
                + (f", context binary {record['context_bytes'] / 2**20:.1f} MB"
                   if record.get("context_bytes") else "")]
    out = [f"{record['provider']}: {record['supported_nodes']}/{record['nodes']} nodes "
           f"({record['supported_share']:.1%}) in {record['partitions']} partition(s); the "
           f"largest holds {record['largest_partition_share']:.1%}"]
    if record["refused_ops"]:
        out.append(f"  refused: {', '.join(record['refused_ops'])}")
    return out
