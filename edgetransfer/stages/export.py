"""Stage `export`: a checkpoint -> the fastest ONNX model that still holds its accuracy.

Steps: optimum export (fp32, dynamic axes) -> parity gate -> onnxruntime transformer fusions
-> parity gate -> quantization (int8 dynamic, int8 static QDQ, fp16) -> parity gate (and the
task metric on --eval-data) -> optional .ort. `--quantize auto` builds each candidate,
measures accuracy and batch-1 latency, and keeps the fastest within --max-accuracy-drop.

Output folder: model.onnx (and model.ort + required_operators.config), tokenizer files,
config.json with labels, export.json (opset, quantization, parity, sizes, versions, every
auto candidate) and artifact.json.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .. import backbones, data, latency, onnx_export, parity, quantize
from ..artifacts import OutputFolder, versions, write_json, write_manifest
from ..errors import CheckFailed, ConfigError, ModelError

log = logging.getLogger(__name__)


class ExportConfig(BaseModel):
    """Settings of `edgetransfer export`; each description is the CLI help."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="The checkpoint to export: a `finetune` or `distill` output "
                       "(any HF sequence classifier folder).")
    out: Path = Field(description="Output folder for model.onnx and its records.")
    quantize: Literal["none", "int8-dynamic", "int8-static", "fp16", "auto"] = Field(
        "int8-dynamic", description="none: fp32 (fused); int8-dynamic: int8 weights, "
        "activations quantized at run time (no calibration, the CPU default); int8-static: "
        "QDQ calibrated on --calibration-data; fp16: for GPU targets; auto: the fastest "
        "candidate within --max-accuracy-drop on --eval-data.")
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
    calibration_samples: int = Field(256, ge=1, description="Calibration texts used at most.")
    eval_data: str | None = Field(None, description="Labelled data for the accuracy check "
                                  "(needed by --quantize auto).")
    max_accuracy_drop: float = Field(0.5, ge=0, description="Accuracy points a quantized model "
                                     "may lose against the fp32 ONNX model on --eval-data.")
    atol: float | None = Field(None, gt=0, description="Override the parity tolerance on "
                               "logits (fp32 1e-4, fp16 5e-2).")
    min_agreement: float | None = Field(None, gt=0, le=1, description="Override the least "
                                        "top-1 agreement with PyTorch (int8 0.95).")
    ort_format: bool = Field(False, description="Also write model.ort and "
                             "required_operators.config for onnxruntime's minimal/mobile "
                             "builds.")
    max_length: int = Field(128, ge=8, description="Token limit for eval and calibration texts.")
    text_column: str | None = Field(None, description="Text column of the data files.")
    label_column: str | None = Field(None, description="Label column of --eval-data.")
    threads: int = Field(1, ge=1, description="onnxruntime intra-op threads for the latency "
                         "measurements (1: the edge-device case, and stable figures).")
    allow_pickle: bool = Field(False, description="Allow pickle weights (weights-only load).")
    overwrite: bool = Field(False, description="Replace the results already in --out.")


def run(cfg: ExportConfig) -> Path:
    started = time.perf_counter()
    if cfg.quantize == "auto" and not cfg.eval_data:
        raise ConfigError("--quantize auto needs --eval-data to measure accuracy on")
    if cfg.quantize == "int8-static" and not cfg.calibration_data:
        raise ConfigError("--quantize int8-static needs --calibration-data")
    onnx_export.check_opset(cfg.opset)
    bb = backbones.resolve(cfg.model, cfg.allow_pickle)
    if not bb.local:
        raise ModelError(f"--model {cfg.model}: export takes a local checkpoint folder")
    if not bb.has_classifier:
        raise ModelError(f"--model {cfg.model}: has no classification head (architectures "
                         f"{bb.config.get('architectures')}); fine-tune it first")
    labels = bb.label_names
    evals = (data.load_split(cfg.eval_data, labels, text_column=cfg.text_column,
                             label_column=cfg.label_column) if cfg.eval_data else None)
    calib = (data.load_split(cfg.calibration_data, None, text_column=cfg.text_column)
             if cfg.calibration_data else None)
    out = OutputFolder(cfg.out, overwrite=cfg.overwrite, inputs=(Path(bb.source),)
                       + tuple(Path(p) for p in (cfg.eval_data, cfg.calibration_data) if p))
    out.check()

    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = backbones.load_tokenizer(bb)
    try:
        config = AutoConfig.from_pretrained(bb.source)
        reference, info = AutoModelForSequenceClassification.from_pretrained(
            bb.source, use_safetensors=None if cfg.allow_pickle else True,
            output_loading_info=True)
    except Exception as e:  # noqa: BLE001  (transformers' errors: one line naming the folder)
        raise backbones._load_error(bb, "model", e) from e
    backbones.check_loaded(bb, reference, info, new_head=False)
    if info.get("missing_keys"):  # a head filled at random would be exported as if trained
        raise ModelError(f"--model {cfg.model}: the weights lack {info['missing_keys'][0]}; "
                         f"export would fill it at random: give a trained classifier")
    reference.eval()
    from .finetune import check_vocab

    check_vocab(reference, tokenizer, cfg.model)
    _check_finite_weights(reference, cfg.model)
    probe_texts = list(evals["text"][:8]) if evals is not None else None
    probes = parity.probe_batches(tokenizer, probe_texts, cfg.max_length)

    def torch_logits(batch):
        with torch.inference_mode():
            return reference(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits.numpy()

    eval_batches = _eval_batches(evals, tokenizer, cfg) if evals is not None else None
    # the parity inputs: shape-varied probes, plus the eval data where given (int8 agreement
    # is only meaningful over many examples)
    probes = probes + ([f for f, _ in eval_batches] if eval_batches else [])
    ref_outputs = [torch_logits(b) for b in probes]

    out.prepare()
    try:
        record, settings = _build_all(cfg, out.work, bb, config, tokenizer, probes, ref_outputs,
                                      evals, calib, eval_batches, torch_logits, started)
    except BaseException:
        # export has nothing to resume: a failed or interrupted build leaves no trace
        shutil.rmtree(out.work, ignore_errors=True)
        raise
    final_dir = out.commit()
    log.info("wrote %s  (%s, %.1f MB, p50 %.2f ms at batch 1%s)", final_dir / "model.onnx",
             settings.get("mode"), record["size_bytes"] / 2**20,
             record["latency_batch1"]["p50_ms"],
             f", accuracy {record['accuracy']:.4f}" if "accuracy" in record else "")
    return final_dir


def _check_finite_weights(model, name: str) -> None:
    """A checkpoint with NaN or infinite weights is refused, not exported."""
    import torch

    bad = [n for n, p in model.named_parameters() if not torch.isfinite(p).all()]
    if bad:
        raise ModelError(f"--model {name}: weight {bad[0]} holds NaN or infinite values "
                         f"({len(bad)} tensor(s) in all); the checkpoint is broken (a diverged "
                         f"training run?): train it again")


def _build_all(cfg, work, bb, config, tokenizer, probes, ref_outputs, evals, calib,
               eval_batches, torch_logits, started):
    """Everything written into the partial folder: the model, export.json, artifact.json."""
    tmp = work / ".build"
    tmp.mkdir()
    log.info("exporting %s to ONNX (opset %d)", cfg.model, cfg.opset)
    raw = onnx_export.export(Path(bb.source), work, cfg.opset)
    shutil.move(raw, tmp / "exported.onnx")
    record: dict = {"opset": cfg.opset, "source": cfg.model, "parity": {}}
    record["parity"]["export"] = _gate(tmp / "exported.onnx", probes, ref_outputs, "fp32", cfg)
    fp32 = tmp / "exported.onnx"
    if cfg.fuse:
        record["fusions"] = onnx_export.fuse(fp32, tmp / "fused.onnx", config)
        fp32 = tmp / "fused.onnx"
        if cfg.first_token_last_layer and onnx_export.first_token_last_layer(
                fp32, tmp / "fused-first-token.onnx", config):
            fp32 = tmp / "fused-first-token.onnx"
            record["first_token_last_layer"] = True
        record["parity"]["fused"] = _gate(fp32, probes, ref_outputs, "fp32", cfg)

    feeds = _calibration_feeds(calib, tokenizer, cfg) if calib is not None else []
    singles = _singles(tokenizer, evals["text"] if evals is not None else parity.PROBE_TEXTS, cfg)
    fp32_accuracy = None
    if eval_batches is not None:
        fp32_accuracy = _accuracy(fp32, eval_batches, cfg.threads)
        record["torch_accuracy"] = _accuracy_of(torch_logits, eval_batches)
        record["fp32_onnx_accuracy"] = fp32_accuracy

    if cfg.quantize == "auto":
        chosen, candidates = _auto(fp32, tmp, feeds, eval_batches, fp32_accuracy, probes,
                                   ref_outputs, singles, cfg)
        record["auto"] = {"candidates": candidates, "chosen": chosen["name"]}
        final, settings = chosen["path"], chosen["settings"]
        record["parity"]["final"] = chosen["parity"]
        record["accuracy"] = chosen["accuracy"]
    else:
        final, settings = _build(cfg.quantize, fp32, tmp, feeds, cfg)
        precision = _precision(cfg.quantize)
        record["parity"]["final"] = _gate(final, probes, ref_outputs, precision, cfg)
        if eval_batches is not None:
            record["accuracy"] = _accuracy(final, eval_batches, cfg.threads, precision)
            _check_drop(record["accuracy"], fp32_accuracy, cfg, cfg.quantize)
    record["quantization"] = settings
    if "accuracy" in record:  # auto's pick too
        record["accuracy_batch_size"] = data.scoring_batch_size(
            _precision(settings.get("mode", cfg.quantize)))
    shutil.move(final, work / "model.onnx")
    if cfg.ort_format:
        record["ort_format"] = _to_ort(work / "model.onnx", work)
    shutil.rmtree(tmp)

    record["latency_batch1"] = _latency(work / "model.onnx", singles, cfg.threads) | {
        "threads": cfg.threads, "provider": "CPUExecutionProvider",
        "inputs": "eval texts, one at a time" if evals is not None else "probe texts"}
    host = latency.machine()
    record["host"] = {k: host[k] for k in ("cpu", "arch", "isa")}
    if _precision(settings.get("mode", cfg.quantize)) == "int8":
        # the latency above is this host's: say so where the target's devices differ
        record["host"]["target_mismatch"] = quantize.host_mismatch(cfg.target, host)
        if record["host"]["target_mismatch"]:
            log.warning("latency measured here may not hold on the target: %s",
                        record["host"]["target_mismatch"])
    record["size_bytes"] = (work / "model.onnx").stat().st_size
    record["versions"] = versions("torch", "transformers", "optimum-onnx", "onnx", "onnxruntime")
    record["wall_time_s"] = round(time.perf_counter() - started, 1)
    write_json(work / "export.json", record)
    write_manifest(work, "onnx-classifier", json.loads(cfg.model_dump_json()),
                   {k: record.get(k) for k in ("accuracy", "size_bytes")}
                   | {"p50_ms_batch1": record["latency_batch1"]["p50_ms"]},
                   parents={"model": cfg.model},
                   packages=("torch", "transformers", "optimum-onnx", "onnx", "onnxruntime"))
    return record, settings


def _precision(mode: str) -> str:
    return {"none": "fp32", "fp16": "fp16"}.get(mode, "int8")


def _build(mode, fp32, tmp, feeds, cfg, exclude=None, name=None):
    dst = tmp / f"{name or mode}.onnx"
    tgt = quantize.target(cfg.target)
    if mode == "none":
        shutil.copyfile(fp32, dst)
        return dst, {"mode": "none", "precision": "fp32", "fused": cfg.fuse}
    if mode == "int8-dynamic":
        return dst, quantize.dynamic(fp32, dst, tgt, cfg.per_channel, exclude)
    if mode == "int8-static":
        # the unfused graph: QDQ quantization cannot type the fused contrib ops
        src = tmp / "exported.onnx"
        return dst, quantize.static(src, dst, tgt, feeds, cfg.calibration_method,
                                    cfg.per_channel, exclude)
    return dst, quantize.fp16(fp32, dst)


# With only the 8 probe texts, one near-tie flipping is 12.5% disagreement: without eval
# data an int8 model is held to this coarse bar (a broken quantization gives near-random
# predictions), and export.json says the agreement was judged on probes only.
PROBE_ONLY_INT8_AGREEMENT = 0.75


def _gate(path, probes, ref_outputs, precision, cfg) -> dict:
    """Run the ONNX model on the parity inputs and fail (exit 3) if it drifts."""
    session = latency.ort_session(path, cfg.threads)
    outputs = [session.run(None, latency.feeds_for(session, b))[0] for b in probes]
    min_agreement = cfg.min_agreement
    if min_agreement is None and precision == "int8" and not cfg.eval_data:
        min_agreement = PROBE_ONLY_INT8_AGREEMENT
    report = parity.compare(ref_outputs, outputs, precision, atol=cfg.atol,
                            min_agreement=min_agreement)
    if not report.passed:
        raise CheckFailed(f"parity with PyTorch failed for {path.stem} ({precision}): "
                          f"{'; '.join(report.failures)}; nothing was written to {cfg.out}")
    return report.as_dict()


def _one_at_a_time(tokenizer, texts, pairs, max_length: int) -> list[dict]:
    """Batch-1 inputs of real lengths (the deployment shape), as numpy int64."""
    return [data.encode_arrays(tokenizer, [text], [pairs[i]] if pairs else None, max_length)
            for i, text in enumerate(texts)]


def _calibration_feeds(ds, tokenizer, cfg) -> list[dict]:
    n = cfg.calibration_samples
    pairs = ds["text_pair"][:n] if "text_pair" in ds.column_names else None
    return _one_at_a_time(tokenizer, ds["text"][:n], pairs, cfg.max_length)


def _eval_batches(ds, tokenizer, cfg, batch_size: int = data.SCORE_BATCH):
    import numpy as np

    texts, labels = list(ds["text"]), list(ds["label"])
    pairs = list(ds["text_pair"]) if "text_pair" in ds.column_names else None
    batches = []
    for s in range(0, len(texts), batch_size):
        feeds = data.encode_arrays(tokenizer, texts[s:s + batch_size],
                                   pairs[s:s + batch_size] if pairs else None, cfg.max_length)
        batches.append((feeds, np.array(labels[s:s + batch_size])))
    return batches


def _accuracy(path, batches, threads, precision: str = "fp32") -> float:
    session = latency.ort_session(path, threads)
    if data.scoring_batch_size(precision) == 1:  # split the encoded batches, no re-tokenizing
        batches = list(data.one_by_one(batches))
    return _accuracy_of(lambda b: session.run(None, latency.feeds_for(session, b))[0], batches)


def _accuracy_of(logits_of, batches) -> float:
    """Top-1 accuracy of `logits_of(feeds)` over (feeds, labels) batches."""
    right = total = 0
    for feeds, labels in batches:
        right += int((logits_of(feeds).argmax(-1) == labels).sum())
        total += len(labels)
    return right / total


def _check_drop(accuracy, fp32_accuracy, cfg, name) -> None:
    if fp32_accuracy is None:
        return
    drop = 100 * (fp32_accuracy - accuracy)
    if drop > cfg.max_accuracy_drop:
        raise CheckFailed(
            f"{name}: accuracy {accuracy:.4f} is {drop:.2f} points below the fp32 ONNX model's "
            f"{fp32_accuracy:.4f} (allowed {cfg.max_accuracy_drop}); try --quantize auto or "
            f"int8-static, or raise --max-accuracy-drop")


def _sensitive_nodes(path) -> list[str]:
    """Nodes most int8 error flows from: the classifier head and the last block's FFN."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    names = [n.name for n in model.graph.node if n.op_type in ("MatMul", "Gemm", "Attention")]
    head = [n for n in names if "classifier" in n or "pooler" in n]
    last = sorted({n.split("/")[3] for n in names if n.count("/") > 3 and "layer." in n},
                  key=lambda s: int(s.split(".")[-1]) if s.split(".")[-1].isdigit() else -1)
    tail = [n for n in names if last and f"/{last[-1]}/" in n
            and ("intermediate" in n or "output/dense" in n)]
    return head + tail


def _auto(fp32, tmp, feeds, eval_batches, fp32_accuracy, probes, ref_outputs, singles, cfg):
    """Build candidates from the fastest expected; keep the fastest that holds accuracy.

    A candidate that misses gets one retry with its most sensitive nodes kept in fp32.
    Every candidate's figures are recorded, the misses included.
    """
    order = ["int8-dynamic"] + (["int8-static"] if feeds else []) + ["none"]
    candidates, kept = [], []
    for mode in order:
        exclude = None
        while True:
            label = mode if exclude is None else f"{mode}-excluding-{len(exclude)}-nodes"
            path, settings = _build(mode, fp32, tmp, feeds, cfg, exclude, label)
            entry = {"name": label, "settings": settings, "size_bytes": path.stat().st_size}
            try:
                gate = _gate(path, probes, ref_outputs, _precision(mode), cfg)
            except CheckFailed as e:
                gate, entry["parity_failed"] = None, str(e)
            accuracy = _accuracy(path, eval_batches, cfg.threads, _precision(mode))
            lat = _latency(path, singles, cfg.threads)
            drop = 100 * (fp32_accuracy - accuracy)
            entry |= {"accuracy": accuracy, "drop_points": round(drop, 3),
                      "p50_ms": lat["p50_ms"], "p90_ms": lat["p90_ms"],
                      "holds": gate is not None and drop <= cfg.max_accuracy_drop}
            candidates.append(entry)
            log.info("candidate %-30s accuracy %.4f (drop %.2f pts)  p50 %.2f ms  %s", label,
                     accuracy, drop, lat["p50_ms"], "holds" if entry["holds"] else "misses")
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


def _singles(tokenizer, texts, cfg) -> list[dict]:
    """Latency inputs: up to 64 texts, one at a time."""
    return _one_at_a_time(tokenizer, list(texts)[:64], None, cfg.max_length)


def _latency(path, singles, threads) -> dict:
    session = latency.ort_session(path, threads)
    return latency.measure(lambda b: session.run(None, latency.feeds_for(session, b)), singles,
                           warmup=20, iterations=max(200, len(singles)))


def _to_ort(path: Path, folder: Path) -> dict:
    """model.ort and required_operators.config for onnxruntime's minimal and mobile builds."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "onnxruntime.tools.convert_onnx_models_to_ort", str(path),
           "--output_dir", str(folder),
           # graph optimizations fixed at conversion: one .ort, runnable by minimal builds
           "--optimization_style", "Fixed"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ModelError(f"ORT format conversion failed: {proc.stderr.strip().splitlines()[-1]}")
    ort_files = sorted(p.name for p in folder.glob("*.ort"))
    configs = sorted(p.name for p in folder.glob("*.config"))
    return {"files": ort_files + configs}
