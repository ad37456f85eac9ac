"""One latency harness for onnxruntime and PyTorch alike.

Warm-up, then timed calls over a fixed list of inputs (cycled), perf_counter around each
call; p50/p90/p99 with bootstrap confidence intervals, and throughput. Thread counts are
pinned by the caller and recorded. Several models compared in one run are measured in
interleaved rounds, so a burst of noise on a shared machine hits all of them alike.

The reference workload is a fixed ONNX graph (a stack of matmuls, no model in it) timed in
the same rounds: a latency divided by it is a figure that carries from one machine, or one
load level, to another well enough for a regression gate (see baseline.py).
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np


def timings(call, inputs: list, *, warmup: int = 10, iterations: int = 100) -> np.ndarray:
    """Seconds per `call(x)`, cycling over `inputs`, after `warmup` untimed calls."""
    for i in range(warmup):
        call(inputs[i % len(inputs)])
    times = np.empty(iterations)
    for i in range(iterations):
        x = inputs[i % len(inputs)]
        t0 = time.perf_counter()
        call(x)
        times[i] = time.perf_counter() - t0
    return times


def summarize(times: np.ndarray, items_per_call: int = 1, ci: bool = False,
              seed: int = 0) -> dict:
    """Percentiles in milliseconds (with 95% bootstrap intervals when `ci`), throughput."""
    ms = np.asarray(times) * 1000
    out = {}
    for q in (50, 90, 99):
        out[f"p{q}_ms"] = round(float(np.percentile(ms, q)), 3)
        if ci:
            out[f"p{q}_ci_ms"] = percentile_ci(ms, q, seed)
    out |= {
        "mean_ms": round(float(ms.mean()), 3),
        "throughput_per_s": round(items_per_call * len(ms) / (float(ms.sum()) / 1000), 1),
        "iterations": int(len(ms)),
    }
    return out


def percentile_ci(ms: np.ndarray, q: float, seed: int = 0) -> list[float]:
    """95% bootstrap interval of the q-th percentile (scipy's percentile bootstrap)."""
    from scipy.stats import bootstrap

    if len(ms) < 10 or np.ptp(ms) == 0:
        v = round(float(np.percentile(ms, q)), 3)
        return [v, v]
    res = bootstrap((ms,), lambda x, axis: np.percentile(x, q, axis=axis), vectorized=True,
                    n_resamples=1000, method="percentile", random_state=seed)
    return [round(float(res.confidence_interval.low), 3),
            round(float(res.confidence_interval.high), 3)]


def measure(call, inputs: list, *, warmup: int = 10, iterations: int = 100,
            items_per_call: int = 1) -> dict:
    """Time `call(x)` over `inputs`; percentiles in milliseconds."""
    times = timings(call, inputs, warmup=warmup, iterations=iterations)
    return summarize(times, items_per_call) | {"warmup": warmup}


def interleaved(jobs: dict, *, iterations: int, rounds: int, warmup: int,
                progress=None) -> dict[str, np.ndarray]:
    """Time several `name -> (call, inputs)` jobs in alternating rounds.

    Each round gives every job iterations/rounds timed calls; the order rotates each round
    so no job always follows the same neighbour. Returns every job's seconds per call.
    """
    names = list(jobs)
    per_round = max(1, -(-iterations // rounds))
    for name in names:  # warm every job once, before any clock runs
        call, inputs = jobs[name]
        timings(call, inputs, warmup=warmup, iterations=1)
    out = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            call, inputs = jobs[name]
            # each round starts on a different input, so every input gets timed
            offset = (r * per_round) % len(inputs)
            shifted = inputs[offset:] + inputs[:offset]
            out[name].append(timings(call, shifted, warmup=1, iterations=per_round))
        if progress:
            progress(r + 1, rounds)
    return {name: np.concatenate(v) for name, v in out.items()}


def ort_session(path, threads: int = 1, provider: str = "CPUExecutionProvider"):
    """An onnxruntime session with pinned threads; fails if the provider did not load."""
    import onnxruntime as ort

    from ..bundle.runtime import fixed_shapes
    from ..convert.onnx_check import check
    from ..errors import EnvironmentProblem, ModelError

    check(path)  # a truncated, too-new or hostile file: a one-line error before onnxruntime
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if provider not in ort.get_available_providers():
        raise EnvironmentProblem(f"onnxruntime provider {provider} is not available here "
                                 f"(available: {', '.join(ort.get_available_providers())})")
    try:
        session = ort.InferenceSession(str(path), options, providers=[provider])
    except Exception as e:  # noqa: BLE001  (onnxruntime raises its own untyped errors)
        first = str(e).strip().splitlines()[0][:240] if str(e).strip() else type(e).__name__
        raise ModelError(f"{path}: onnxruntime cannot load it: {first}") from None
    ran = session.get_providers()[0]
    if ran != provider:  # onnxruntime falls back to the CPU silently
        raise EnvironmentProblem(f"onnxruntime ran {ran}, not the {provider} asked for "
                                 f"({path}); install the onnxruntime build for it")
    # (an accelerator's fixed-shape model takes the tokenizer's feeds through its adapter,
    # as its bundle's runtime does: every gate and timing sees what the device will run)
    front = None
    if fixed_shapes.needs_front(session):  # (its embeddings.onnx, beside it, looks up first)
        beside = Path(path).with_name(fixed_shapes.FRONT)
        if not beside.is_file():
            raise ModelError(f"{path}: takes looked-up embeddings, but no "
                             f"{fixed_shapes.FRONT} is beside it")
        check(beside)
        front = ort.InferenceSession(str(beside), options, providers=["CPUExecutionProvider"])
    return fixed_shapes.wrap(session, front)


def feeds_for(session, batch: dict) -> dict:
    """The subset of tokenizer outputs the session takes (e.g. no token_type_ids)."""
    names = {i.name for i in session.get_inputs()}
    return {k: v for k, v in batch.items() if k in names}


# The reference workload: 4 blocks of [32 x 384] @ [384 x 1536] @ [1536 x 384] fp32 matmuls
# with ReLU, the shape of a MiniLM layer's feed-forward part at 32 tokens (0.3 GFLOP, a few
# ms on one core: long enough to time well, short enough to interleave with every model).
# Fixed weights from a seed: every run times the same graph.
WORKLOAD = {"blocks": 4, "tokens": 32, "width": 384, "inner": 1536, "seed": 0}


def reference_workload(threads: int, provider: str = "CPUExecutionProvider"):
    """(call, inputs) of the fixed ONNX workload, on the same runtime settings as the models."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    w = WORKLOAD
    rng = np.random.default_rng(w["seed"])
    nodes, inits, x = [], [], "x"
    for b in range(w["blocks"]):
        up = rng.standard_normal((w["width"], w["inner"]), dtype=np.float32) / 20
        down = rng.standard_normal((w["inner"], w["width"]), dtype=np.float32) / 40
        inits += [numpy_helper.from_array(up, f"up{b}"), numpy_helper.from_array(down, f"dn{b}")]
        nodes += [helper.make_node("MatMul", [x, f"up{b}"], [f"h{b}"]),
                  helper.make_node("Relu", [f"h{b}"], [f"r{b}"]),
                  helper.make_node("MatMul", [f"r{b}", f"dn{b}"], [f"y{b}"])]
        x = f"y{b}"
    graph = helper.make_graph(
        nodes, "reference_workload",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [w["tokens"], w["width"]])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [w["tokens"], w["width"]])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=[provider])
    inputs = [{"x": rng.standard_normal((w["tokens"], w["width"]), dtype=np.float32)}]
    return (lambda feeds: session.run(None, feeds)), inputs


def machine() -> dict:
    """What the latencies were measured on."""
    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    cpu = value.strip()
                elif key.strip() in ("flags", "Features"):
                    flags = set(value.split())
    except OSError:
        pass
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimd",
                       "asimddp", "sve") if f in flags]
    return {"cpu": cpu, "arch": platform.machine(), "logical_cpus": os.cpu_count(),
            "isa": isa, "os": platform.platform(), "python": platform.python_version()}
