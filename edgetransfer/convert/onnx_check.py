"""Check an ONNX file before onnxruntime loads it: readable, not newer than the runtime, and
reading no external data from outside its own folder.

onnxruntime refuses most of these itself, but with a C++ source location first and the
reason at the end of a long line; here each one is a one-line error naming the file and the
fix. The checks read the graph without its external data (a few ms, even for large models).
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

from ..artifacts import LFS_POINTER, is_lfs_pointer
from ..errors import EnvironmentProblem, ModelError

DEFAULT_DOMAINS = ("", "ai.onnx")


def check(path) -> None:
    """Raise ModelError (a broken or hostile file) or EnvironmentProblem (a runtime too old)."""
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        return  # .ort (flatbuffers) and in-memory models are onnxruntime's to judge
    if not path.is_file():
        raise ModelError(f"{path}: no such ONNX file")
    size = path.stat().st_size
    if size == 0:
        raise ModelError(f"{path}: is empty (0 bytes); export the model again")
    with path.open("rb") as f:
        head = f.read(len(LFS_POINTER))
    if is_lfs_pointer(head):
        raise ModelError(f"{path}: is a git-LFS pointer, not a model; run `git lfs pull`")
    model = _load(path, size)
    _check_versions(path, model)
    _check_external_data(path, model)
    import onnx

    opset = max((o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS), default=0)
    if model.ir_version <= onnx.IR_VERSION and opset <= onnx.defs.onnx_opset_version():
        _check_graph(path)  # (a model newer than the onnx package is onnxruntime's to judge)


def _load(path: Path, size: int):
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001  (protobuf's DecodeError, and onnx's own errors)
        raise ModelError(f"{path}: is not a readable ONNX model ({_first(e)}); the file is "
                         f"truncated or corrupt ({size} bytes): export it again") from None
    if not model.graph.node or not model.graph.output:
        raise ModelError(f"{path}: holds no graph (no nodes or outputs); the file is truncated "
                         f"or not an ONNX model: export it again")
    return model


def _check_graph(path: Path) -> None:
    """onnx.checker, given the path so external data resolves against the model's folder."""
    import onnx

    try:
        onnx.checker.check_model(str(path))
    except Exception as e:  # noqa: BLE001
        raise ModelError(f"{path}: fails onnx.checker ({_first(e)}); the file is truncated or "
                         f"corrupt: export it again") from None


def _check_versions(path: Path, model) -> None:
    import onnxruntime as ort

    opset = max((o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS),
                default=None)
    error = probe(model.ir_version, opset)
    if error is None:
        return
    upgrade = "upgrade onnxruntime (pip install -U onnxruntime)"
    found = re.search(r"max supported IR version: (\d+)", error)
    if "IR version" in error:
        most = f" (at most {found.group(1)})" if found else ""
        raise EnvironmentProblem(
            f"{path}: ONNX IR version {model.ir_version} is newer than onnxruntime "
            f"{ort.__version__} reads{most}; {upgrade}, or export with an older onnx")
    found = re.search(r"till opset (\d+)", error)
    most = f" (at most {found.group(1)})" if found else ""
    lower = f"--opset {found.group(1)}" if found else "a lower --opset"
    raise EnvironmentProblem(
        f"{path}: opset {opset} is newer than onnxruntime {ort.__version__} runs{most}; "
        f"{upgrade}, or export again with {lower}")


@functools.lru_cache(maxsize=None)
def probe(ir_version: int, opset: int | None) -> str | None:
    """onnxruntime's error for a one-node model of this IR version and opset, None if it loads.

    onnxruntime publishes no "newest IR/opset I read" in Python; asking it about a trivial
    model stamped with the same versions answers exactly the question that matters.
    """
    import onnxruntime as ort
    from onnx import TensorProto, helper

    if opset is None:
        return None
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    probe = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    probe.ir_version = ir_version
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the probe's own warnings are not the user's business
    try:
        ort.InferenceSession(probe.SerializeToString(), options,
                             providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001
        text = " ".join(str(e).split())
        return text if ("IR version" in text or "opset" in text) else None
    return None


def _check_external_data(path: Path, model) -> None:
    """Every external tensor must live in a regular file inside the model's own folder."""
    from onnx import TensorProto
    from onnx.external_data_helper import _get_all_tensors

    from .. import paths

    for tensor in _get_all_tensors(model):
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        info = {kv.key: kv.value for kv in tensor.external_data}
        location = info.get("location", "")
        where = f"{path}: tensor {tensor.name!r} reads external data from {location!r}"
        if not location:
            raise ModelError(f"{where}, which names no file; the model is damaged")
        if os.path.isabs(location) or location.startswith(("/", "\\")) or \
                re.match(r"^[A-Za-z]:", location):
            raise ModelError(f"{where}: an absolute path, refused; external data must sit "
                             f"beside the model, named relative to its folder")
        if ".." in re.split(r"[/\\]", location):
            raise ModelError(f"{where}: it leaves the model's folder, refused; external data "
                             f"must sit beside the model")
        target = path.parent / location
        resolved = target.resolve()
        inside = paths.inside(target, path.parent)  # (where it leads, links followed)
        if target.is_symlink() or not inside:
            raise ModelError(f"{where}: a symbolic link to {resolved}"
                             f"{'' if inside else ', outside the model folder'}; refused: "
                             f"external data must be a regular file beside the model")
        if not resolved.is_file():
            raise ModelError(f"{where}: no such file beside the model; copy it with the model")
        try:
            end = int(info.get("offset") or 0) + int(info.get("length") or 0)
        except ValueError:
            raise ModelError(f"{where}: its offset or length is not a number; the model is "
                             f"damaged") from None
        if end > resolved.stat().st_size:
            raise ModelError(f"{where}: the file is shorter than the tensor needs "
                             f"(truncated); copy it again")


def _first(e: Exception) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:160]}" if text else type(e).__name__
