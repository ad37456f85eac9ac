"""export.json: what `edgetransfer export` made and measured, as one typed record.

Keys (every one export writes; those marked * always):
task, metric*, opset, source, source_fingerprint (the checkpoint exported and its
artifacts.fingerprint: verify follows `source` only to that checkpoint), parity* (gate name
-> the parity report), vocab (a pruned vocabulary: how it was judged), fusions,
first_token_last_layer, auto (--quantize auto: every candidate and the one chosen), the task
metric on --eval-data under its own name (e.g. "accuracy", "entity_f1"), with
torch_<metric>, fp32_onnx_<metric> and <metric>_batch_size beside it, quantization (the
settings; `mode` and `precision`), ort_format, latency_batch1* (p50_ms, p90_ms, ...), host,
size_bytes*, gates (what each gate compared), versions, wall_time_s.
"""

from __future__ import annotations

from typing import Any

from pydantic import model_validator

from .base import Part, Record, number_or_none


class ParityGate(Part):
    """One parity gate of export (parity.Report.as_dict)."""

    precision: str | None = None
    passed: bool
    outputs: dict[str, dict[str, Any]] = {}
    failures: list[str] = []


class Quantization(Part):
    """The quantizer's settings (convert.quantize); `mode` is the --quantize mode used."""

    mode: str | None = None
    precision: str | None = None
    target: str | None = None  # (the CPU family int8 was tuned for: export --target)


class Latency(Part):
    """Batch-1 latency on the export machine (latency.measure, and how it was taken)."""

    p50_ms: float
    p90_ms: float


class ExportReport(Record):
    FILE = "export.json"
    FIX = "export the model again"

    task: str | None = None  # (None: a record from before tasks, a text classifier's)
    # the name of the task's primary metric, the key its figure is under; records from
    # before tasks had one metric, accuracy
    metric: str = "accuracy"
    opset: int | None = None
    source: str | None = None
    source_fingerprint: str | None = None
    parity: dict[str, ParityGate] = {}
    vocab: dict[str, Any] | None = None
    fusions: Any = None
    first_token_last_layer: bool | None = None
    auto: dict[str, Any] | None = None
    quantization: Quantization | None = None
    ort_format: dict[str, Any] | None = None
    # export --for an NPU: the profile, the graph's rewrites, its coverage (convert/
    # accelerators.py, measure/coverage.py); None: a CPU export
    accelerator: dict[str, Any] | None = None
    latency_batch1: Latency
    host: dict[str, Any] | None = None
    size_bytes: int
    gates: list[dict[str, Any]] = []
    versions: dict[str, str] = {}
    wall_time_s: float | None = None

    @model_validator(mode="after")
    def _figures_are_numbers(self):
        for key in (self.metric, f"torch_{self.metric}", f"fp32_onnx_{self.metric}"):
            number_or_none((self.model_extra or {}).get(key), key)
        return self

    def score(self, name: str | None = None) -> float | None:
        """The figure under `name` (default: the task's primary metric, `metric`) measured on
        --eval-data; None where export had no eval data."""
        return (self.model_extra or {}).get(name or self.metric)

    @property
    def precision(self) -> str | None:
        """fp32, fp16, int8 or int4: the quantizer's word, else its mode's (None: not said)."""
        from ..convert.quantize import precision_of

        q = self.quantization
        return None if q is None else q.precision or precision_of(q.mode)
