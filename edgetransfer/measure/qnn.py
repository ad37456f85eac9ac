"""A QDQ graph compiled for Qualcomm's HTP on this x86 machine, through onnxruntime-qnn
(an optional extra: `pip install -e ".[qnn]"` in the checkout, 243 MB).

The wheel's libQnnHtp.so compiles the graph into an HTP context binary and runs it in its
simulator on x86. What it proves: that every node compiles for HTP (CPU fallback
disabled: an unsupported node fails the session instead of quietly running on the CPU),
the context binary's size, and the numbers HTP's arithmetic gives. What it cannot: the
speed on a device.

QNN is a plugin provider, registered as the bundle's runtime registers it
(predict.qnn_devices) and added with `SessionOptions.add_provider_for_devices`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..bundle.runtime.predict import QNN as PROVIDER
from ..errors import EnvironmentProblem, ModelError

log = logging.getLogger(__name__)

# (the checkout's extra, as the README installs the package: "edgetransfer[qnn]" would ask
# PyPI for a package of that name, which is not this one)
INSTALL = 'pip install -e ".[qnn]" in the edgetransfer checkout (onnxruntime-qnn)'


def available() -> bool:
    try:
        import onnxruntime_qnn  # noqa: F401
    except ImportError:
        return False
    return True


def _devices():
    """(QNN's devices, the onnxruntime_qnn module), as the bundle's runtime registers them."""
    import onnxruntime as ort

    from ..bundle.runtime.predict import qnn_devices

    found = qnn_devices(ort)
    if found is None:
        raise EnvironmentProblem(f"QNN checks need onnxruntime-qnn: {INSTALL}")
    return found


def session(path: Path, htp_arch: int, soc_model: int, context: Path | None = None):
    """An HTP session of the model at `path`, CPU fallback disabled (and with `context`,
    the compiled context binary written there)."""
    import onnxruntime as ort

    devices, lib = _devices()
    options = ort.SessionOptions()
    options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    options.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
    if context is not None:
        options.add_session_config_entry("ep.context_enable", "1")
        options.add_session_config_entry("ep.context_file_path", str(context))
    options.add_provider_for_devices(devices, {"backend_path": lib.get_qnn_htp_path(),
                                               "htp_arch": str(htp_arch),
                                               "soc_model": str(soc_model)})
    try:
        return ort.InferenceSession(str(path), options)
    except Exception as e:  # noqa: BLE001  (onnxruntime's own words are the finding)
        first = " ".join(str(e).split())[:300]
        raise ModelError(f"{path}: QNN HTP cannot compile every node of it (CPU fallback "
                         f"disabled): {first}") from None


def compile_report(path: Path, htp_arch: int, soc_model: int, scratch: Path) -> tuple:
    """(the record of compiling the model at `path` for HTP, the session to run it in the
    simulator). The context binary is written under `scratch` and measured."""
    scratch.mkdir(parents=True, exist_ok=True)
    context = scratch / "qnn_ctx.onnx"
    s = session(path, htp_arch, soc_model, context)
    on = {g.ep_name: len(g.get_nodes()) for g in s.get_provider_graph_assignment_info()}
    binaries = sorted(scratch.glob("qnn_ctx*.bin"))
    size = sum(p.stat().st_size for p in binaries)
    nodes = sum(on.values())  # (the graph as onnxruntime placed it, after its optimizations)
    record = {"provider": PROVIDER, "checker": "onnxruntime-qnn HTP compile (x86)",
              "htp_arch": htp_arch, "soc_model": soc_model, "nodes": nodes,
              "htp_nodes": on.get(PROVIDER, 0), "cpu_nodes": on.get("CPUExecutionProvider", 0),
              "htp_share": round(on.get(PROVIDER, 0) / max(nodes, 1), 4),
              "cpu_fallback": False, "context_written": bool(binaries), "context_bytes": size}
    return record, s
