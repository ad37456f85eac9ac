"""One latency harness for onnxruntime and PyTorch alike.

Warm-up, then timed calls over a fixed list of inputs (cycled), perf_counter around each
call; p50/p90/p99 and throughput. Thread counts are pinned by the caller and recorded.
"""

from __future__ import annotations

import time

import numpy as np


def measure(call, inputs: list, *, warmup: int = 10, iterations: int = 100,
            items_per_call: int = 1) -> dict:
    """Time `call(x)` over `inputs`; percentiles in milliseconds."""
    for i in range(warmup):
        call(inputs[i % len(inputs)])
    times = np.empty(iterations)
    for i in range(iterations):
        x = inputs[i % len(inputs)]
        t0 = time.perf_counter()
        call(x)
        times[i] = time.perf_counter() - t0
    ms = times * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p90_ms": round(float(np.percentile(ms, 90)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "mean_ms": round(float(ms.mean()), 3),
        "throughput_per_s": round(items_per_call * iterations / float(times.sum()), 1),
        "iterations": iterations,
        "warmup": warmup,
    }


def ort_session(path, threads: int = 1, provider: str = "CPUExecutionProvider"):
    """An onnxruntime session with pinned threads; fails if the provider did not load."""
    import onnxruntime as ort

    from .errors import EnvironmentProblem

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if provider not in ort.get_available_providers():
        raise EnvironmentProblem(f"onnxruntime provider {provider} is not available here "
                                 f"(available: {', '.join(ort.get_available_providers())})")
    session = ort.InferenceSession(str(path), options, providers=[provider])
    if session.get_providers()[0] != provider:  # onnxruntime falls back silently
        raise EnvironmentProblem(f"onnxruntime ran {session.get_providers()[0]}, not {provider}")
    return session


def feeds_for(session, batch: dict) -> dict:
    """The subset of tokenizer outputs the session takes (e.g. no token_type_ids)."""
    names = {i.name for i in session.get_inputs()}
    return {k: v for k, v in batch.items() if k in names}
