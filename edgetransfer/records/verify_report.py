"""verify.json: every figure `edgetransfer verify` measured, and its gates' verdict.

CI scripts read this file: its keys keep their meaning. Top level: passed, failures (one
{gate, model, message} per failed gate), reference and candidates (one entry per model),
latency_gate (the baseline comparison, when --baseline was given), workload (the reference
workload's figures), task, metric (the primary metric's name: the key of each model's
figure in `metrics` and `accuracy_drop`), secondary, gated (figures gated beside the
metric: a joint model's heads, `intent_accuracy`...), data {path, examples}, settings, env
{machine, threads, provider, versions}, wall_time_s.

A model's entry: name, path, kind (pytorch | onnx), precision, sha256, size_bytes, source,
provider, metrics (the task's figures by name), scored_at_batch_size, predictions_from (the
reference's, when read from --reference-cache), accuracy_drop (a
candidate's: per metric {points, ci95, ...}, and flip_rate), per_class_delta, parity,
latency ("batch<N>" -> figures), passed.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, model_validator

from .base import Part, Record, checked, number_or_none

# a 95% interval, [low, high] (a list, as JSON holds it: what is read is written back alike)
Pair = Annotated[list[float], Field(min_length=2, max_length=2)]


class Failure(Part):
    gate: str  # parity | accuracy | latency
    model: str
    message: str


class Drop(Part):
    """A candidate's drop in one metric from the reference's, in points, with its 95% CI."""

    points: float
    ci95: Pair | None = None


class Parity(Part):
    """Output parity of an ONNX model with the checkpoint it came from."""

    applies: bool | None = None  # (None: not said; false: a PyTorch model, not judged)
    why: str | None = None
    against: str | None = None
    precision: str | None = None
    outputs: dict[str, dict[str, Any]] = {}
    failures: list[str] = []
    passed: bool | None = None


class Figures(Part):
    """Latency of one model at one batch size (latency.summarize)."""

    p50_ms: float
    p90_ms: float | None = None
    p99_ms: float | None = None
    p50_ci_ms: Pair | None = None  # (the 95% bootstrap intervals)
    p90_ci_ms: Pair | None = None
    throughput_per_s: float | None = None
    relative_p50: float | None = None  # (p50 / the reference workload's)
    tokenize: dict[str, float] | None = None
    mean_tokens: float | None = None


class ModelEntry(Part):
    """One model verify judged: the reference or a candidate."""

    name: str
    path: str | None = None
    kind: str  # pytorch | onnx
    precision: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    source: str | None = None
    provider: str | None = None
    metrics: dict[str, Any] = {}
    scored_at_batch_size: int | None = None
    # (the reference's: the --reference-cache file its predictions were read from, when an
    # earlier run scored it; absent when this run did)
    predictions_from: str | None = None
    accuracy_drop: dict[str, Any] | None = None  # (a candidate's; see `drop`)
    per_class_delta: Any = None
    parity: Parity | None = None
    latency: dict[str, Figures] | None = None  # "batch<N>" -> figures
    passed: bool | None = None  # (None: not said; verify says it of every model)


class GateRow(Part):
    """One model at one batch size against the latency baseline (baseline.gate)."""

    model: str
    batch: str
    p50_ms: float
    baseline_p50_ms: float | None = None
    relative_p50: float | None = None
    baseline_relative_p50: float | None = None
    change: float  # relative p50 / the baseline's - 1
    passed: bool
    message: str | None = None


class LatencyGate(Part):
    baseline: str | None = None
    threshold: float
    rows: list[GateRow] = []
    skipped: list[str] = []
    baseline_machine: dict[str, Any] | None = None
    baseline_created: str | None = None


class DataUsed(Part):
    path: str
    examples: int


class Env(Part):
    machine: dict[str, Any] = {}
    threads: int | None = None
    provider: str | None = None
    versions: dict[str, str] = {}

    @property
    def onnxruntime(self) -> str | None:
        """The onnxruntime version the figures were taken with, where the record says."""
        said = (self.model_extra or {}).get("onnxruntime")  # (a hand-written env's own key)
        return said if isinstance(said, str) else self.versions.get("onnxruntime")


class VerifyReport(Record):
    FILE = "verify.json"
    FIX = "run edgetransfer verify again"

    reference: ModelEntry
    candidates: list[ModelEntry]
    failures: list[Failure]
    passed: bool
    latency_gate: LatencyGate | None = None
    workload: dict[str, Any] | None = None
    task: str | None = None  # (None: a record from before tasks, a text classifier's)
    # the primary metric's name, the key of each model's figure; records from before tasks
    # had accuracy, with macro_f1 beside it
    metric: str = "accuracy"
    secondary: str | None = "macro_f1"
    # the figures gated on their own beside the metric (a joint task's heads: Task.gated),
    # each a key of `metrics` and `accuracy_drop` as the metric is
    gated: list[str] = []
    data: DataUsed | None = None
    settings: dict[str, Any] | None = None
    env: Env | None = None
    wall_time_s: float | None = None

    @model_validator(mode="after")
    def _figures_are_numbers(self):
        """Each model's figure under the metric's name: a number, its drop a Drop."""
        for where, m in self._entries():
            for name in (self.metric, self.secondary, *self.gated):
                if name:
                    number_or_none(m.metrics.get(name), f"{where}.metrics.{name}")
            for name in (self.metric, *self.gated):
                drop = (m.accuracy_drop or {}).get(name)
                if drop is not None:
                    checked(Drop, drop, (*where.split("."), "accuracy_drop", name))
        return self

    def _entries(self):
        yield "reference", self.reference
        for i, c in enumerate(self.candidates):
            yield f"candidates.{i}", c

    @property
    def models(self) -> list[ModelEntry]:
        """The reference, then the candidates."""
        return [self.reference, *self.candidates]

    def score(self, model: ModelEntry, name: str | None = None) -> float | None:
        """`model`'s figure under `name` (default: the task's primary metric)."""
        return model.metrics.get(name or self.metric)

    def drop(self, model: ModelEntry, name: str | None = None) -> Drop | None:
        """`model`'s drop from the reference in `name` (default: the primary metric); None
        for the reference."""
        found = (model.accuracy_drop or {}).get(name or self.metric)
        return None if found is None else Drop.model_validate(found)

    def covering(self, sha256: str) -> ModelEntry | None:
        """The candidate verify judged whose model file has this sha256."""
        return next((c for c in self.candidates if c.sha256 == sha256), None)

    def failures_of(self, model: ModelEntry) -> list[Failure]:
        return [f for f in self.failures if f.model == model.name]
