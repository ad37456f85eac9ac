"""PyTorch checkpoint -> ONNX through optimum, for the task's head.

optimum does the export (dynamic batch and sequence axes, the right inputs and outputs per
architecture and task); written here: only the checks around it (opset, onnx.checker).
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import ConfigError, ModelError

log = logging.getLogger(__name__)

# Opset 18: the minimum optimum-onnx 0.1 recommends for BERT-family exports (below it the
# exporter warns the graph may be suboptimal). onnxruntime has run opset 18 since 1.14
# (2023), on its full, minimal and mobile builds alike.
DEFAULT_OPSET = 18
MIN_OPSET = 14  # below 14 the exporter cannot express these models' ops (e.g. Trilu)

def export(model_dir: Path, out_dir: Path, opset: int, task: str,
           trust_remote_code: bool = False, model=None, onnx_config=None) -> Path:
    """Export a checkpoint for optimum's `task` to `out_dir/model.onnx`; onnx.checker it.

    `model`: an in-memory form of the checkpoint to export instead of loading `model_dir`
    (efficientnet_lite.export_form); its config and preprocessor files are written all the
    same (optimum reads the latter from the checkpoint folder). `onnx_config`: a Task's
    (`Task.onnx_config`, model config -> optimum OnnxConfig naming the graph's inputs and
    outputs) for a model optimum's config of `task` does not describe; it needs `model`.
    """
    if onnx_config is not None and model is None:
        raise ValueError("an onnx_config exports a loaded model: pass model")
    check_opset(opset)
    import warnings

    import onnx
    from optimum.exporters.onnx import main_export, onnx_export_from_model

    try:
        with warnings.catch_warnings():
            # the tracer's notes on constants in the attention mask: parity is what judges
            if not log.isEnabledFor(logging.DEBUG):
                warnings.filterwarnings("ignore", message=".*results are registered as "
                                        "constants in the trace")
            if onnx_config is not None:
                _export_described(model, model_dir, out_dir, opset, onnx_config)
            elif model is not None:
                model.config._name_or_path = str(model_dir)  # (where preprocessors are read)
                onnx_export_from_model(model, str(out_dir), opset=opset, task=task,
                                       do_validation=False)
            else:
                main_export(str(model_dir), str(out_dir), task=task, opset=opset,
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


def _export_described(model, model_dir: Path, out_dir: Path, opset: int, onnx_config) -> None:
    """A model of a task's own class through the task's OnnxConfig: optimum's `export` of
    the one graph, and the config and preprocessor files `onnx_export_from_model` writes.
    (Not onnx_export_from_model: it would infer the library from the class's module, which
    is the task's, not transformers'.)"""
    from optimum.exporters.onnx import export as export_graph
    from optimum.utils.save_utils import maybe_save_preprocessors

    described = onnx_config(model.config)
    model.config.save_pretrained(out_dir)
    maybe_save_preprocessors(str(model_dir), out_dir)
    export_graph(model, described, out_dir / "model.onnx", opset=opset)


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

    from .onnx_check import probe

    most = onnx.defs.onnx_opset_version()
    try:
        from torch.onnx._constants import ONNX_MAX_OPSET

        most = min(most, ONNX_MAX_OPSET)
    except ImportError:  # (a private constant; onnx's and onnxruntime's limits still hold)
        pass
    while most > MIN_OPSET and probe(8, most) is not None:
        most -= 1
    return most
