"""One interface over a PyTorch checkpoint and an ONNX model, so verify treats them alike.

A runner turns the task's encoded inputs (numpy feeds) into named numpy outputs. Input conversion
(`prepare`) is kept apart from the call (`call`) so a latency timer measures the model
only, for both runtimes: torch tensors are built before the clock starts, just as the ORT
feeds are. PyTorch runs in inference mode with the same thread count as onnxruntime.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import tasks
from ..artifacts import sha256
from ..data.labels import config_names
from ..errors import ConfigError, ModelError
from ..modeling import backbones
from ..records import ExportReport
from ..untrusted import read_json
from . import latency
from .scoring import inputs_only

# ops whose presence says how an ONNX graph computes (when export.json is not beside it)
INT8_OPS = {"DynamicQuantizeLinear", "MatMulInteger", "QLinearMatMul", "QuantizeLinear",
            "DynamicQuantizeMatMul", "QAttention", "MatMulIntegerToFloat"}


@dataclass
class Runner:
    name: str
    path: Path  # the model file (model.onnx, model.safetensors)
    kind: str  # "pytorch" | "onnx"
    precision: str  # fp32 | fp16 | int8 | bf16
    label_names: list[str]
    task: Any  # the tasks.Task of its head
    preprocessor: Any  # what encodes its inputs (a tokenizer)
    prepare: Callable[[dict], Any]
    call: Callable[[Any], Any]
    outputs_of: Callable[[Any], dict[str, np.ndarray]]
    source: str | None = None  # the checkpoint an ONNX model was exported from, if recorded
    source_fingerprint: str | None = None  # its artifacts.fingerprint when exported
    provider: str | None = None
    info: dict = field(default_factory=dict)

    def run(self, feeds: dict) -> dict[str, np.ndarray]:
        return self.outputs_of(self.call(self.prepare(feeds)))

    @property
    def size_bytes(self) -> int:
        files = [self.path] + [Path(p) for p in self.info.get("extra_files", [])]
        return sum(f.stat().st_size for f in files)

    def describe(self) -> dict:
        return {"name": self.name, "path": str(self.path), "kind": self.kind,
                "precision": self.precision, "sha256": sha256(self.path),
                "size_bytes": self.size_bytes, "source": self.source,
                "provider": self.provider} | self.info.get("describe", {})


def parse_named(spec: str) -> tuple[str | None, str]:
    """`name=path` or `path`: a name given on the command line keys the latency baseline."""
    head, sep, tail = spec.partition("=")
    if sep and head and "/" not in head and not Path(spec).exists():
        return head, tail
    return None, spec


def default_name(path: Path) -> str:
    """A readable name: the folder of model.onnx / of the checkpoint."""
    path = Path(path)
    return path.parent.name if path.is_file() else path.name


def load(spec: str, *, threads: int, provider: str, allow_pickle: bool = False,
         name: str | None = None, task: str | None = None) -> Runner:
    """A PyTorch checkpoint folder, an ONNX file, or a folder holding model.onnx; `task`:
    the one asked for (else the artifact's record or the config's head says)."""
    given_name, raw = parse_named(spec)
    path = Path(raw)
    if not path.exists():
        raise ConfigError(f"{raw}: no such file or folder")
    name = name or given_name or default_name(path)
    if path.is_file() and path.suffix == ".onnx":
        return _onnx(path, path.parent, name, threads, provider, task)
    if path.is_dir() and (path / "model.onnx").exists():
        return _onnx(path / "model.onnx", path, name, threads, provider, task)
    if path.is_dir() and (path / "config.json").exists():
        return _pytorch(path, name, threads, allow_pickle, task)
    raise ModelError(f"{raw}: neither an ONNX model nor a checkpoint folder (no model.onnx or "
                     f"config.json); give an `edgetransfer export` or `finetune` output")


def _labels_from(config: dict, where: Path) -> list[str]:
    try:
        return config_names(config, str(where))
    except ValueError as e:
        raise ModelError(f"{e}; give a fine-tuned model") from None


def _preprocessor(task, folder: Path, config: dict):
    """The task's preprocessor (a tokenizer, an image processor) saved beside the model."""
    bb = backbones.Backbone(name=str(folder), source=str(folder), local=True, config=config)
    try:
        return task.load_preprocessor(bb)
    except ModelError:
        raise
    except Exception as e:  # noqa: BLE001  (any failure means: no usable preprocessor there)
        raise ModelError(f"{folder}: no usable tokenizer or image processor "
                         f"({type(e).__name__}); the export and finetune stages write one "
                         f"beside the model") from None


def _onnx(path: Path, folder: Path, name: str, threads: int, provider: str,
          task: str | None) -> Runner:
    config_file = folder / "config.json"
    if not config_file.exists():
        raise ModelError(f"{folder}: no config.json beside {path.name} (labels come from it); "
                         f"give an `edgetransfer export` output folder")
    config = read_json(config_file, what="config.json", error=ModelError, expect=None,
                       fix="the model folder is damaged")
    backbones.check_config(config, config_file)
    the_task = tasks.resolve(task, config=config, folder=folder, where=str(folder))
    record_file = folder / ExportReport.FILE
    record = ExportReport.read(record_file, error=ModelError) if record_file.exists() else None
    session = latency.ort_session(path, threads, provider)
    precision = (record and record.precision) or _onnx_precision(path)
    names = [o.name for o in session.get_outputs()]
    extra = [str(p) for p in folder.glob("*.onnx.data")]

    def prepare(feeds):
        return latency.feeds_for(session, feeds)

    return Runner(
        name=name, path=path, kind="onnx", precision=precision,
        label_names=_labels_from(config, folder), task=the_task,
        preprocessor=_preprocessor(the_task, folder, config),
        prepare=prepare, call=lambda f: session.run(None, f),
        outputs_of=lambda outs: dict(zip(names, outs)), source=record and record.source,
        source_fingerprint=record and record.source_fingerprint,
        provider=session.get_providers()[0],
        info={"extra_files": extra, "vocab": record and record.vocab, "session": session,
              "describe": {"quantization": record.dump()["quantization"] if record and
                           record.quantization else None, "threads": threads}},
    )


def _onnx_precision(path: Path) -> str:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    ops = {n.op_type for n in model.graph.node}
    if ops & INT8_OPS:
        return "int8"
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer):
        return "fp16"
    return "fp32"


def _pytorch(folder: Path, name: str, threads: int, allow_pickle: bool,
             task: str | None) -> Runner:
    import torch

    bb = backbones.resolve(str(folder), allow_pickle)
    the_task = tasks.resolve(task, config=bb.config, folder=folder, where=str(folder))
    torch.set_num_threads(threads)  # the same threads as onnxruntime: a fair comparison
    model = backbones.load_trained(bb, the_task, allow_pickle=allow_pickle, flag="")
    dtype = next(model.parameters()).dtype
    precision = {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(dtype, "fp32")
    weights = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))

    def prepare(feeds):
        return {k: torch.from_numpy(v) for k, v in inputs_only(the_task, feeds).items()}

    def call(tensors):
        with torch.inference_mode():
            return model(**tensors)

    return Runner(
        name=name, path=weights[0], kind="pytorch", precision=precision,
        label_names=bb.head_labels(the_task), task=the_task,
        preprocessor=_preprocessor(the_task, folder, bb.config),
        prepare=prepare, call=call,
        outputs_of=lambda out: {name: the_task.output(out, name).float().numpy()
                                for name in the_task.outputs},
        provider="torch-cpu", info={"extra_files": [str(w) for w in weights[1:]],
                                    "describe": {"threads": threads}},
    )


@contextlib.contextmanager
def threads_restored():
    """torch's thread count put back as it was on leaving: a PyTorch runner pins it for a
    fair comparison (`set_num_threads` is process-wide), and whatever runs after in the same
    process (a recipe's next step, search's distillations, an API caller's training) needs
    its own back rather than verify's --threads."""
    try:
        import torch
    except ImportError:  # (nothing to restore where torch is absent)
        yield
        return
    every = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(every)


def same_model_folder(a: str | Path, b: str | Path) -> bool:
    from ..paths import same

    return same(a, b)  # (however spelt: ./x, a symlink)
