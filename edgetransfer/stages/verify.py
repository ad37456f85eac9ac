"""Stage `verify`: does each candidate still answer like the reference, as fast as promised?

Three gates over one reference and any number of candidates (PyTorch checkpoints, ONNX
models) of one task, all run on the full eval data:

- accuracy: each candidate's drop in the task's primary metric from the reference, with a
  paired-bootstrap interval, flip rate and per-class deltas (the task computes them); fails
  (exit 5) above --max-accuracy-drop. Every model's metric, the reference's too, is what
  its bundle would answer: the rows go through the bundled runtime's own reading (raw
  text, image files) and postprocess (measure/shipped.py);
- output parity: each ONNX model against the PyTorch checkpoint it was exported from (its
  export.json says which; the reference otherwise), per output, with per-precision
  tolerances (parity.py); fails with exit 3;
- latency: every model timed by one harness (latency.py) at batch 1 and larger batches, on
  texts drawn from the data, interleaved with a fixed reference workload; against a stored
  baseline (baseline.py) the gate compares workload-relative p50s; fails with exit 6.

Writes verify.json (every figure and the environment) whether the gates pass or not, so a
CI job can keep the evidence of a failure.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import Field, field_validator

from .. import paths
from ..artifacts import MANIFEST, files_digest, fingerprint, versions
from ..errors import (
    AccuracyDrop,
    CheckFailed,
    ConfigError,
    EdgeTransferError,
    EnvironmentProblem,
    LatencyRegression,
    ModelError,
)
from ..measure import baseline as baselines
from ..measure import floor, latency, parity, reference_cache, runners, scoring, shipped
from ..options import (
    MAX_BATCH,
    MAX_REQUESTS,
    MAX_SEED,
    MAX_THREADS,
    ColumnOptions,
    FloorOption,
    TaskOption,
    comma_list,
)
from ..records import VerifyReport
from ..records.verify_report import LatencyGate

log = logging.getLogger(__name__)

# The command's --help (edgetransfer.cli makes the command from the registry).
HELP = """Check candidates against a reference: accuracy, output parity, latency.

\b
Examples:
  edgetransfer verify --reference models/demo/teacher \\
      --candidate models/demo/student --candidate models/demo/onnx \\
      --data recipes/data/intents/test.jsonl --max-accuracy-drop 3
  edgetransfer verify ... --update-baseline latency-baseline.json
  edgetransfer verify ... --baseline latency-baseline.json --max-latency-regression 10%

\b
Exit codes: 0 all gates passed; 3 output parity failed; 5 a candidate lost more
accuracy than allowed; 6 latency regressed against the baseline (the first of these
that applies; verify.json lists every failure).
"""
WORKLOAD = "reference-workload"


class VerifyConfig(TaskOption, ColumnOptions, FloorOption):
    """Settings of `edgetransfer verify`; each description is the CLI help."""

    reference: str = Field(description="The model the candidates are judged against: a "
                           "PyTorch checkpoint folder (or an ONNX model).")
    candidate: list[str] = Field(min_length=1, json_schema_extra={"repeatable": True},
                                 description="A model to verify (repeat the option for "
                                 "several): a checkpoint folder, model.onnx or an export "
                                 "folder; NAME=PATH names it in the baseline.")
    data: str = Field(description="Labelled eval data (CSV/TSV/JSONL/Parquet); every row is "
                      "scored.")
    max_length: int = Field(128, ge=8, description="Token limit (the stages' default).")
    max_accuracy_drop: float = Field(1.0, ge=0, description="How much of the task's primary "
                                     "metric a candidate may lose against the reference "
                                     "(points of accuracy, or entity F1 for token "
                                     "classification; point estimate, the 95% interval "
                                     "is reported beside it).")
    atol: float | None = Field(None, gt=0, description="Override the parity tolerance on "
                               "outputs (fp32 1e-4, fp16 5e-2; int8 is judged by agreement).")
    min_agreement: float | None = Field(None, gt=0, le=1, description="Override the least "
                                        "top-1 agreement with the source model (fp32 1.0, "
                                        "fp16 0.99, int8 0.95).")
    threads: int = Field(1, ge=1, le=MAX_THREADS, description="Threads for both runtimes (1: "
                         "the edge-device "
                         "case, and the most stable figures).")
    provider: str = Field("CPUExecutionProvider", description="onnxruntime execution "
                          "provider; an error if it is not the one that runs.")
    batch_sizes: list[Annotated[int, Field(ge=1, le=MAX_BATCH)]] = Field(
        [1, 32], min_length=1, description="Batch sizes timed, comma-separated (1: "
        "per-request latency; 32: throughput).")
    # (a million calls per model is hours; the 95% intervals stop narrowing long before)
    iterations: int = Field(200, ge=10, le=MAX_REQUESTS, description="Timed calls per model at "
                            "batch 1 (fewer at larger batches), split over --rounds.")
    rounds: int = Field(5, ge=1, description="Interleaved rounds: every model and the "
                        "reference workload take turns, so noise hits all alike.")
    latency_samples: int = Field(256, ge=1, description="Texts drawn from --data for the "
                                 "latency inputs (their real lengths, not one dummy shape).")
    latency: bool = Field(True, description="Measure latency (off: the metric and parity "
                          "gates only).")
    baseline: Path | None = Field(None, description="A baseline file to gate latency against "
                                  "(written by --update-baseline).")
    max_latency_regression: str = Field("10%", description="How much slower than the baseline "
                                        "a model may get (workload-relative p50).")
    update_baseline: Path | None = Field(None, description="Write this run's latencies as the "
                                         "new baseline file.")
    out: Path = Field(Path("verify.json"), description="Where to write every figure (JSON).")
    junit: Path | None = Field(None, description="Also write the gates as JUnit XML (one test "
                               "case per gate and model), for CI test reports.")
    summary: Path | None = Field(None, description="Also write a Markdown summary (verdict, a "
                                 "row per model, the failures), for a pull-request comment or "
                                 "$GITHUB_STEP_SUMMARY.")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="Seed for the latency sample and "
                      "the bootstrap.")
    reference_cache: Path | None = Field(None, description="A folder to keep the "
                                         "reference's predictions on --data in, so a later "
                                         "verify against the same reference and data (other "
                                         "candidates) reads them instead of scoring it again; "
                                         "keyed by their content and the settings that bear "
                                         "on them [default: none; a recipe's: "
                                         "teacher-cache/verify/ under its output folder].")
    allow_pickle: bool = Field(False, description="Allow pickle weights (weights-only load).")

    @field_validator("batch_sizes", mode="before")
    @classmethod
    def _split_commas(cls, v):
        return comma_list(v)

    @field_validator("rounds")
    @classmethod
    def _rounds_within_iterations(cls, v, info):
        iterations = info.data.get("iterations")
        if iterations is not None and v > iterations:
            # (each round times every model at least once: the calls would be --rounds)
            raise ValueError(f"more than the iterations ({iterations}); each round times "
                             f"every model at least once")
        return v


def check_settings(cfg: VerifyConfig) -> None:
    """The settings alone, before a model is loaded (under `run`: before the recipe's first
    step): the threshold, the provider, and the files written, which must be distinct and
    none of them an input."""
    baselines.parse_threshold(cfg.max_latency_regression)
    import onnxruntime as ort

    if cfg.provider not in ort.get_available_providers():
        raise EnvironmentProblem(f"--provider {cfg.provider}: onnxruntime provider "
                                 f"{cfg.provider} is not available here (available: "
                                 f"{', '.join(ort.get_available_providers())})")
    outputs = {"--out": cfg.out, "--junit": cfg.junit, "--summary": cfg.summary,
               "--update-baseline": cfg.update_baseline}
    outputs = {flag: path for flag, path in outputs.items() if path is not None}
    inputs = {"--data": cfg.data, "--baseline": cfg.baseline}
    models = [Path(runners.parse_named(c)[1]) for c in (cfg.reference, *cfg.candidate)]
    owned = [f for m in models if m.exists() for f in _model_files(m)]
    flags = list(outputs)
    for i, flag in enumerate(flags):
        path = outputs[flag]
        if path.is_dir():
            raise ConfigError(f"{flag} {path}: is a folder; give a file name like "
                              f"{'verify.json' if flag == '--out' else path.name + '.json'}")
        for other in flags[:i]:
            if paths.same(path, outputs[other]):
                raise ConfigError(f"{flag} {path}: is also {other}; give each its own file")
        for role, given in inputs.items():
            # (--update-baseline may refresh the --baseline it was gated against)
            if given is not None and not (flag == "--update-baseline" and role == "--baseline") \
                    and paths.same(path, given):
                raise ConfigError(f"{flag} {path}: is the {role} file; it would be "
                                  f"overwritten, give another name")
        mine = paths.find_same(path, owned) if path.exists() else None
        if mine is not None:  # (a new file beside a model is fine; one of the model's is not)
            raise ConfigError(f"{flag} {path}: is {mine}, a file of a model verified here; it "
                              f"would be overwritten, give another name")
    if cfg.reference_cache is not None:
        cache = cfg.reference_cache
        if cache.exists() and not cache.is_dir():
            raise ConfigError(f"--reference-cache {cache}: is a file; give a folder")
        for role, given in [("--data", cfg.data)] + [
                ("a model verified here", m if m.is_dir() else m.parent) for m in models]:
            if Path(given).is_dir() and paths.inside(cache, given):
                raise ConfigError(f"--reference-cache {cache}: is inside {role} {given}; "
                                  f"inputs are never written, keep the cache in another "
                                  f"folder")


def run(cfg: VerifyConfig) -> VerifyReport:
    """Measure everything and write cfg.out; the gates are judged by `check(report)`. The
    process's torch thread count is as it was afterwards (runners.threads_restored)."""
    with runners.threads_restored():
        return _run(cfg)


def _run(cfg: VerifyConfig) -> VerifyReport:
    started = time.perf_counter()
    threshold, base = _preflight(cfg)
    reference, candidates, load = _load_models(cfg)
    task = reference.task
    ds = task.read_eval(cfg.data, reference.label_names, cfg)
    labels = list(ds["label"])  # one per example: a class id, or a sentence's tag ids
    log.info("scoring %d examples of %s with %d models (%s)", len(labels), cfg.data,
             1 + len(candidates), task.name)

    models = [reference] + candidates
    # int8 models one row at a time, as deployed (scoring.one_by_one says why)
    scored_at = {m.name: scoring.scoring_batch_size(m.precision) for m in models}
    # each model's raw outputs and probes are computed when a figure first needs them: the
    # metrics read the shipped predictions below, so the outputs serve output parity, which
    # a PyTorch model takes part in only as an ONNX model's source (a 12-layer reference's
    # pass over the data is minutes on a small CPU, spent for nothing before)
    by_name = {m.name: m for m in models}
    outputs = _OnDemand(lambda name: _outputs(by_name[name], ds, cfg.max_length,
                                              scored_at[name]))
    probes = _OnDemand(lambda name: _probes(by_name[name], cfg.max_length))
    # every model's figure is what its bundle would answer, read as the bundle reads inputs
    # (raw text, image files), the PyTorch reference too (measure/shipped.py); a task the
    # runtime has no reader for is scored on the outputs above (its own encoding)
    def predicted(m):
        if task.shipped is None:
            return task.predictions(task.scored(outputs[m.name]))
        return _timed(f"{m.name}: scored {len(labels)} examples", shipped.predictions, task,
                      shipped.of_runner(m), ds, m.label_names, cfg.max_length, m.precision,
                      cfg.max_image_pixels)

    cached = cfg.reference_cache is not None and Path(cfg.data).exists()
    if cfg.reference_cache is not None and not cached:  # (a hub dataset: no content to key)
        log.warning("--reference-cache: --data %s is not a local file or folder, so its "
                    "content cannot key the predictions; the reference is scored", cfg.data)
    answers, read_from = reference_cache.kept(
        cfg.reference_cache, _reference_key(cfg, reference), len(labels),
        len(reference.label_names), lambda: predicted(reference)) if cached \
        else (predicted(reference), None)
    preds = {reference.name: answers} | {m.name: predicted(m) for m in candidates}
    names = reference.label_names
    reports = {name: task.metrics(labels, p, names) for name, p in preds.items()}

    failures: list[dict] = []
    entries = {}
    for m in models:
        entries[m.name] = m.describe() | {"metrics": reports[m.name],
                                          "scored_at_batch_size": scored_at[m.name]}
    if read_from is not None:
        entries[reference.name]["predictions_from"] = str(read_from)
    for c in candidates:
        drop = task.compare(labels, preds[reference.name], preds[c.name], names, seed=cfg.seed)
        entries[c.name]["accuracy_drop"] = drop
        if task.per_label_delta is not None:
            entries[c.name]["per_class_delta"] = task.per_label_delta(reports[reference.name],
                                                                      reports[c.name])
        failures += _accuracy_failures(task, c.name, drop, reports[c.name],
                                       reports[reference.name], cfg.max_accuracy_drop)
        entries[c.name]["parity"] = _parity(c, models, outputs, probes, cfg, load, ds)
        if entries[c.name]["parity"].get("passed") is False:
            failures += [{"gate": "parity", "model": c.name, "message": f"{c.name}: {f}"}
                         for f in entries[c.name]["parity"]["failures"]]

    gate_record = workload = None
    if cfg.latency:
        gate_record, workload = _latency_gate(models, ds, cfg, entries, failures, base,
                                              threshold)

    report = _report(cfg, task, entries, failures, gate_record, workload, len(labels),
                     started)
    _write(report, cfg)
    return report


def _report(cfg: VerifyConfig, task, entries: dict, failures: list[dict], gate_record,
            workload, examples: int, started: float) -> VerifyReport:
    """verify.json's record: each model's entry (the reference's first) marked passed or
    not, with what was judged and where."""
    failed = {f["model"] for f in failures}
    reference, *candidates = [entry | {"passed": name not in failed}
                              for name, entry in entries.items()]
    return VerifyReport(
        passed=not failures, failures=failures, reference=reference, candidates=candidates,
        latency_gate=gate_record,
        workload=workload and {"spec": latency.WORKLOAD, "by_batch": workload},
        task=task.name, metric=task.primary, secondary=task.secondary,
        gated=list(task.gated), data={"path": cfg.data, "examples": examples},
        settings=cfg.model_dump(mode="json"),
        env={"machine": latency.machine(), "threads": cfg.threads, "provider": cfg.provider,
             "versions": versions("torch", "transformers", "onnxruntime", "onnx", "numpy")},
        wall_time_s=round(time.perf_counter() - started, 1))


def _write(report: VerifyReport, cfg: VerifyConfig) -> None:
    """verify.json, and the CI renderings asked for (--junit, --summary)."""
    from ..measure import ci_report

    report.write(cfg.out)
    log.info("wrote %s", cfg.out)
    for path, render_as in ((cfg.junit, ci_report.junit), (cfg.summary, ci_report.markdown)):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render_as(report), encoding="utf-8")
            log.info("wrote %s", path)


def _preflight(cfg: VerifyConfig):
    """Every setting and every input's record checked before a model is loaded: (the
    latency threshold, the baseline or None)."""
    check_settings(cfg)
    for flag, spec in [("--reference", cfg.reference)] + [("--candidate", c)
                                                          for c in cfg.candidate]:
        floor.check(runners.parse_named(spec)[1], cfg.allow_degenerate, "verify", flag)
    threshold = baselines.parse_threshold(cfg.max_latency_regression)
    _check_max_length(cfg)
    base = None
    if cfg.baseline:
        if not cfg.latency:
            raise ConfigError("--baseline needs latency measured; drop --no-latency")
        base = baselines.read(cfg.baseline)
        baselines.check_comparable(base, cfg.baseline, cfg.threads, cfg.provider)
    if cfg.update_baseline and not cfg.latency:
        raise ConfigError("--update-baseline needs latency measured; drop --no-latency")
    return threshold, base


def _load_models(cfg: VerifyConfig):
    """(the reference, the candidates, the load settings): every candidate judged as the
    reference's task, with its labels."""
    load = dict(threads=cfg.threads, provider=cfg.provider, allow_pickle=cfg.allow_pickle,
                task=cfg.task)
    log.info("loading the reference %s", cfg.reference)
    reference = runners.load(cfg.reference, **load)
    load["task"] = reference.task.name  # every candidate is judged as the reference's task
    candidates = []
    for spec in cfg.candidate:
        log.info("loading candidate %s", spec)
        candidates.append(runners.load(spec, **load))
    _check_names([reference] + candidates)
    for c in candidates:
        if c.label_names != reference.label_names:
            raise ModelError(f"candidate {c.name}: labels {c.label_names} differ from the "
                             f"reference's {reference.label_names}; verify models of one task")
    return reference, candidates, load


def _latency_gate(models, ds, cfg: VerifyConfig, entries: dict, failures: list, base,
                  threshold):
    """Each model's latency into its entry; the gate against the baseline (its failures
    added to `failures`) and the baseline written when asked: (the gate's record or None,
    the workload's figures)."""
    lat, workload = _latency(models, ds, cfg)
    for name, by_batch in lat.items():
        entries[name]["latency"] = by_batch
    current = {name: {b: {k: f[k] for k in ("p50_ms", "p90_ms", "relative_p50")}
                      for b, f in by_batch.items()} for name, by_batch in lat.items()}
    gate_record = None
    if base is not None:
        rows, skipped = baselines.gate(base, current, threshold)
        for s in skipped:
            log.warning("latency gate: %s; not gated", s)
        failures += [{"gate": "latency", "model": r["model"], "message": r["message"]}
                     for r in rows if not r["passed"]]
        gate_record = LatencyGate(baseline=str(cfg.baseline), threshold=threshold, rows=rows,
                                  skipped=skipped, baseline_machine=base.machine,
                                  baseline_created=base.created)
    if cfg.update_baseline:
        baselines.write(cfg.update_baseline, machine=latency.machine(), threads=cfg.threads,
                        provider=cfg.provider,
                        workload_p50_ms=workload[f"batch{cfg.batch_sizes[0]}"]["p50_ms"],
                        models=current)
        log.info("wrote the latency baseline %s", cfg.update_baseline)
    return gate_record, workload


def main(cfg: VerifyConfig, json: bool = False) -> VerifyReport:
    """The command: run, print the tables (or the JSON report), then judge the gates."""
    import json as json_module

    import click

    report = run(cfg)
    click.echo(json_module.dumps(report.dump(), indent=2, default=str) if json
               else render(report))
    check(report, cfg.out)
    return report


def check(report: VerifyReport, where: Path) -> None:
    """Raise the failed gate's error: parity (exit 3) before accuracy (5) before latency (6)."""
    failures = report.failures
    for gate, error in (("parity", CheckFailed), ("accuracy", AccuracyDrop),
                        ("latency", LatencyRegression)):
        mine = [f.message for f in failures if f.gate == gate]
        if mine:
            others = len(failures) - len(mine)
            raise error(f"{gate} gate failed: {mine[0]}"
                        + (f" (+{len(mine) - 1} more)" if len(mine) > 1 else "")
                        + (f"; {others} other gate failure(s)" if others else "")
                        + f"; every figure is in {where}")


def _model_files(model: Path) -> list[Path]:
    """What a model given to verify is made of: the file itself, or a folder's files as its
    artifact.json lists them (else its config.json, weights and ONNX models)."""
    from ..artifacts import MANIFEST
    from ..untrusted import read_json

    if model.is_file():
        return [model, model.parent / "config.json"]
    try:
        listed = read_json(model / MANIFEST).get("files")
        if isinstance(listed, dict):
            return [model / MANIFEST] + [model / str(name) for name in listed]
    except (EdgeTransferError, OSError):
        pass
    return [model / "config.json", *model.glob("*.safetensors"), *model.glob("*.onnx")]


def _reference_key(cfg: VerifyConfig, reference) -> str:
    """--reference-cache's key of the reference's predictions (measure/reference_cache.py
    says what it covers)."""
    given = Path(runners.parse_named(cfg.reference)[1])
    folder = given if given.is_dir() else given.parent
    if (folder / MANIFEST).is_file():  # (an artifact: as distill's cache and a step key)
        model = fingerprint(str(folder))
    else:
        # (the folder's files, not the weights alone: its tokenizer or image processor
        # reads the data; but not the other ONNX models beside a model.onnx given as a
        # file, nor what verify writes there, which would change the key every run)
        written = [p for p in (cfg.out, cfg.junit, cfg.summary, cfg.update_baseline) if p]
        model = files_digest(folder, files=sorted(
            f for f in folder.iterdir() if f.is_file()
            and (f.suffix != ".onnx" or given.is_dir() or f.name == given.name)
            and not f.name.startswith((".", reference_cache.PREFIX))
            and paths.find_same(f, written) is None))
    return reference_cache.key(cfg.model_dump(mode="json"), model,
                               fingerprint(cfg.data, cfg.image_column),
                               reference.label_names, reference.precision)


def _check_max_length(cfg: VerifyConfig) -> None:
    """--max-length against each model's position table (config.json beside it), before any
    model is loaded: a longer text would index past the table mid-scoring."""
    from ..untrusted import read_json

    for spec in (cfg.reference, *cfg.candidate):
        path = Path(runners.parse_named(spec)[1])
        config_file = (path if path.is_dir() else path.parent) / "config.json"
        try:
            limit = read_json(config_file).get("max_position_embeddings") \
                if config_file.is_file() else None
        except (EdgeTransferError, OSError):
            continue  # (loading the model says what is wrong with it)
        if isinstance(limit, int) and not isinstance(limit, bool) and 0 < limit < cfg.max_length:
            raise ModelError(f"--max-length {cfg.max_length}: {path} takes at most {limit} "
                             f"tokens; lower it")


def _check_names(models) -> None:
    seen = {}
    for m in models:
        if m.name in seen or m.name == WORKLOAD:
            raise ConfigError(f"two models are named {m.name!r} ({seen.get(m.name)} and "
                              f"{m.path}); name them with NAME=PATH")
        seen[m.name] = m.path


class _OnDemand(dict):
    """name -> a value computed on the first look-up (`compute(name)`), then kept."""

    def __init__(self, compute):
        super().__init__()
        self._compute = compute

    def __missing__(self, name):
        self[name] = value = self._compute(name)
        return value


def _timed(what: str, fn, *args):
    """fn(*args), its wall time logged: verify's passes over the data are its long part."""
    started = time.perf_counter()
    result = fn(*args)
    log.info("  %s in %.1f s", what, time.perf_counter() - started)
    return result


def _outputs(model, ds, max_length, batch_size: int = scoring.SCORE_BATCH) -> dict:
    """Every output of `model` over the whole data, per output name: one array per example
    (task.per_example), in order; its wall time logged."""
    return _timed(f"{model.name}: outputs over {len(ds)} examples", _passed, model, ds,
                  max_length, batch_size)


def _passed(model, ds, max_length, batch_size: int) -> dict:
    parts: dict[str, list] = {}
    pairs = scoring.batches(model.task, model.preprocessor, ds, max_length,
                            scoring.SCORE_BATCH)
    if batch_size == 1:  # (int8: one example at a time, as deployed; scoring says why)
        pairs = scoring.one_by_one(pairs)
    for feeds, _ in pairs:
        for k, v in model.run(feeds).items():
            parts.setdefault(k, []).extend(model.task.per_example(v, feeds))
    return parts


def _probes(model, max_length) -> list[dict]:
    return [{k: parity.positions(model.task, v, b) for k, v in model.run(b).items()}
            for b in parity.probe_batches(model.task, model.preprocessor, None, max_length)]


def _recorded(cand) -> bool:
    """The folder export.json names as its source is the checkpoint exported: an artifact
    (so its fingerprint is one small file's hash, not a walk of whatever folder is named)
    whose fingerprint is the one recorded."""
    return (cand.source_fingerprint is not None and (Path(cand.source) / MANIFEST).is_file()
            and fingerprint(cand.source) == cand.source_fingerprint)


def _parity(cand, models, outputs, probes, cfg, load, ds) -> dict:
    """Parity of an ONNX model with the checkpoint it came from (a loaded one if needed)."""
    if cand.kind != "onnx":
        return {"applies": False, "why": "a PyTorch model: judged by the accuracy gate"}
    source = next((m for m in models if m.kind == "pytorch" and cand.source
                   and runners.same_model_folder(m.path.parent, cand.source)), None)
    if source is None and cand.source and Path(cand.source).is_dir() and not _recorded(cand):
        log.warning("%s: export.json names %s as its source, but that folder's contents are "
                    "not the ones exported (or no fingerprint was recorded): not loaded; give "
                    "the checkpoint to compare against as a model", cand.name, cand.source)
    elif source is None and cand.source and Path(cand.source).is_dir():
        log.info("loading %s, the checkpoint %s was exported from, for output parity",
                 cand.source, cand.name)
        source = runners.load(cand.source, **load, name=f"{cand.name}-source")
        outputs[source.name] = _outputs(source, ds, cfg.max_length)
        probes[source.name] = _probes(source, cfg.max_length)
    if source is None:
        source = models[0]
        log.warning("%s: its source checkpoint is not recorded or not found; output parity "
                    "is taken against the reference", cand.name)
    result = {"applies": True, "against": source.name, "precision": cand.precision,
              "outputs": {}, "failures": []}
    min_agreement = cfg.min_agreement
    labels_only = bool(cand.info.get("vocab"))
    if labels_only:
        # a pruned vocabulary tokenizes words outside its corpus differently, so logits move
        # by design: judged by label agreement, as export judged the pruning itself
        from ..convert import vocab

        if min_agreement is None:
            min_agreement = min(vocab.MIN_AGREEMENT,
                                parity.tolerance(cand.precision, cand.task)[1] or 1.0)
        result["vocab_pruned"] = ("judged by label agreement (at least "
                                  f"{min_agreement}); logits differ on words outside the "
                                  f"pruning corpus")
    shared = [k for k in outputs[cand.name] if k in outputs[source.name]]
    if not shared:
        raise ModelError(f"{cand.name}: no output name in common with {source.name} "
                         f"({list(outputs[cand.name])} vs {list(outputs[source.name])})")
    for name in shared:
        ref = [parity.flat(outputs[source.name][name])] + [p[name] for p in
                                                                probes[source.name]]
        got = [parity.flat(outputs[cand.name][name])] + [p[name] for p in
                                                              probes[cand.name]]
        rep = parity.compare(ref, got, cand.precision, name=name, atol=cfg.atol,
                             min_agreement=min_agreement, task=cand.task,
                             labels_only=labels_only, min_agreement_from=(
                                 "--min-agreement" if cfg.min_agreement is not None
                                 else "the vocabulary-pruning bar"))
        result["outputs"] |= rep.outputs
        result["failures"] += rep.failures
    result["passed"] = not result["failures"]
    return result


def _latency(models, ds, cfg):
    """Per model and batch size: percentiles with CIs, throughput, encoding timed apart."""
    rng = np.random.default_rng(cfg.seed)
    n = len(ds)
    sample = rng.choice(n, size=min(cfg.latency_samples, n), replace=False)
    workload = latency.reference_workload(cfg.threads, cfg.provider)
    results = {m.name: {} for m in models}
    workload_figures = {}
    for b in cfg.batch_sizes:
        key = f"batch{b}"
        n_batches = max(1, len(sample) // b) if b <= len(sample) else 1
        groups = [sample[i * b:(i + 1) * b] if b <= len(sample)
                  else rng.choice(n, size=b) for i in range(n_batches)]
        iterations = cfg.iterations if b == 1 else max(20, int(cfg.iterations / b ** 0.5))
        jobs, tokenize, lengths = {}, {}, []
        raw = [ds.select([int(i) for i in g])[:] for g in groups]  # (decoded: images too)
        for m in models:
            feeds = [m.task.encode(m.preprocessor, rows, cfg.max_length) for rows in raw]
            if not lengths and "attention_mask" in feeds[0]:
                # the reference's token counts describe the workload
                lengths = [float(f["attention_mask"].sum(-1).mean()) for f in feeds]
            # encoding timed apart: a fast tokenizer costs ~0.1 ms, not the model's time
            tok_times = latency.timings(
                lambda rows, m=m: m.task.encode(m.preprocessor, rows, cfg.max_length),
                raw, warmup=2, iterations=min(len(raw), 50))
            tokenize[m.name] = latency.summarize(tok_times, b)
            jobs[m.name] = (m.call, [m.prepare(f) for f in feeds])
        jobs[WORKLOAD] = workload
        log.info("timing %d models at batch %d: %d calls each in %d interleaved rounds",
                 len(models), b, iterations, cfg.rounds)
        times = _timed(f"batch {b} timed", lambda: latency.interleaved(
            jobs, iterations=iterations, rounds=cfg.rounds, warmup=max(5, iterations // 10),
            progress=lambda r, n: log.info("  round %d/%d", r, n)))
        workload_figures[key] = latency.summarize(times.pop(WORKLOAD), 1, ci=True,
                                                  seed=cfg.seed)
        for m in models:
            fig = latency.summarize(times[m.name], b, ci=True, seed=cfg.seed)
            fig["relative_p50"] = round(fig["p50_ms"] / workload_figures[key]["p50_ms"], 4)
            fig["tokenize"] = {k: tokenize[m.name][k] for k in ("p50_ms", "p90_ms")}
            if lengths:
                fig["mean_tokens"] = round(float(np.mean(lengths)), 1)
            results[m.name][key] = fig
    return results, workload_figures


def _accuracy_failures(task, name: str, drop: dict, report: dict, reference: dict,
                       allowed: float) -> list[dict]:
    """The accuracy gate's failures of one candidate: its drop in the primary metric, and in
    each figure the task gates on its own (a joint task's heads), beyond `allowed`."""
    failures = []
    for gated in task.gates:
        if drop[gated]["points"] > allowed:
            failures.append({"gate": "accuracy", "model": name, "message": (
                f"{name}: {gated} {report[gated]:.4f} is {drop[gated]['points']:.2f} below "
                f"the reference's {reference[gated]:.4f} (95% CI {drop[gated]['ci95'][0]:.2f} "
                f"to {drop[gated]['ci95'][1]:.2f}; allowed {allowed})")})
    return failures


def _gated_table(report: VerifyReport) -> list[str]:
    """A joint model's heads: each head's figure and its drop [95% CI], per model."""
    if not report.gated:
        return []
    rows = [["model"] + [k.replace("_", "-") for k in report.gated]]
    for m in report.models:
        cells = []
        for k in report.gated:
            d = report.drop(m, k)
            cells.append(f"{report.score(m, k):.4f}" + (
                f" {d.points:+.2f} [{d.ci95[0]:+.2f}, {d.ci95[1]:+.2f}]" if d else ""))
        rows.append([m.name] + cells)
    return _table(rows) + [""]


def render(report: VerifyReport) -> str:
    """The terminal tables: accuracy, parity, latency, gates."""
    ref, models = report.reference, report.models
    lines = [f"verify: {report.data.examples} examples of {report.data.path}; "
             f"reference {ref.name}", ""]
    metric = report.metric
    extra = [k for k in (report.secondary,) if k and k != metric and k in ref.metrics]
    rows = [["model", "kind", "prec", "MB", metric.replace("_", "-")]
            + [k.replace("_", "-") for k in extra] + ["drop pts [95% CI]", "flips"]]
    for m in models:
        d = report.drop(m)
        rows.append([m.name, m.kind, str(m.precision), f"{(m.size_bytes or 0) / 2**20:.1f}",
                     f"{report.score(m):.4f}"]
                    + [f"{report.score(m, k):.4f}" for k in extra]
                    + [f"{d.points:+.2f} [{d.ci95[0]:+.2f}, {d.ci95[1]:+.2f}]" if d
                       else "(reference)",
                       f"{m.accuracy_drop['flip_rate']:.2%}" if d else ""])
    lines += _table(rows) + [""]
    lines += _gated_table(report)
    par = [["model", "against", "output", "max |diff|", "max rel", "nan/inf", "top-1 agree",
            "gate"]]
    for m in report.candidates:
        p = m.parity
        if p is None or not p.applies:
            continue
        for out, s in p.outputs.items():
            if "max_abs_diff" not in s:  # a shape mismatch: the failure line says which
                par.append([m.name, str(p.against), out, "shape differs", "", "", "", "FAIL"])
                continue
            par.append([m.name, str(p.against), out, f"{s['max_abs_diff']:.2e}",
                        f"{s['max_rel_diff']:.2e}", f"{s['nan']}/{s['inf']}",
                        "" if s.get("top1_agreement") is None else f"{s['top1_agreement']:.4f}",
                        "pass" if p.passed else "FAIL"])
    if len(par) > 1:
        lines += _table(par) + [""]
    if ref.latency:
        lat = [["model", "batch", "p50 ms [95% CI]", "p90 ms", "p99 ms", "items/s",
                "vs workload", "tokenize p50"]]
        for m in models:
            for b, f in (m.latency or {}).items():
                lat.append([m.name, b.removeprefix("batch"),
                            f"{f.p50_ms:.3f} [{f.p50_ci_ms[0]:.3f}, {f.p50_ci_ms[1]:.3f}]",
                            f"{f.p90_ms:.3f}", f"{f.p99_ms:.3f}", f"{f.throughput_per_s:.1f}",
                            f"{f.relative_p50:.3f}", f"{f.tokenize['p50_ms']:.3f}"])
        env = report.env
        lines += _table(lat) + [f"  threads {env.threads}, {env.provider}, "
                                f"{env.machine.get('cpu')}", ""]
    gate = report.latency_gate
    if gate:
        g = [["model", "batch", "baseline p50", "now p50", "change (relative)", "gate"]]
        for r in gate.rows:
            g.append([r.model, r.batch.removeprefix("batch"), f"{r.baseline_p50_ms:.3f}",
                      f"{r.p50_ms:.3f}", f"{100 * r.change:+.1f}%",
                      "pass" if r.passed else "FAIL"])
        lines += _table(g) + [f"  allowed: +{100 * gate.threshold:.0f}%", ""]
    if report.passed:
        lines.append("all gates passed")
    else:
        lines += [f"FAILED {f.gate}: {f.message}" for f in report.failures]
    return "\n".join(lines)


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    out.insert(1, "  ".join("-" * w for w in widths))
    return out


def plan(section, w) -> list[dict]:
    """The pipeline step (a recipe's `verify:`): the student and every export variant
    against the teacher, on the recipe's eval data."""
    from ..records.references import OnnxModel, Student, Teacher, Verification

    student = w.newest(Student)
    candidates = ([f"student={student.folder}"] if student else []) + [
        f"onnx-{m.variant}={m.folder}" for m in w.all(OnnxModel)]
    teacher = w.model_of(Teacher)
    settings = section.model_dump()
    for k in ("baseline", "update_baseline"):
        if settings.get(k):
            settings[k] = w.path(str(settings[k]))
    # the reference's predictions kept under the run's teacher cache unless the recipe
    # names a place: a variant's run (--reuse-from, another student) reads them instead of
    # scoring the teacher again; where they are is no part of the step's key (RUN_CONTROL)
    # (a folder of their own: --reuse-from copies a shared folder's files, and distill's
    # teacher outputs there may be gigabytes a variant's verify does not read)
    settings["reference_cache"] = (w.path(str(settings["reference_cache"]))
                                   if settings.get("reference_cache")
                                   else w.teacher_cache / "verify")
    out = w.root / "verify"
    config = settings | w.columns() | dict(
        task=w.recipe.task, reference=teacher, candidate=candidates, data=w.files["eval"],
        max_length=w.recipe.data.max_length, out=out / VerifyReport.FILE)
    made = Verification(folder=out, file=out / VerifyReport.FILE)
    return [{"label": "verify", "config": config, "folder": out, "makes": [made], "inputs": {
        "reference": teacher, "eval": w.files["eval"], "baseline": settings.get("baseline")}
        | {f"candidate:{c.split('=')[0]}": c.split("=", 1)[1] for c in candidates},
        "shared": [settings["reference_cache"]]}]


def run_step(cfg: VerifyConfig) -> None:
    """As a pipeline step: verify.json in an artifact folder like every step's, then the
    gates (a failed gate still leaves the evidence)."""
    from ..artifacts import OutputFolder, write_manifest

    final = Path(cfg.out).parent
    folder = OutputFolder(final, overwrite=True)
    folder.prepare()
    cfg = cfg.model_copy(update={"out": folder.work / VerifyReport.FILE})
    report = run(cfg)
    write_manifest(folder.work, "verify-report", cfg.model_dump(mode="json"),
                   {"passed": report.passed, "failures": len(report.failures)},
                   parents={"reference": cfg.reference} | {
                       c.name: c.path for c in report.candidates},
                   packages=("torch", "transformers", "onnxruntime"), task=report.task)
    folder.commit()
    check(report, final / VerifyReport.FILE)
