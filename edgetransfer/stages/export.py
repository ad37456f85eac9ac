"""Stage `export`: a checkpoint -> the fastest ONNX model that still holds its task metric.

Steps: optimum export for the task's head (fp32, dynamic axes) -> parity gate ->
onnxruntime transformer fusions (and the rewrites the task allows) -> parity gate ->
quantization (int8 dynamic, int8 static QDQ, fp16) -> parity gate (and the task's primary
metric on --eval-data) -> optional .ort. `--quantize auto` builds each candidate, measures
the metric and batch-1 latency, and keeps the fastest within --max-accuracy-drop.

Output folder: model.onnx (and model.ort + required_operators.config), tokenizer files,
config.json with labels, export.json (task, opset, quantization, parity, sizes, versions,
every auto candidate) and artifact.json.

This module orchestrates; the work is elsewhere: convert/variant.py (fusing, building one
variant, timing it), convert/auto_choice.py (`auto`), convert/vocab_pruning.py
(--prune-vocab), convert/ort_format.py, measure/gates.py (the parity and metric gates and
their summary) and records/export_report.py (export.json).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from .. import paths, tasks
from ..artifacts import MANIFEST, OutputFolder, fingerprint, versions, write_manifest
from ..bundle.runtime import fixed_shapes
from ..convert import (
    accelerators,
    auto_choice,
    npu_export,
    npu_quantize,
    onnx_export,
    ort_format,
    quantize,
    rewrites,
    vocab_pruning,
)
from ..convert import variant as one_variant

# (by name: the field `quantize` hides the module inside the config's class body)
from ..convert.quantize import CALIBRATION, DEFAULT_TARGET
from ..convert.quantize import CHOICES as QUANTIZE_CHOICES
from ..convert.quantize import TARGETS as CPU_TARGETS
from ..errors import ConfigError, ModelError
from ..measure import coverage, floor, gates, parity, scoring, shipped
from ..modeling import backbones
from ..options import MAX_THREADS, ColumnOptions, FloorOption, TaskOption
from ..records import ExportReport
from ..untrusted import shorten

log = logging.getLogger(__name__)

# The command's --help (edgetransfer.cli makes the command from the registry).
HELP = """Export a checkpoint to ONNX: fusions, int8/fp16 quantization, parity-gated.

\b
Examples:
  edgetransfer export --model models/demo/student --quantize int8-dynamic \\
      --out models/demo/onnx
  edgetransfer export --model models/demo/student --quantize int8-static \\
      --calibration-data recipes/data/intents/train.jsonl --out models/demo/onnx-static
  edgetransfer export --model models/demo/student --quantize auto \\
      --max-accuracy-drop 0.5 --eval-data recipes/data/intents/validation.jsonl \\
      --out models/demo/onnx-auto

Output parity with PyTorch is a gate: a model that drifts beyond tolerance is an error
(exit 3) and nothing is written under --out.
"""


class ExportConfig(TaskOption, ColumnOptions, FloorOption):
    """Settings of `edgetransfer export`; each description is the CLI help."""

    model: str = Field(description="The checkpoint to export: a `finetune` or `distill` output "
                       "(any HF model with a task head).")
    out: Path = Field(description="Output folder for model.onnx and its records.")
    quantize: Literal[QUANTIZE_CHOICES] = Field(
        "int8", description="none: fp32 (fused); int8: the int8 that suits the task's models "
        "(transformers: int8-dynamic; CNNs: int8-static); int8-dynamic: int8 weights, "
        "activations quantized at run time (no calibration); int8-static: QDQ calibrated on "
        "--calibration-data; int4: 4-bit weight-only blocks for every MatMul and embedding "
        "table (transformers; the smallest); fp16: for GPU targets; auto: the fastest "
        "candidate within --max-accuracy-drop on --eval-data.")
    int4_embeddings: bool = Field(False, description="Store the embedding tables in 4-bit "
                                  "blocks (GatherBlockQuantized) while the layers get "
                                  "--quantize's int8: most of a small student's bytes, at "
                                  "half of int8's size.")
    target: Literal[tuple(CPU_TARGETS)] = Field(
        DEFAULT_TARGET, description="CPU family the int8 model is tuned for (reduce_range "
        "on AVX2 without VNNI; signed activations on ARM).")
    per_channel: bool | None = Field(None, description="Per-channel int8 weight scales "
                                     "[default: by --target].")
    opset: int | None = Field(None, description="ONNX opset [default: 18, optimum's "
                              "recommended minimum for BERT-family models (onnxruntime >= "
                              "1.14); with --for, the accelerator's].")
    fuse: bool = Field(True, description="Apply onnxruntime's transformer fusions (attention, "
                       "layer norm, GELU) before quantizing.")
    first_token_last_layer: bool = Field(True, description="After fusion, let the last "
                                         "layer's feed-forward part run for the first token "
                                         "only, the one the head reads (exact; BERT-family "
                                         "heads).")
    calibration_data: str | None = Field(None, description="Texts to calibrate int8-static "
                                         "on (CSV/TSV/JSONL/Parquet, labels not needed).")
    calibration_method: Literal[CALIBRATION] = Field(
        "minmax", description="Calibration of activation ranges for int8-static.")
    calibration_samples: int = Field(256, ge=1, description="Calibration examples used at "
                                     "most (a seeded sample of --calibration-data).")
    eval_data: str | None = Field(None, description="Labelled data for the task-metric check "
                                  "(needed by --quantize auto).")
    max_accuracy_drop: float = Field(0.5, ge=0, description="How much of the task's primary "
                                     "metric a quantized model may lose against the fp32 ONNX "
                                     "model on --eval-data, in points (of accuracy, or "
                                     "entity F1 for token classification).")
    atol: float | None = Field(None, gt=0, description="Override the parity tolerance on "
                               "logits (fp32 1e-4, fp16 5e-2).")
    min_agreement: float | None = Field(None, gt=0, le=1, description="Override the least "
                                        "top-1 agreement with PyTorch (fp32 1, fp16 0.99, int8 "
                                        "0.95 on --eval-data's rows, else on the calibration "
                                        "sample's, 0.75 on the probe rows alone).")
    ort_format: bool = Field(False, description="Also write model.ort and "
                             "required_operators.config for onnxruntime's minimal/mobile "
                             "builds.")
    prune_vocab: str | None = Field(None, description="Prune the vocabulary to the tokens "
                                    "these texts use (comma-separated CSV/TSV/JSONL/Parquet "
                                    "files: training plus unlabelled text); characters and "
                                    "special tokens are always kept, so any word still "
                                    "tokenizes. Judged on --eval-data, text the corpus never "
                                    "saw (WordPiece tokenizers). In a recipe, `data` "
                                    "means its training plus unlabelled files.")
    min_count: int = Field(1, ge=1, description="--prune-vocab: keep the tokens the corpus "
                           "uses at least this many times.")
    max_length: int = Field(128, ge=8, description="Token limit for eval and calibration texts.")
    threads: int = Field(1, ge=1, le=MAX_THREADS, description="onnxruntime intra-op threads "
                         "for the latency "
                         "measurements (1: the edge-device case, and stable figures).")
    accelerator: Literal[accelerators.CHOICES] = Field(
        accelerators.CPU, json_schema_extra={"flag": "--for"},
        description="The device's accelerator: cpu (fused, dynamic shapes), or an NPU "
        "profile: nnapi (Android), coreml (iOS/macOS MLProgram), qnn (Snapdragon HTP): fixed "
        "shapes, standard operators only, the accelerator's quantization, and its coverage "
        "checked into export.json (see README \"Exports for NPUs\").")
    sequence_length: int | None = Field(None, ge=8, description="--for an NPU: the fixed "
                                        "token length of a text model (its bucket; the "
                                        "runtime pads to it, truncates or windows to it) "
                                        "[default: --max-length].")
    activation_bits: int | None = Field(None, description="--for qnn: QDQ activations in 16 "
                                        "bits (default; with 8-bit weights) or 8.")
    qnn_htp_arch: int = Field(accelerators.QNN_HTP_ARCH, description="--for qnn: the HTP "
                              "architecture the context binary is compiled for (73: "
                              "Snapdragon 8 Gen 2).")
    qnn_soc_model: int = Field(accelerators.QNN_SOC_MODEL, description="--for qnn: the SoC "
                               "model number it is compiled for.")
    qnn_simulator_rows: int = Field(200, ge=1, description="--for qnn: the eval rows the HTP "
                                    "simulator is gated and scored on (about a second a call "
                                    "on x86 for a 3-layer MiniLM at 128 tokens).")
    allow_pickle: bool = Field(False, description="Allow pickle weights (weights-only load).")
    overwrite: bool = Field(False, description="Replace the results already in --out.")


def check_settings(cfg: ExportConfig) -> None:
    """The settings alone, before anything is read or loaded (under `run`: before the
    recipe's first step)."""
    if cfg.quantize == "auto" and not cfg.eval_data:
        raise ConfigError("--quantize auto needs --eval-data to measure accuracy on")
    if cfg.opset is not None and cfg.opset < onnx_export.MIN_OPSET:  # (the upper bound
        # asks torch: checked in run)
        onnx_export.check_opset(cfg.opset)
    _check_accelerator(cfg)
    if cfg.prune_vocab is None:
        return
    corpus = corpus_files(cfg.prune_vocab)
    if not corpus:
        raise ConfigError(f"--prune-vocab {shorten(cfg.prune_vocab)}: names no file; give the "
                          f"corpus as comma-separated data files (e.g. train.jsonl,"
                          f"unlabeled.jsonl)")
    if not cfg.eval_data:
        raise ConfigError("--prune-vocab needs --eval-data: text the corpus never saw, to judge "
                          "the pruned model against the unpruned one")
    also = paths.find_same(cfg.eval_data, corpus)
    if also is not None:
        spelt = "" if str(also) == cfg.eval_data else f" (as {cfg.eval_data})"
        raise ConfigError(f"--prune-vocab: {also} is also --eval-data{spelt}; the pruned "
                          f"model is judged on text the corpus never saw, so leave it out")
    twice = paths.first_repeat(corpus)
    if twice is not None:
        raise ConfigError(f"--prune-vocab: {twice[0]} and {twice[1]} are the same file; give "
                          f"it once (its tokens would be counted twice against --min-count)")


def _check_accelerator(cfg: ExportConfig) -> None:
    """--for's combinations with the other settings."""
    prof = accelerators.profile(cfg.accelerator)
    npu_only = [f for f in ("sequence_length", "activation_bits") if getattr(cfg, f) is not None]
    if prof is None:
        if npu_only:
            raise ConfigError(f"--{npu_only[0].replace('_', '-')} is for an NPU export; add "
                              f"--for nnapi, coreml or qnn")
        return
    if cfg.activation_bits is not None and (prof.name != "qnn"
                                            or cfg.activation_bits not in (8, 16)):
        raise ConfigError(f"--activation-bits {cfg.activation_bits}: give 16 or 8, with --for "
                          f"qnn (nnapi's activations are 8-bit)")
    for flag, bad in (("--quantize auto", cfg.quantize == "auto"),
                      ("--ort-format", cfg.ort_format),
                      ("--int4-embeddings", cfg.int4_embeddings)):
        if bad:
            raise ConfigError(f"{flag} does not go with --for {prof.name}: the NPU profile "
                              f"fixes its own graph and quantization")
    npu_export.check_mode(cfg.quantize, prof)


def corpus_files(prune_vocab: str | None) -> list[str]:
    """--prune-vocab's files, in order (empty names dropped)."""
    return [f.strip() for f in (prune_vocab or "").split(",") if f.strip()]


def run(cfg: ExportConfig) -> Path:
    check_settings(cfg)
    if not cfg.prune_vocab:
        return _run(cfg)
    import tempfile

    # the pruned checkpoint is scratch: the export folder records how it was made
    with tempfile.TemporaryDirectory(prefix="edgetransfer-vocab-") as scratch:
        return _run(cfg, Path(scratch))


def _run(cfg: ExportConfig, scratch: Path | None = None) -> Path:
    started = time.perf_counter()
    corpus = corpus_files(cfg.prune_vocab)
    bb, task, cfg = _resolve(cfg)
    # --out checked now, before any data is read or model loaded
    out = OutputFolder(cfg.out, overwrite=cfg.overwrite, inputs=(Path(bb.source),)
                       + tuple(Path(p) for p in (cfg.eval_data, cfg.calibration_data, *corpus)
                               if p))
    out.check()
    labels = bb.head_labels(task)
    evals, calib = _read_data(cfg, task, labels)
    pruning = None
    if corpus:
        bb, pruning = vocab_pruning.prune(vocab_pruning.PruneSettings.model_validate(cfg), cfg,
                                          bb, task, corpus, evals, scratch)
    job = _prepare(cfg, task, bb, labels, evals, calib, pruning, started)
    out.prepare()
    try:
        report = _export_into(out.work, job)
    except BaseException:
        # export has nothing to resume: a failed or interrupted build leaves no trace
        shutil.rmtree(out.work, ignore_errors=True)
        raise
    final_dir = out.commit()
    _say(report, job, final_dir)
    return final_dir


def _resolve(cfg: ExportConfig) -> tuple:
    """(the checkpoint's backbone, its task, the settings with --quantize as the task takes
    it), each checked before anything is read or loaded."""
    prof = accelerators.profile(cfg.accelerator)
    cfg = cfg.model_copy(update={"opset": cfg.opset or (prof.opset if prof else
                                                        onnx_export.DEFAULT_OPSET)})
    onnx_export.check_opset(cfg.opset)
    bb = backbones.resolve(cfg.model, cfg.allow_pickle)
    if not bb.local:
        raise ModelError(f"--model {cfg.model}: export takes a local checkpoint folder")
    floor.check(cfg.model, cfg.allow_degenerate, "export")  # (a model at chance: refused)
    backbones.check_max_length(bb, cfg.max_length)
    task = tasks.resolve(cfg.task, config=bb.config, folder=Path(bb.source),
                         where=f"--model {cfg.model}")
    backbones.require_head(bb, task)
    if prof is None:
        return bb, task, cfg.model_copy(update={"quantize": _mode_for(cfg, task)})
    if (cfg.quantize in ("int8", "int8-static") and not cfg.calibration_data
            and "int8-static" in prof.quantize):
        raise ConfigError(f"--for {prof.name} --quantize {cfg.quantize} needs "
                          f"--calibration-data (static QDQ, calibrated)")
    # (the bucket: --max-length unless given)
    return bb, task, cfg.model_copy(update={
        "quantize": npu_export.check_mode(cfg.quantize, prof),
        "sequence_length": cfg.sequence_length or cfg.max_length,
        "activation_bits": cfg.activation_bits or prof.activation_bits,
        "fuse": False, "first_token_last_layer": False})


def _mode_for(cfg: ExportConfig, task) -> str:
    """The quantization mode `--quantize` means for this task (int8: the task's own), its
    combinations with the other options checked."""
    mode = task.quantize_modes[0] if cfg.quantize == "int8" else cfg.quantize
    if mode not in ("none", "auto", *task.quantize_modes):
        raise ConfigError(f"--quantize {mode}: not for {task.name} models; use "
                          f"{', '.join(task.quantize_modes)}, none or auto (see "
                          f"docs/tasks.md)")
    # (auto for a task whose every int8 calibrates: without data, nothing to try but fp32)
    static_only = auto_choice.candidate_modes(task.quantize_modes, calibrated=False) == ["none"]
    if not cfg.calibration_data and (quantize.calibrates(mode)
                                     or mode == "auto" and static_only):
        raise ConfigError(f"--quantize {cfg.quantize}" + (f" ({mode} for {task.name})" if
                          mode != cfg.quantize else f" for {task.name} (its int8 is static)"
                          if mode == "auto" else "") + " needs --calibration-data")
    if cfg.int4_embeddings and quantize.precision_of(mode) != "int8":
        raise ConfigError(f"--int4-embeddings goes with an int8 --quantize (not {mode}); "
                          f"--quantize int4 puts every weight in 4 bits")
    if cfg.calibration_data and not quantize.may_calibrate(cfg.quantize):
        log.warning("--calibration-data: not read; --quantize %s does not calibrate (int8-static "
                    "and auto do)", cfg.quantize)
    return mode


def _read_data(cfg: ExportConfig, task, labels):
    """(the eval data or None, the calibration sample or None; read only where used)."""
    evals = task.read_eval(cfg.eval_data, labels, cfg) if cfg.eval_data else None
    calib = (task.read_eval(cfg.calibration_data, None, cfg) if cfg.calibration_data
             and quantize.may_calibrate(cfg.quantize) else None)
    if calib is not None and len(calib) > cfg.calibration_samples:
        # a seeded sample of the whole file: its first rows may all be one class (an image
        # folder is read class by class)
        calib = calib.shuffle(seed=0).select(range(cfg.calibration_samples))
    return evals, calib


def _say(report: ExportReport, job: _Job, final_dir: Path) -> None:
    """What each gate compared, and what was written."""
    log.info("gates (export.json \"gates\"):\n%s", "\n".join(
        f"  {line}" for line in gates.gate_lines(report.gates)))
    warning = gates.probe_only_warning(report.gates, job.judge.rows["probe"], job.task)
    if warning:
        log.warning("%s", warning)
    value = report.score()
    log.info("wrote %s  (%s, %.1f MB, p50 %.2f ms at batch 1%s)", final_dir / "model.onnx",
             report.quantization.mode, report.size_bytes / 2**20, report.latency_batch1.p50_ms,
             f", {report.metric} {value:.4f}" if value is not None else "")


@dataclass
class _Job:
    """What every step of one export reads: settings, task, checkpoint, data, its judge."""

    cfg: ExportConfig
    task: Any
    bb: Any  # the checkpoint exported (the pruned one with --prune-vocab)
    hf_config: Any  # its transformers config (what the fusions read)
    reference: Any  # the PyTorch model the ONNX graphs are gated against
    preprocessor: Any
    evals: Any  # --eval-data read, or None
    calib: Any  # the calibration sample, or None
    pruning: dict | None  # export.json "vocab" with --prune-vocab
    started: float
    judge: gates.Judge | None = None
    fp32_graph: Path | None = None  # the fp32 graph quantized from (set by _export_into)


def _prepare(cfg, task, bb, labels, evals, calib, pruning, started) -> _Job:
    """The checkpoint loaded and checked, and the judge of its ONNX graphs."""
    from transformers import AutoConfig

    preprocessor = task.load_preprocessor(bb)
    hf_config = AutoConfig.from_pretrained(bb.source)
    reference = backbones.load_trained(bb, task, allow_pickle=cfg.allow_pickle)
    backbones.check_vocab(reference, preprocessor, cfg.model)
    _check_finite_weights(reference, cfg.model)
    job = _Job(cfg, task, bb, hf_config, reference, preprocessor, evals, calib, pruning,
               started)
    job.judge = _judge(job, labels)
    return job


def _judge(job: _Job, labels) -> gates.Judge:
    """The parity inputs (shape-varied probes, plus real rows: int8 agreement is only
    meaningful over many examples), the reference's outputs on them, and the eval batches
    the metric is scored on.

    The real rows are --eval-data's; without it, the calibration sample's where one was read
    (int8-static, auto): agreement needs no labels, and without real rows 8 probes decide,
    whose pictures (or sentences) may be unlike the data. The sample is the one calibrated
    on, so its agreement is in-sample for the activation ranges; it judges quantization
    noise, not generalisation, which --eval-data's metric gate is for."""
    cfg, task, evals = job.cfg, job.task, job.evals
    real, kind = (evals, "eval") if evals is not None else (job.calib, "calibration")
    probe_rows = [real[i] for i in range(min(8, len(real)))] if real is not None else None
    probes = parity.probe_batches(task, job.preprocessor, probe_rows, cfg.max_length)
    real_batches = (scoring.batches(task, job.preprocessor, real, cfg.max_length)
                    if real is not None else [])
    shaped = len(probes)
    probes = probes + [f for f, _ in real_batches]
    torch_run = shipped.torch_run(job.reference, task)
    raw = [torch_run(b) for b in probes]
    # what the parity gates compare, in examples (a sentence, an image), for their summary
    examples = [len(task.per_example(r[task.outputs[0]], b)) for r, b in zip(raw, probes)]
    rows = {"probe": sum(examples[:shaped]), "eval": 0, "calibration": 0}
    rows[kind] = sum(examples[shaped:])
    return gates.Judge(task, labels, gates.GateSettings.model_validate(cfg), probes,
                       [parity.named_positions(task, r, b) for r, b in zip(raw, probes)],
                       real_batches if evals is not None else None, rows,
                       shipped.Scorer(task, evals, labels, cfg.max_length, Path(job.bb.source),
                                      job.preprocessor, cfg.max_image_pixels)
                       if evals is not None else None)


def _check_finite_weights(model, name: str) -> None:
    """A checkpoint with NaN or infinite weights is refused, not exported."""
    import torch

    bad = [n for n, p in model.named_parameters() if not torch.isfinite(p).all()]
    if bad:
        raise ModelError(f"--model {name}: weight {bad[0]} holds NaN or infinite values "
                         f"({len(bad)} tensor(s) in all); the checkpoint is broken (a diverged "
                         f"training run?): train it again")


def _export_into(work: Path, job: _Job) -> ExportReport:
    """Everything written into the partial folder: the model, export.json, artifact.json."""
    cfg, task = job.cfg, job.task
    tmp = work / ".build"
    tmp.mkdir()
    record, fp32 = _fp32_graph(work, tmp, job)
    job.fp32_graph = fp32
    feeds = (scoring.singles(task, job.preprocessor, job.calib, cfg.max_length,
                             cfg.calibration_samples) if job.calib is not None else [])
    singles = _singles(job)
    fp32_value = None
    if job.judge.eval_batches is not None:
        fp32_value = job.judge.score(fp32)
        record[f"torch_{task.primary}"] = job.judge.scorer.torch(job.reference)
        record[f"fp32_onnx_{task.primary}"] = fp32_value
    final, settings = _quantized(job, tmp, fp32, feeds, singles, fp32_value, record)
    return _finish(work, job, final, settings, singles, fp32_value, record,
                   job.judge.figures(final, fp32))


def _fp32_graph(work: Path, tmp: Path, job: _Job) -> tuple[dict, Path]:
    """(export.json's first keys, the fp32 graph the quantizers start from): optimum's
    export of the checkpoint, gated, then fused (each rewrite gated)."""
    cfg, task = job.cfg, job.task
    log.info("exporting %s to ONNX (opset %d, optimum task %s)", cfg.model, cfg.opset,
             task.optimum_task)
    from ..modeling import architectures

    form = architectures.export_form(job.reference)
    # (a task's own OnnxConfig traces the loaded model: its outputs are the task's)
    own = task.onnx_config is not None
    raw = onnx_export.export(Path(job.bb.source), work, cfg.opset, task.optimum_task,
                             model=form if form is not job.reference or own else None,
                             onnx_config=task.onnx_config)
    shutil.move(raw, tmp / "exported.onnx")
    # (verify follows "source" only to the checkpoint whose fingerprint this is: an
    # export folder handed over by someone else cannot point it at another folder)
    record: dict = {"task": task.name, "metric": task.primary, "opset": cfg.opset,
                    "source": cfg.model, "source_fingerprint": (
                        fingerprint(cfg.model) if (Path(cfg.model) / MANIFEST).is_file()
                        else None),
                    "parity": {}}
    if job.pruning:
        record["vocab"] = job.pruning
    record["parity"]["export"] = job.judge.gate(tmp / "exported.onnx", "fp32")
    prof = accelerators.profile(cfg.accelerator)
    if prof is not None:
        record["accelerator"] = npu_export.graph(
            tmp / "exported.onnx", tmp / "npu.onnx", prof, job.judge.probes[0],
            cfg.sequence_length, cfg.opset)
        record["parity"]["fixed_shapes"] = job.judge.gate(tmp / "npu.onnx",
                                                          prof.graph_precision)
        return record, tmp / "npu.onnx"
    fused = one_variant.fused(tmp, job.hf_config,
                              one_variant.FuseSettings.model_validate(cfg),
                              rewrites.FIRST_TOKEN in task.rewrites, job.judge.gate)
    if fused.fusions is not None:
        record["fusions"] = fused.fusions
    if fused.first_token_last_layer:
        record["first_token_last_layer"] = True
    if fused.parity is not None:
        record["parity"]["fused"] = fused.parity
    return record, fused.path


def _quantized(job: _Job, tmp: Path, fp32: Path, feeds, singles, fp32_value,
               record: dict) -> tuple[Path, dict]:
    """(the final model, its quantizer's settings): --quantize auto's choice, else the one
    mode asked for, gated (and with --eval-data scored, its drop checked)."""
    cfg, metric, judge = job.cfg, job.task.primary, job.judge
    if cfg.quantize == "auto":
        chosen, candidates = auto_choice.choose(
            job.task, judge, tmp, fp32, feeds, singles, fp32_value,
            auto_choice.AutoSettings.model_validate(cfg))
        record["auto"] = {"candidates": candidates, "chosen": chosen["name"]}
        record["parity"]["final"] = chosen["parity"]
        record[metric] = chosen[metric]
        return chosen["path"], chosen["settings"]
    prof = accelerators.profile(cfg.accelerator)
    if prof is not None and cfg.quantize == "int8-static":  # (the accelerator's own QDQ)
        adapter = judge.session(fp32)  # (the calibration feeds as the fixed graph takes them)
        final = tmp / f"{prof.name}-int8-static.onnx"
        settings = npu_quantize.qdq(fp32, final, prof, [adapter.model_feeds(f) for f in feeds],
                                    cfg.activation_bits, cfg.calibration_method)
    else:  # (an NPU profile's none and fp16 are the CPU's: the graph as it is, or halved)
        final, settings = one_variant.build(cfg.quantize, fp32, tmp, feeds,
                                            one_variant.BuildSettings.model_validate(cfg))
    precision = quantize.precision_of(cfg.quantize)
    record["parity"]["final"] = judge.gate(final, precision)
    if judge.eval_batches is not None:
        record[metric] = judge.score(final, precision)
        judge.check_drop(record[metric], fp32_value, cfg.quantize, judge.figures(final, fp32))
    return final, settings


def _finish(work: Path, job: _Job, final: Path, settings: dict, singles, fp32_value,
            record: dict, figures: dict) -> ExportReport:
    """model.onnx (and model.ort) in place, timed here, summed up; export.json and
    artifact.json written."""
    cfg, metric = job.cfg, job.task.primary
    record["quantization"] = settings
    precision = quantize.precision_of(settings.get("mode", cfg.quantize))  # (auto's pick too)
    if metric in record:
        record[f"{metric}_batch_size"] = scoring.scoring_batch_size(precision)
    shutil.move(final, work / "model.onnx")
    if (final.parent / fixed_shapes.FRONT).is_file():  # (--for coreml: its lookups' model)
        shutil.move(final.parent / fixed_shapes.FRONT, work / fixed_shapes.FRONT)
    if cfg.ort_format:
        # the bundled runtime runs model.ort when it is there: it passes the same gate
        record["ort_format"] = ort_format.convert(work / "model.onnx", work, cfg.target)
        record["parity"]["ort"] = job.judge.gate(work / "model.ort", precision)
    if cfg.accelerator != accelerators.CPU:
        record["accelerator"] |= _accelerator_checks(work, job, precision, record["parity"])
    shutil.rmtree(work / ".build")
    record["latency_batch1"], record["host"] = one_variant.timed_here(
        work / "model.onnx", singles, cfg.threads, cfg.target, job.evals is not None, precision)
    # (with --for coreml, the lookups' model is part of what ships)
    record["size_bytes"] = sum((work / f).stat().st_size for f in ("model.onnx",
                               fixed_shapes.FRONT) if (work / f).is_file())
    record["gates"] = gates.gate_summary(
        job.judge, record["parity"], record.get(metric), fp32_value, job.pruning,
        ExportConfig.model_fields["max_accuracy_drop"].default, figures)
    record["versions"] = versions(*PACKAGES)
    record["wall_time_s"] = round(time.perf_counter() - job.started, 1)
    report = _write_report(work, record)
    write_manifest(work, "onnx-model", json.loads(cfg.model_dump_json()),
                   {metric: report.score(), "size_bytes": report.size_bytes,
                    "p50_ms_batch1": report.latency_batch1.p50_ms}
                   # (the source's floor verdict, carried: verify and package read it here)
                   | ({"floor": f} if (f := floor.recorded(cfg.model)) else {}),
                   parents={"model": cfg.model}, task=job.task.name, packages=PACKAGES)
    return report


def _accelerator_checks(work: Path, job: _Job, precision: str, parity_record: dict) -> dict:
    """export.json "accelerator": the coverage of the final model, and (QNN, where
    onnxruntime-qnn is installed) the HTP simulator's run of it through the same gates: its
    parity with PyTorch (parity "qnn_simulator"), and the task's metric as HTP's arithmetic
    gives it, held to --max-accuracy-drop against the fp32 ONNX model."""
    cfg, prof = job.cfg, accelerators.profile(job.cfg.accelerator)
    context = work / "qnn-context"  # (the compiled HTP context binary, kept with the model)
    record, simulator = npu_export.coverage_of(work / "model.onnx", prof, context,
                                               (cfg.qnn_htp_arch, cfg.qnn_soc_model))
    for line in coverage.lines(record):
        log.info("coverage: %s", line)
    out = {"coverage": record}
    if simulator is not None:
        out["simulator"] = _simulated(job, fixed_shapes.wrap(simulator), work / "model.onnx",
                                      precision, parity_record)
    return out


def _simulated(job: _Job, session, final: Path, precision: str, parity_record: dict) -> dict:
    """The QNN HTP simulator's run of the final model (about a second a call on x86: on the
    probes and the first --qnn-simulator-rows eval rows): its parity gate, and its metric
    held to --max-accuracy-drop against the fp32 graph's on the same rows."""
    import dataclasses

    judge, rows = job.judge, job.cfg.qnn_simulator_rows
    shaped = len(judge.probes) - len(judge.eval_batches or [])
    batches = shaped + -(-rows // scoring.SCORE_BATCH)
    log.info("running the QNN HTP simulator on the parity probes and %d eval rows", rows)
    held = accelerators.profile(job.cfg.accelerator).held_to(precision)
    parity_record["qnn_simulator"] = judge.gate(final, held, session, batches)
    out = {"rows": rows}
    if judge.scorer is not None:
        scorer = dataclasses.replace(judge.scorer, rows=judge.scorer.rows.select(
            range(min(rows, len(judge.scorer.rows)))))
        out["rows"] = len(scorer.rows)
        value, fp32_value = (scorer.onnx(session, precision),
                             scorer.onnx(judge.session(job.fp32_graph)))
        out |= {job.task.primary: value, f"fp32_onnx_{job.task.primary}": fp32_value}
        judge.check_drop(value, fp32_value, "the QNN HTP simulator's")
    return out


# what an export's figures depend on (export.json "versions", artifact.json's packages)
PACKAGES = ("torch", "transformers", "optimum-onnx", "onnx", "onnxruntime")


def _write_report(work: Path, record: dict) -> ExportReport:
    """export.json, through its record (typed, with its schema version)."""
    report = ExportReport(**record)
    report.write(work / ExportReport.FILE)
    return report


def _singles(job: _Job) -> list[dict]:
    """Latency inputs: up to 64 rows of the eval data (else the probes), one at a time."""
    from datasets import Dataset

    rows = (job.evals if job.evals is not None
            else Dataset.from_list(list(job.task.probe_rows)))
    return scoring.singles(job.task, job.preprocessor, rows, job.cfg.max_length, 64)


def plan(variants, w) -> list[dict]:
    """The pipeline steps (a recipe's `export:` list): each variant of the newest model
    (the student, else the teacher), in its folder onnx-NAME."""
    from ..records.references import Checkpoint, OnnxModel

    source = w.model_of(Checkpoint)
    steps = []
    for variant in variants:
        name = variant_name(variant)
        out = w.root / f"onnx-{name}"
        settings = variant.model_dump(exclude={"name"})
        calibrate = quantize.may_calibrate(settings["quantize"])
        calibration = w.files["train"] if calibrate else None
        corpus = {}
        if settings.get("prune_vocab") == vocab_pruning.RECIPE_CORPUS:
            # the recipe's own text: training plus unlabelled (never the eval data)
            corpus = w.corpus()
            settings["prune_vocab"] = ",".join(corpus.values())
        config = settings | w.columns() | dict(
            task=w.recipe.task, model=source, out=out, eval_data=w.files["eval"],
            calibration_data=calibration, max_length=w.recipe.data.max_length,
            overwrite=True)
        steps.append({"label": out.name, "config": config,
                      "makes": [OnnxModel(folder=out, variant=name)], "inputs": {
                          "model": source, "eval": w.files["eval"],
                          "calibration": calibration} | corpus})
    return steps


def variant_name(variant) -> str:
    """A recipe variant's name: given, else its quantize mode (folder onnx-NAME)."""
    return variant.name or variant.quantize
