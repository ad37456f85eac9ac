"""Stage `export`: a checkpoint -> the fastest ONNX model that still holds its task metric.

Steps: optimum export for the task's head (fp32, dynamic axes) -> parity gate ->
onnxruntime transformer fusions (and the rewrites the task allows) -> parity gate ->
quantization (int8 dynamic, int8 static QDQ, fp16) -> parity gate (and the task's primary
metric on --eval-data) -> optional .ort. `--quantize auto` builds each candidate, measures
the metric and batch-1 latency, and keeps the fastest within --max-accuracy-drop.

Output folder: model.onnx (and model.ort + required_operators.config), tokenizer files,
config.json with labels, export.json (task, opset, quantization, parity, sizes, versions,
every auto candidate) and artifact.json.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Literal

from pydantic import Field

from .. import paths, tasks
from ..artifacts import MANIFEST, OutputFolder, fingerprint, versions, write_json, write_manifest
from ..convert import onnx_export, quantize, rewrites
from ..errors import CheckFailed, ConfigError, ModelError
from ..measure import floor, latency, parity, scoring
from ..modeling import backbones, heads
from ..options import MAX_THREADS, ColumnOptions, FloorOption, TaskOption
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
    quantize: Literal["none", "int8", "int8-dynamic", "int8-static", "int4", "fp16",
                      "auto"] = Field(
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
    target: Literal["x86-avx2", "x86-avx512-vnni", "arm64"] = Field(
        "x86-avx512-vnni", description="CPU family the int8 model is tuned for (reduce_range "
        "on AVX2 without VNNI; signed activations on ARM).")
    per_channel: bool | None = Field(None, description="Per-channel int8 weight scales "
                                     "[default: by --target].")
    opset: int = Field(onnx_export.DEFAULT_OPSET, description="ONNX opset (18: optimum's "
                       "recommended minimum for BERT-family models; onnxruntime >= 1.14).")
    fuse: bool = Field(True, description="Apply onnxruntime's transformer fusions (attention, "
                       "layer norm, GELU) before quantizing.")
    first_token_last_layer: bool = Field(True, description="After fusion, let the last "
                                         "layer's feed-forward part run for the first token "
                                         "only, the one the head reads (exact; BERT-family "
                                         "heads).")
    calibration_data: str | None = Field(None, description="Texts to calibrate int8-static "
                                         "on (CSV/TSV/JSONL/Parquet, labels not needed).")
    calibration_method: Literal["minmax", "entropy", "percentile"] = Field(
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
                                        "0.95 with --eval-data, 0.75 on the probe rows alone).")
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
    allow_pickle: bool = Field(False, description="Allow pickle weights (weights-only load).")
    overwrite: bool = Field(False, description="Replace the results already in --out.")


def check_settings(cfg: ExportConfig) -> None:
    """The settings alone, before anything is read or loaded (under `run`: before the
    recipe's first step)."""
    if cfg.quantize == "auto" and not cfg.eval_data:
        raise ConfigError("--quantize auto needs --eval-data to measure accuracy on")
    if cfg.opset < onnx_export.MIN_OPSET:  # (the upper bound asks torch: checked in run)
        onnx_export.check_opset(cfg.opset)
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
    onnx_export.check_opset(cfg.opset)
    bb = backbones.resolve(cfg.model, cfg.allow_pickle)
    if not bb.local:
        raise ModelError(f"--model {cfg.model}: export takes a local checkpoint folder")
    floor.check(cfg.model, cfg.allow_degenerate, "export")  # (a model at chance: refused)
    backbones.check_max_length(bb, cfg.max_length)
    task = tasks.resolve(cfg.task, config=bb.config, folder=Path(bb.source),
                         where=f"--model {cfg.model}")
    backbones.require_head(bb, task)
    mode = _mode_for(cfg, task)
    cfg = cfg.model_copy(update={"quantize": mode})
    # --out checked now, before any data is read or model loaded
    out = OutputFolder(cfg.out, overwrite=cfg.overwrite, inputs=(Path(bb.source),)
                       + tuple(Path(p) for p in (cfg.eval_data, cfg.calibration_data, *corpus)
                               if p))
    out.check()
    labels = bb.label_names
    evals, calib = _read_data(cfg, task, labels)

    import torch
    from transformers import AutoConfig

    pruning = None
    if corpus:
        bb, pruning = _prune_vocab(cfg, bb, task, corpus, evals, scratch)

    preprocessor = task.load_preprocessor(bb)
    config = AutoConfig.from_pretrained(bb.source)
    reference = backbones.load_trained(bb, task, allow_pickle=cfg.allow_pickle)
    backbones.check_vocab(reference, preprocessor, cfg.model)
    _check_finite_weights(reference, cfg.model)
    probe_rows = [evals[i] for i in range(min(8, len(evals)))] if evals is not None else None
    probes = parity.probe_batches(task, preprocessor, probe_rows, cfg.max_length)

    def torch_logits(batch):
        with torch.inference_mode():
            return reference(**{k: torch.from_numpy(v) for k, v in
                                scoring.inputs_only(task, batch).items()}).logits.numpy()

    eval_batches = (scoring.batches(task, preprocessor, evals, cfg.max_length)
                    if evals is not None else None)
    # the parity inputs: shape-varied probes, plus the eval data where given (int8 agreement
    # is only meaningful over many examples)
    shaped = len(probes)
    probes = probes + ([f for f, _ in eval_batches] if eval_batches else [])
    raw = [torch_logits(b) for b in probes]
    ref_outputs = [parity.positions(task, r, b) for r, b in zip(raw, probes)]
    job = _Job(cfg, task, labels, preprocessor, probes, ref_outputs, eval_batches)
    # what the parity gates compare, in examples (a sentence, an image), for their summary
    examples = [len(task.per_example(r, b)) for r, b in zip(raw, probes)]
    job.rows = {"probe": sum(examples[:shaped]), "eval": sum(examples[shaped:])}
    job.reference = reference
    job.pruning = pruning

    out.prepare()
    try:
        record, settings = _build_all(job, out.work, bb, config, evals, calib, torch_logits,
                                      started)
    except BaseException:
        # export has nothing to resume: a failed or interrupted build leaves no trace
        shutil.rmtree(out.work, ignore_errors=True)
        raise
    final_dir = out.commit()
    _say(record, settings, job, task, final_dir)
    return final_dir


def _mode_for(cfg: ExportConfig, task) -> str:
    """The quantization mode `--quantize` means for this task (int8: the task's own), its
    combinations with the other options checked."""
    mode = task.quantize_modes[0] if cfg.quantize == "int8" else cfg.quantize
    if mode not in ("none", "auto", *task.quantize_modes):
        raise ConfigError(f"--quantize {mode}: not for {task.name} models; use "
                          f"{', '.join(task.quantize_modes)}, none or auto (see "
                          f"docs/tasks.md)")
    static_only = "int8-dynamic" not in task.quantize_modes
    if not cfg.calibration_data and (mode == "int8-static" or mode == "auto" and static_only):
        raise ConfigError(f"--quantize {cfg.quantize}" + (f" ({mode} for {task.name})" if
                          mode != cfg.quantize else f" for {task.name} (its int8 is static)"
                          if mode == "auto" else "") + " needs --calibration-data")
    if cfg.int4_embeddings and mode not in ("int8-dynamic", "int8-static"):
        raise ConfigError(f"--int4-embeddings goes with an int8 --quantize (not {mode}); "
                          f"--quantize int4 puts every weight in 4 bits")
    if cfg.calibration_data and cfg.quantize not in ("int8", "int8-static", "auto"):
        log.warning("--calibration-data: not read; --quantize %s does not calibrate (int8-static "
                    "and auto do)", cfg.quantize)
    return mode


def _read_data(cfg: ExportConfig, task, labels):
    """(the eval data or None, the calibration sample or None; read only where used)."""
    evals = task.read_eval(cfg.eval_data, labels, cfg) if cfg.eval_data else None
    calibrates = cfg.quantize in ("int8-static", "auto")
    calib = (task.read_eval(cfg.calibration_data, None, cfg) if cfg.calibration_data
             and calibrates else None)
    if calib is not None and len(calib) > cfg.calibration_samples:
        # a seeded sample of the whole file: its first rows may all be one class (an image
        # folder is read class by class)
        calib = calib.shuffle(seed=0).select(range(cfg.calibration_samples))
    return evals, calib


def _say(record: dict, settings: dict, job, task, final_dir: Path) -> None:
    """What each gate compared, and what was written."""
    metric = task.primary
    log.info("gates (export.json \"gates\"):\n%s", "\n".join(
        f"  {line}" for line in gate_lines(record["gates"])))
    if any(g.get("min_agreement_from") == PROBE_ONLY for g in record["gates"]):
        log.warning("int8 agreement was judged on %d probe rows only, at least %g (it catches a "
                    "broken quantization, not a small drift); --eval-data holds int8 to %g "
                    "agreement and to --max-accuracy-drop on your data", job.rows["probe"],
                    PROBE_ONLY_INT8_AGREEMENT, parity.tolerance("int8", task)[1])
    log.info("wrote %s  (%s, %.1f MB, p50 %.2f ms at batch 1%s)", final_dir / "model.onnx",
             settings.get("mode"), record["size_bytes"] / 2**20,
             record["latency_batch1"]["p50_ms"],
             f", {metric} {record[metric]:.4f}" if metric in record else "")


class _Job:
    """What every build step of one export reads: settings, task, parity inputs, eval data."""

    def __init__(self, cfg, task, labels, preprocessor, probes, ref_outputs, eval_batches):
        self.cfg, self.task, self.labels, self.preprocessor = cfg, task, labels, preprocessor
        self.probes, self.ref_outputs, self.eval_batches = probes, ref_outputs, eval_batches

    def gate(self, path, precision) -> dict:
        """Run the ONNX model on the parity inputs and fail (exit 3) if it drifts."""
        cfg = self.cfg
        session = latency.ort_session(path, cfg.threads)
        outputs = [parity.positions(self.task, session.run(None, latency.feeds_for(session, b))[0],
                                    b) for b in self.probes]
        min_agreement, source = cfg.min_agreement, "--min-agreement"
        if min_agreement is None and precision == "int8" and not cfg.eval_data:
            min_agreement, source = PROBE_ONLY_INT8_AGREEMENT, PROBE_ONLY
        report = parity.compare(self.ref_outputs, outputs, precision, atol=cfg.atol,
                                min_agreement=min_agreement, task=self.task,
                                min_agreement_from=source)
        if not report.passed:
            raise CheckFailed(f"parity with PyTorch failed for {path.stem} ({precision}): "
                              f"{'; '.join(report.failures)}; nothing was written to {cfg.out}")
        return report.as_dict()

    def score(self, path, precision: str = "fp32") -> float:
        """The task's primary metric of an ONNX model on the eval data."""
        session = latency.ort_session(path, self.cfg.threads)
        return scoring.score(self.task,
                             lambda b: session.run(None, latency.feeds_for(session, b))[0],
                             self.eval_batches, self.labels, precision)

    def check_drop(self, value: float, fp32_value: float | None, name: str) -> None:
        if fp32_value is None:
            return
        drop = self.task.drop(fp32_value, value)
        if drop > self.cfg.max_accuracy_drop:
            metric = self.task.primary
            raise CheckFailed(
                f"{name}: {metric} {value:.4f} is {drop:.2f} below the fp32 ONNX model's "
                f"{fp32_value:.4f} (allowed {self.cfg.max_accuracy_drop}); try --quantize auto "
                f"or int8-static, or raise --max-accuracy-drop")


def _prune_vocab(cfg, bb, task, corpus: list[str], evals, scratch: Path):
    """The checkpoint with its vocabulary cut to the corpus's tokens (in `scratch`), and the
    record of how it was judged: [UNK] rate, tokens per example, label agreement and the
    task metric of the unpruned and the pruned model on --eval-data. Either gate missed
    (agreement below vocab.MIN_AGREEMENT, metric below --max-accuracy-drop) stops here."""
    import numpy as np

    from ..convert import vocab

    tokenizer = task.load_preprocessor(bb)
    if not (Path(bb.source) / "tokenizer.json").exists():
        raise ModelError(f"--model {cfg.model}: has no tokenizer.json (a fast tokenizer's); "
                         f"--prune-vocab rewrites it")
    where = f"--prune-vocab {cfg.prune_vocab}"
    # [UNK] is counted (check_corpus judges by it); the other special tokens are not
    specials = set(tokenizer.all_special_ids) - {tokenizer.unk_token_id}
    counts = vocab.count_tokens(_id_batches(task, tokenizer, corpus, cfg), specials)
    vocab.check_corpus(counts, tokenizer.unk_token_id, where)
    keep = vocab.kept_from_counts(tokenizer, counts, cfg.min_count)
    import copy

    reference = backbones.load_trained(bb, task, allow_pickle=cfg.allow_pickle)
    pruned = copy.deepcopy(reference)  # (cut in place below; the reference stays whole)
    vocab.prune_checkpoint(pruned, Path(bb.source), keep, scratch)
    pruned_bb = backbones.resolve(str(scratch))
    pruned_tokenizer = task.load_preprocessor(pruned_bb)
    log.info("vocabulary: %d of %d tokens kept (%.1f%%; min count %d over %d corpus tokens)",
             len(keep), len(tokenizer), 100 * len(keep) / len(tokenizer), cfg.min_count,
             sum(counts.values()))

    def judged(model, tok):
        import torch

        def logits_of(feeds):
            with torch.inference_mode():
                return model(**{k: torch.from_numpy(v) for k, v in
                                scoring.inputs_only(task, feeds).items()}).logits.numpy()

        pairs = scoring.batches(task, tok, evals, cfg.max_length)
        predictions, labels = scoring.predict(task, logits_of, pairs)
        used = np.concatenate([f["input_ids"][f["attention_mask"] > 0] for f, _ in pairs])
        value = task.metrics(labels, predictions, bb.label_names)[task.primary]
        return (predictions, value, float((used == tok.unk_token_id).mean()),
                used.size / len(evals))

    before = judged(reference, tokenizer)
    after = judged(pruned, pruned_tokenizer)
    same = np.concatenate([np.ravel(np.asarray(a) == np.asarray(b))
                           for a, b in zip(before[0], after[0])])
    agreement = float(same.mean())
    least = cfg.min_agreement if cfg.min_agreement is not None else vocab.MIN_AGREEMENT
    metric = task.primary
    record = {"corpus": corpus, "min_count": cfg.min_count,
              "corpus_tokens": sum(counts.values()), "kept": len(keep), "of": len(tokenizer),
              "kept_fraction": round(len(keep) / len(tokenizer), 4),
              "judged_on": cfg.eval_data, "rows": len(evals),
              "label_agreement": round(agreement, 4), "min_agreement": least,
              "min_agreement_from": ("--min-agreement" if cfg.min_agreement is not None else
                                     f"the pruning default {vocab.MIN_AGREEMENT}"),
              "unk_rate": {"unpruned": round(before[2], 5), "pruned": round(after[2], 5)},
              "tokens_per_example": {"unpruned": round(before[3], 2),
                                     "pruned": round(after[3], 2)},
              metric: {"unpruned": before[1], "pruned": after[1]}}
    drop = task.drop(before[1], after[1])
    log.info("pruned vocabulary on %s: label agreement %.4f, %s %.4f -> %.4f, [UNK] %.3f%% -> "
             "%.3f%%", cfg.eval_data, agreement, metric, before[1], after[1], 100 * before[2],
             100 * after[2])
    if agreement < least or drop > cfg.max_accuracy_drop:
        raise CheckFailed(
            f"{where}: on {cfg.eval_data} the pruned model agrees with the unpruned one on "
            f"{agreement:.1%} of labels (at least {least:.0%}) and scores "
            f"{metric} {after[1]:.4f} against {before[1]:.4f} (allowed drop "
            f"{cfg.max_accuracy_drop}); give a corpus closer to the data the model will see, or "
            f"lower --min-count; nothing was written to {cfg.out}")
    return pruned_bb, record


def _id_batches(task, tokenizer, files: list[str], cfg):
    """(input_ids, attention_mask) of every row of the corpus files, as the task encodes."""
    from ..errors import DataError

    for f in files:
        try:
            ds = task.read_eval(f, None, cfg)
        except DataError:
            if not any(getattr(cfg, c, None) for c in ("text_column", "tokens_column")):
                raise
            # an unlabelled file need not name its text as the labelled data does: its own
            # column, found by name as `distill --unlabeled` finds it
            ds = task.read_eval(f, None, None)
        for s in range(0, len(ds), 512):
            feeds = task.encode(tokenizer, ds[s:s + 512], cfg.max_length)
            yield feeds["input_ids"], feeds["attention_mask"]


def _check_finite_weights(model, name: str) -> None:
    """A checkpoint with NaN or infinite weights is refused, not exported."""
    import torch

    bad = [n for n, p in model.named_parameters() if not torch.isfinite(p).all()]
    if bad:
        raise ModelError(f"--model {name}: weight {bad[0]} holds NaN or infinite values "
                         f"({len(bad)} tensor(s) in all); the checkpoint is broken (a diverged "
                         f"training run?): train it again")


def _build_all(job, work, bb, config, evals, calib, torch_logits, started):
    """Everything written into the partial folder: the model, export.json, artifact.json."""
    cfg, task = job.cfg, job.task
    metric = task.primary
    tmp = work / ".build"
    tmp.mkdir()
    log.info("exporting %s to ONNX (opset %d, optimum task %s)", cfg.model, cfg.opset,
             task.optimum_task)
    from ..modeling import architectures

    form = architectures.export_form(job.reference)
    raw = onnx_export.export(Path(bb.source), work, cfg.opset, task.optimum_task,
                             model=form if form is not job.reference else None)
    shutil.move(raw, tmp / "exported.onnx")
    # (verify follows "source" only to the checkpoint whose fingerprint this is: an
    # export folder handed over by someone else cannot point it at another folder)
    record: dict = {"task": task.name, "metric": metric, "opset": cfg.opset,
                    "source": cfg.model, "source_fingerprint": (
                        fingerprint(cfg.model) if (Path(cfg.model) / MANIFEST).is_file()
                        else None),
                    "parity": {}}
    if job.pruning:
        record["vocab"] = job.pruning
    record["parity"]["export"] = job.gate(tmp / "exported.onnx", "fp32")
    fp32 = _fused(job, tmp, config, record)

    feeds = (scoring.singles(task, job.preprocessor, calib, cfg.max_length,
                             cfg.calibration_samples) if calib is not None else [])
    singles = _singles(job, evals)
    fp32_value = None
    if job.eval_batches is not None:
        fp32_value = job.score(fp32)
        record[f"torch_{metric}"] = scoring.score(task, torch_logits, job.eval_batches,
                                                  job.labels)
        record[f"fp32_onnx_{metric}"] = fp32_value

    if cfg.quantize == "auto":
        chosen, candidates = _auto(job, fp32, tmp, feeds, fp32_value, singles)
        record["auto"] = {"candidates": candidates, "chosen": chosen["name"]}
        final, settings = chosen["path"], chosen["settings"]
        record["parity"]["final"] = chosen["parity"]
        record[metric] = chosen[metric]
    else:
        final, settings = _build(cfg.quantize, fp32, tmp, feeds, cfg)
        precision = quantize.precision_of(cfg.quantize)
        record["parity"]["final"] = job.gate(final, precision)
        if job.eval_batches is not None:
            record[metric] = job.score(final, precision)
            job.check_drop(record[metric], fp32_value, cfg.quantize)
    record["quantization"] = settings
    precision = quantize.precision_of(settings.get("mode", cfg.quantize))  # (auto's pick too)
    if metric in record:
        record[f"{metric}_batch_size"] = scoring.scoring_batch_size(precision)
    shutil.move(final, work / "model.onnx")
    if cfg.ort_format:
        # the bundled runtime runs model.ort when it is there: it passes the same gate
        record["ort_format"] = ort_format(work / "model.onnx", work, cfg.target)
        record["parity"]["ort"] = job.gate(work / "model.ort", precision)
    shutil.rmtree(tmp)

    _time_on_this_host(record, work / "model.onnx", singles, cfg, evals is not None,
                       precision)
    record["size_bytes"] = (work / "model.onnx").stat().st_size
    record["gates"] = gate_summary(record, job, fp32_value)
    record["versions"] = versions("torch", "transformers", "optimum-onnx", "onnx", "onnxruntime")
    record["wall_time_s"] = round(time.perf_counter() - started, 1)
    write_json(work / "export.json", record)
    write_manifest(work, "onnx-model", json.loads(cfg.model_dump_json()),
                   {k: record.get(k) for k in (metric, "size_bytes")}
                   | {"p50_ms_batch1": record["latency_batch1"]["p50_ms"]}
                   # (the source's floor verdict, carried: verify and package read it here)
                   | ({"floor": f} if (f := floor.recorded(cfg.model)) else {}),
                   parents={"model": cfg.model}, task=task.name,
                   packages=("torch", "transformers", "optimum-onnx", "onnx", "onnxruntime"))
    return record, settings


def _fused(job, tmp: Path, config, record: dict) -> Path:
    """The fp32 graph the quantizers start from: the export, fused (and its last layer cut to
    the first token, where the task allows) with each rewrite parity-gated."""
    cfg, task = job.cfg, job.task
    fp32 = tmp / "exported.onnx"
    if not cfg.fuse:
        return fp32
    # 4-bit blocks need the weights in MatMuls and Gathers, not inside fused ops
    record["fusions"] = rewrites.fuse(
        fp32, tmp / "fused.onnx", config, attention=cfg.quantize != "int4",
        embeddings=not (cfg.int4_embeddings or cfg.quantize == "int4"))
    fp32 = tmp / "fused.onnx"
    if (cfg.first_token_last_layer and rewrites.FIRST_TOKEN in task.rewrites
            and rewrites.first_token_last_layer(fp32, tmp / "fused-first-token.onnx", config)):
        fp32 = tmp / "fused-first-token.onnx"
        record["first_token_last_layer"] = True
    record["parity"]["fused"] = job.gate(fp32, "fp32")
    return fp32


def _time_on_this_host(record: dict, model: Path, singles, cfg: ExportConfig,
                       on_eval_rows: bool, precision: str) -> None:
    """Batch-1 latency here, and the host it was measured on (an int8 model tuned for
    another CPU family: said)."""
    record["latency_batch1"] = _latency(model, singles, cfg.threads) | {
        "threads": cfg.threads, "provider": "CPUExecutionProvider",
        "inputs": "eval rows, one at a time" if on_eval_rows else "probe rows"}
    host = latency.machine()
    record["host"] = {k: host[k] for k in ("cpu", "arch", "isa")}
    if precision == "int8":
        # the latency above is this host's: say so where the target's devices differ
        record["host"]["target_mismatch"] = quantize.host_mismatch(cfg.target, host)
        if record["host"]["target_mismatch"]:
            log.warning("latency measured here may not hold on the target: %s",
                        record["host"]["target_mismatch"])


def _build(mode, fp32, tmp, feeds, cfg, exclude=None, name=None, layers_only=False):
    dst = tmp / f"{name or mode}.onnx"
    if cfg.int4_embeddings and mode.startswith("int8") and not layers_only:
        layers, settings = _build(mode, fp32, tmp, feeds, cfg.model_copy(
            update={"int4_embeddings": False}) if mode == "int8-static" else cfg, exclude,
            f"{name or mode}-layers", layers_only=True)
        settings["embeddings"] = quantize.int4(layers, dst, ("Gather",))
        return dst, settings
    tgt = quantize.target(cfg.target)
    if mode == "int4":
        return dst, {"mode": "int4"} | quantize.int4(fp32, dst)
    if mode == "none":
        shutil.copyfile(fp32, dst)
        return dst, {"mode": "none", "precision": "fp32", "fused": cfg.fuse}
    if mode == "int8-dynamic":
        # (the embedding Gathers left in float when they are to get 4-bit blocks next)
        return dst, quantize.dynamic(fp32, dst, tgt, cfg.per_channel, exclude,
                                     ["MatMul", "Attention"] if cfg.int4_embeddings else None)
    if mode == "int8-static":
        # the unfused graph: QDQ quantization cannot type the fused contrib ops
        src = tmp / "exported.onnx"
        return dst, quantize.static(src, dst, tgt, feeds, cfg.calibration_method,
                                    cfg.per_channel, exclude)
    return dst, quantize.fp16(fp32, dst)


# With only the 8 probe rows, one near-tie flipping is 12.5% disagreement: without eval
# data an int8 model is held to this coarse bar (a broken quantization gives near-random
# predictions), and export.json says the agreement was judged on probes only.
PROBE_ONLY_INT8_AGREEMENT = 0.75
PROBE_ONLY = "probe rows without --eval-data"  # where that bar comes from, as gates say it


def gate_summary(record: dict, job, fp32_value: float | None) -> list[dict]:
    """What each gate compared (export.json "gates"): the rows, the figure, the bar and
    where the bar came from (a flag, a default, the probe-only rule)."""
    cfg, task, metric = job.cfg, job.task, job.task.primary
    rows = job.rows["probe"] + job.rows["eval"]
    gates = []
    for step, report in record["parity"].items():
        for output, stats in report["outputs"].items():
            gates.append({
                "gate": f"parity {step}", "precision": report["precision"], "output": output,
                "rows": rows, "probe_rows": job.rows["probe"], "eval_rows": job.rows["eval"],
                "outputs_compared": stats.get("examples"),
                "max_abs_diff": stats.get("max_abs_diff"), "atol": stats.get("atol"),
                "atol_from": stats.get("atol_from"), "agreement": stats.get("top1_agreement"),
                "min_agreement": stats.get("min_agreement"),
                "min_agreement_from": stats.get("min_agreement_from"),
                "passed": report["passed"]})
    if metric in record and fp32_value is not None:
        drop = task.drop(fp32_value, record[metric])
        default = ExportConfig.model_fields["max_accuracy_drop"].default
        gates.append({
            "gate": metric, "rows": job.rows["eval"], "data": cfg.eval_data,
            "value": record[metric], "against": "the fp32 ONNX model",
            "against_value": fp32_value, "drop": round(drop, 4),
            "max_drop": cfg.max_accuracy_drop,
            "max_drop_from": (f"the --max-accuracy-drop default {default:g}"
                              if cfg.max_accuracy_drop == default else "--max-accuracy-drop"),
            "passed": drop <= cfg.max_accuracy_drop})
    if job.pruning:
        v = job.pruning
        gates.append({
            "gate": "vocabulary pruning", "rows": v["rows"], "data": v["judged_on"],
            "agreement": v["label_agreement"], "against": "the unpruned model",
            "min_agreement": v["min_agreement"], "min_agreement_from": v["min_agreement_from"],
            "passed": True})  # (a miss stops the export before this record exists)
    return gates


def gate_lines(gates: list[dict]) -> list[str]:
    """A gate summary as terminal lines: what was compared, the figure against its bar, and
    where the bar came from."""
    lines = []
    for g in gates:
        verdict = "passed" if g["passed"] else "FAILED"
        if g["gate"].startswith("parity"):
            seen = [f"{g[k + '_rows']} {what}" for k, what in (("probe", "probe"),
                                                                 ("eval", "--eval-data"))
                    if g[k + "_rows"]]
            compared = (f"; {g['outputs_compared']} outputs compared"
                        if g["outputs_compared"] != g["rows"] else "")
            figures = []
            if g["atol"] is not None:
                figures.append(f"max |diff| {g['max_abs_diff']:.1e} <= "
                               f"{parity.number(g['atol'])} ({g['atol_from']})")
            if g["min_agreement"] is not None:
                figures.append(f"agreement {g['agreement']:.3f} >= {g['min_agreement']:g} "
                               f"({g['min_agreement_from']})")
            lines.append(f"{g['gate']} ({g['precision']}): {g['rows']} rows "
                         f"({', '.join(seen)}{compared}); {'; '.join(figures)}: {verdict}")
        elif g["gate"] == "vocabulary pruning":
            lines.append(f"{g['gate']}: {g['rows']} rows of {g['data']}; label agreement with "
                         f"{g['against']} {g['agreement']:.3f} >= {g['min_agreement']:g} "
                         f"({g['min_agreement_from']}): {verdict}")
        else:
            lines.append(f"{g['gate']}: {g['rows']} rows of {g['data']}; {g['value']:.4f} "
                         f"against {g['against']}'s {g['against_value']:.4f}, drop "
                         f"{g['drop']:.2f} <= {g['max_drop']:g} ({g['max_drop_from']}): "
                         f"{verdict}")
    return lines


def _sensitive_nodes(path) -> list[str]:
    """Nodes most int8 error flows from: the head and the last block's FFN."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    names = [n.name for n in model.graph.node if n.op_type in ("MatMul", "Gemm", "Attention")]
    head = [n for n in names if any(h in n for h in heads.HEAD_MODULES)]
    last = sorted({n.split("/")[3] for n in names if n.count("/") > 3 and "layer." in n},
                  key=lambda s: int(s.split(".")[-1]) if s.split(".")[-1].isdigit() else -1)
    tail = [n for n in names if last and f"/{last[-1]}/" in n
            and ("intermediate" in n or "output/dense" in n)]
    return head + tail


def _auto(job, fp32, tmp, feeds, fp32_value, singles):
    """Build candidates from the fastest expected; keep the fastest that holds the metric.

    A candidate that misses gets one retry with its most sensitive nodes kept in fp32.
    Every candidate's figures are recorded, the misses included.
    """
    cfg, metric = job.cfg, job.task.primary
    order = [m for m in ("int8-dynamic", "int8-static") if m in job.task.quantize_modes
             and (feeds or m != "int8-static")] + ["none"]
    candidates, kept = [], []
    for mode in order:
        exclude = None
        precision = quantize.precision_of(mode)
        while True:
            label = mode if exclude is None else f"{mode}-excluding-{len(exclude)}-nodes"
            path, settings = _build(mode, fp32, tmp, feeds, cfg, exclude, label)
            entry = {"name": label, "settings": settings, "size_bytes": path.stat().st_size}
            try:
                gate = job.gate(path, precision)
            except CheckFailed as e:
                gate, entry["parity_failed"] = None, str(e)
            value = job.score(path, precision)
            lat = _latency(path, singles, cfg.threads)
            drop = job.task.drop(fp32_value, value)
            entry |= {metric: value, "drop_points": round(drop, 3),
                      "p50_ms": lat["p50_ms"], "p90_ms": lat["p90_ms"],
                      "holds": gate is not None and drop <= cfg.max_accuracy_drop}
            candidates.append(entry)
            log.info("candidate %-30s %s %.4f (drop %.2f)  p50 %.2f ms  %s", label, metric,
                     value, drop, lat["p50_ms"], "holds" if entry["holds"] else "misses")
            if entry["holds"]:
                kept.append(dict(entry, path=path, parity=gate))
            if entry["holds"] or exclude is not None or mode == "none":
                break
            exclude = _sensitive_nodes(fp32 if mode == "int8-dynamic" else tmp / "exported.onnx")
            if not exclude:
                break
    if not kept:
        raise CheckFailed(f"--quantize auto: no candidate held --max-accuracy-drop "
                          f"{cfg.max_accuracy_drop}; see the figures above")
    return min(kept, key=lambda e: e["p50_ms"]), candidates


def _singles(job, evals) -> list[dict]:
    """Latency inputs: up to 64 rows of the eval data (else the probes), one at a time."""
    from datasets import Dataset

    rows = evals if evals is not None else Dataset.from_list(list(job.task.probe_rows))
    return scoring.singles(job.task, job.preprocessor, rows, job.cfg.max_length, 64)


def _latency(path, singles, threads) -> dict:
    session = latency.ort_session(path, threads)
    return latency.measure(lambda b: session.run(None, latency.feeds_for(session, b)), singles,
                           warmup=20, iterations=max(200, len(singles)))


# --target -> the converter's --target_platform: its fixed optimizations are the CPU's own
ORT_PLATFORM = {"x86-avx2": "amd64", "x86-avx512-vnni": "amd64", "arm64": "arm"}


def ort_format(path: Path, folder: Path, target: str = "x86-avx512-vnni") -> dict:
    """model.ort and required_operators.config for onnxruntime's minimal and mobile builds
    (and what the bundled runtime runs when the bundle has it)."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "onnxruntime.tools.convert_onnx_models_to_ort", str(path),
           "--output_dir", str(folder),
           # graph optimizations fixed at conversion: one .ort, runnable by minimal builds
           "--optimization_style", "Fixed", "--target_platform", ORT_PLATFORM[target]]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ModelError(f"ORT format conversion failed: {proc.stderr.strip().splitlines()[-1]}")
    ort_files = sorted(p.name for p in folder.glob("*.ort"))
    configs = sorted(p.name for p in folder.glob("*.config"))
    return {"files": ort_files + configs, "target_platform": ORT_PLATFORM[target]}


def plan(variants, w) -> list[dict]:
    """The pipeline steps (a recipe's `export:` list): each variant of the newest model
    (the student, else the teacher), in its folder onnx-NAME."""
    source = w.made.get("student") or w.made.get("teacher", w.model)
    steps, exported = [], {}
    for variant in variants:
        name = variant_name(variant)
        out = w.root / f"onnx-{name}"
        settings = variant.model_dump(exclude={"name"})
        calibrate = settings["quantize"] in ("int8", "int8-static", "auto")
        calibration = w.files["train"] if calibrate else None
        corpus = {}
        if settings.get("prune_vocab") == RECIPE_CORPUS:
            # the recipe's own text: training plus unlabelled (never the eval data)
            corpus = w.corpus()
            settings["prune_vocab"] = ",".join(corpus.values())
        config = settings | w.columns() | dict(
            task=w.recipe.task, model=source, out=out, eval_data=w.files["eval"],
            calibration_data=calibration, max_length=w.recipe.data.max_length,
            overwrite=True)
        steps.append({"label": out.name, "config": config, "inputs": {
            "model": source, "eval": w.files["eval"], "calibration": calibration} | corpus})
        exported[name] = out
    w.made["exports"] = exported
    return steps


# a recipe's `prune_vocab: data`: prune to the recipe's training plus unlabelled text
RECIPE_CORPUS = "data"


def variant_name(variant) -> str:
    """A recipe variant's name: given, else its quantize mode (folder onnx-NAME)."""
    return variant.name or variant.quantize
