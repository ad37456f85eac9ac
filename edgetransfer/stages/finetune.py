"""Stage `finetune`: adapt a backbone to a labelled text-classification task.

Input: a backbone (built-in name, local folder, hub id) and labelled splits.
Output (the folder given as `out`): a plain HF checkpoint loadable with
AutoModelForSequenceClassification (LoRA merged in; the adapter kept under adapter/),
metrics.json, settings.json, training.png and artifact.json.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .. import backbones, data, devices, methods, metrics, training
from ..artifacts import OutputFolder, write_json, write_manifest
from ..errors import ConfigError, OutputError

log = logging.getLogger(__name__)

# Learning rates by method, measured on the quickstart intents and SST-2 with minilm-l6
# (bench/finetune_methods.py): the fewer weights move, the larger the step they tolerate.
DEFAULT_LR = {"full": 1e-4, "lora": 1e-3, "head": 3e-3}


class FinetuneConfig(BaseModel):
    """Settings of `edgetransfer finetune`; each description is the CLI help."""

    model_config = ConfigDict(extra="forbid")

    # data
    train: str = Field(description="Training data: a CSV/TSV/JSONL/Parquet file, or a hub "
                       "dataset id ('name' or 'name:config') when online.")
    validation: str | None = Field(None, description="Validation data; when absent, carved "
                                   "from train (see --validation-fraction).")
    test: str | None = Field(None, description="Optional test data, evaluated once at the end.")
    text_column: str | None = Field(None, description="Text column [default: the first of "
                                    "text, sentence, sentence1, question, premise].")
    text_pair_column: str | None = Field(None, description="Second text column for pair tasks "
                                         "[default: sentence2 beside sentence1, and so on].")
    label_column: str | None = Field(None, description="Label column, integer ids or names "
                                     "[default: the first of label, labels, intent, class].")
    label_names: list[str] | None = Field(None, description="Names for integer label ids, in id "
                                          "order, comma-separated (e.g. negative,positive).")
    validation_fraction: float = Field(0.1, gt=0, lt=1, description="Share of train carved out "
                                       "for validation when --validation is not given.")
    max_length: int = Field(128, ge=8, description="Tokens per text (pair); longer ones are "
                            "truncated and counted. 128 covers >99% of SST-2 and the intents.")
    refuse_long: bool = Field(False, description="Fail instead of truncating texts longer than "
                              "--max-length.")
    # model
    model: str = Field("minilm-l6", description="Backbone: 'minilm-l6' (all-MiniLM-L6-v2, "
                       "bundled, offline), a local HF folder, or a hub id when online.")
    new_head: bool = Field(False, description="Replace an existing classification head whose "
                           "classes differ from the data's.")
    allow_pickle: bool = Field(False, description="Allow pickle weights (pytorch_model.bin); "
                               "they are still loaded weights-only.")
    trust_remote_code: bool = Field(False, description="Run code shipped with the checkpoint. "
                                    "Only for authors you trust.")
    # method
    method: Literal["full", "lora", "head"] = Field("full", description="What is trained: all "
                                                    "weights, LoRA adapters (merged at the "
                                                    "end), or the classification head only.")
    freeze_layers: int = Field(0, ge=0, description="Freeze the embeddings and the lowest N "
                               "layers (full and lora).")
    lora_r: int = Field(8, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(16, ge=1, description="LoRA scaling numerator (alpha/r scales "
                            "the update); 2r is the common choice.")
    lora_dropout: float = Field(0.1, ge=0, lt=1, description="Dropout on the LoRA input.")
    lora_targets: list[str] | None = Field(None, description="Module names to adapt, comma-"
                                           "separated [default: every Linear in the blocks].")
    merge_tolerance: float = Field(1e-4, gt=0, description="Largest logit difference allowed "
                                   "between the merged and the adapter model (fp32).")
    # optimisation
    epochs: float = Field(5, gt=0, description="Training epochs (early stopping may end sooner).")
    batch_size: int = Field(16, ge=1, description="Examples per device per step.")
    lr: float | None = Field(None, gt=0, description="Peak learning rate [default by method: "
                             "full 1e-4, lora 1e-3, head 3e-3].")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay.")
    warmup_ratio: float = Field(0.06, ge=0, lt=1, description="Share of steps spent warming "
                                "up the learning rate (then linear decay).")
    patience: int = Field(2, ge=0, description="Stop after this many evaluations without a "
                          "better validation accuracy; 0 turns early stopping off.")
    eval_steps: int = Field(0, ge=0, description="Evaluate and checkpoint every N steps; 0 means "
                            "once per epoch.")
    seed: int = Field(42, description="Seed for the split, the head initialisation and batches.")
    # machine
    device: str = Field("auto", description="auto (CUDA if present, else CPU), cpu, cuda[:N] "
                        "or mps. Asking for cuda where there is none is an error.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field("auto", description="auto: bf16 "
                                                              "on CUDA when supported, else "
                                                              "fp16; fp32 on CPU.")
    # output
    out: Path = Field(description="Output folder for the checkpoint and its metrics.")
    overwrite: bool = Field(False, description="Replace the results already in --out (kept "
                            "until the new run completes).")
    resume: bool = Field(False, description="Continue an interrupted run from its newest "
                         "complete checkpoint.")
    keep_checkpoints: bool = Field(False, description="Keep the intermediate Trainer "
                                   "checkpoints under checkpoints/.")

    @field_validator("label_names", "lora_targets", mode="before")
    @classmethod
    def _split_commas(cls, v):
        if isinstance(v, str):
            v = [s.strip() for s in v.split(",") if s.strip()]
        return v or None

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.method]


# Settings that change how a run is carried out but not what it computes: a resumed run may
# differ in them.
_RUN_CONTROL = {"out", "overwrite", "resume", "keep_checkpoints"}


def run(cfg: FinetuneConfig) -> Path:
    started = time.perf_counter()
    if cfg.freeze_layers and cfg.method == "head":
        raise ConfigError("--freeze-layers has no effect with --method head (all is frozen)")
    placement = devices.choose(cfg.device, cfg.precision)
    backbone = backbones.resolve(cfg.model, cfg.allow_pickle, cfg.trust_remote_code)
    model_labels = None if cfg.new_head else backbone.label_names

    task = data.load_task(
        cfg.train, cfg.validation, cfg.test, text_column=cfg.text_column,
        text_pair_column=cfg.text_pair_column, label_column=cfg.label_column,
        label_names=cfg.label_names, validation_fraction=cfg.validation_fraction,
        seed=cfg.seed, model_labels=model_labels,
    )
    log.info("data: %s; classes: %s", ", ".join(f"{k} {len(v)}" for k, v in task.splits.items()),
             ", ".join(task.label_names))
    tokenizer = backbones.load_tokenizer(backbone, cfg.trust_remote_code)
    tokenized, truncation = data.tokenize(task, tokenizer, cfg.max_length,
                                          "error" if cfg.refuse_long else "truncate")

    inputs = tuple(Path(p) for p in task.sources.values() if Path(p).exists())
    out = OutputFolder(cfg.out, overwrite=cfg.overwrite, resume=cfg.resume,
                       inputs=inputs + ((Path(backbone.source),) if backbone.local else ()))
    main = training.is_main_process()
    # refuse an occupied --out now, before any slow work; the first process alone decides
    will_resume = out.check() if main else False
    settings = _settings(cfg, task, placement, backbone)
    _check_resume_settings(out.work / "settings.json", settings, will_resume)

    import torch
    from transformers import DataCollatorWithPadding, EarlyStoppingCallback, Trainer, set_seed

    set_seed(cfg.seed)  # the new head's initial weights depend on it
    model, new_modules = backbones.load_classifier(
        backbone, task.label_names, new_head=cfg.new_head, allow_pickle=cfg.allow_pickle,
        trust_remote_code=cfg.trust_remote_code,
    )
    _check_vocab(model, tokenizer, cfg.model)
    model = methods.apply(
        model, cfg.method, new_modules, freeze_layers=cfg.freeze_layers, lora_r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, lora_targets=cfg.lora_targets,
    )
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    args = training.training_arguments(
        out.work, placement, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.learning_rate,
        weight_decay=cfg.weight_decay, warmup_ratio=cfg.warmup_ratio, seed=cfg.seed,
        eval_steps=cfg.eval_steps, show_progress=training.show_bars(),
    )  # (this also joins the process group when started by torchrun/accelerate)
    # Every check has passed: only now is anything written, by the first process, while the
    # others wait and then find the same checkpoint to resume from.
    with args.main_process_first(desc="prepare the output folder"):
        if main:
            out.prepare()
            write_json(out.work / "settings.json", settings)
    checkpoint = training.newest_complete_checkpoint(out.work) if cfg.resume else None
    progress = training.progress_callback()
    callbacks = [EarlyStoppingCallback(cfg.patience)] if cfg.patience else []
    trainer = Trainer(
        model=model, args=args, train_dataset=tokenized["train"],
        eval_dataset=tokenized["validation"], processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=metrics.trainer_metrics,
        callbacks=callbacks,
    )
    training.use_our_progress(trainer, progress)
    if checkpoint:
        log.info("resuming from %s", checkpoint)
    log.info("training on %s, %d process(es)", placement.describe(), training.world_size())
    if placement.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    result = trainer.train(resume_from_checkpoint=checkpoint)

    # every process takes part in evaluation (DDP gathers predictions); only the first writes
    evaluations = {}
    for split in ("validation", "test"):
        if split in tokenized:
            pred = trainer.predict(tokenized[split], metric_key_prefix=split)
            evaluations[split] = metrics.report(
                pred.label_ids, pred.predictions.argmax(-1), task.label_names)
    if not main:
        return out.final

    merge = None
    model_to_save = trainer.model
    if cfg.method == "lora":
        trainer.model.save_pretrained(out.work / "adapter")  # safetensors by default
        batch = _probe_batch(tokenized["validation"], tokenizer, trainer.model.device)
        model_to_save, diff = methods.merge_checked(trainer.model, batch, cfg.merge_tolerance)
        merge = {"max_abs_logit_diff": diff, "tolerance": cfg.merge_tolerance,
                 "examples": int(batch["input_ids"].shape[0])}
    model_to_save.save_pretrained(out.work, safe_serialization=True)
    tokenizer.save_pretrained(out.work)

    state = trainer.state
    train_metrics = {
        "wall_time_s": round(time.perf_counter() - started, 1),
        "train_runtime_s": round(result.metrics.get("train_runtime", 0.0), 1),
        "train_samples_per_second": round(result.metrics.get("train_samples_per_second", 0.0), 2),
        "epochs_run": round(state.epoch or 0, 2),
        "steps": state.global_step,
        "best_checkpoint": Path(state.best_model_checkpoint).name
        if state.best_model_checkpoint else None,
        "best_validation_accuracy": state.best_metric,
        "trainable_parameters": trainable,
        "parameters": sum(p.numel() for p in model_to_save.parameters()),
        "device": placement.describe(),
        "processes": training.world_size(),
        "resumed_from": Path(checkpoint).name if checkpoint else None,
    }
    if placement.device == "cuda":
        train_metrics["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    result_metrics = {
        **evaluations,
        "training": train_metrics,
        "truncated": truncation.counts,
        "longest_tokens": truncation.longest,
        "merge_check": merge,
    }
    write_json(out.work / "metrics.json", result_metrics)
    write_json(out.work / "history.json", progress.history)
    training.plot_history(progress.history, out.work / "training.png",
                          f"finetune {cfg.method}: {backbone.name}")
    if not cfg.keep_checkpoints:
        import shutil

        shutil.rmtree(out.work / training.CHECKPOINTS, ignore_errors=True)
    summary = {k: evaluations[k]["accuracy"] for k in evaluations}
    write_manifest(
        out.work, "finetuned-classifier", settings,
        {f"{k}_accuracy": v for k, v in summary.items()} | {"wall_time_s":
                                                            train_metrics["wall_time_s"]},
        parents={"backbone": backbone.name, **task.sources},
        packages=("torch", "transformers", "peft", "datasets", "accelerate"),
    )
    final = out.commit()
    log.info("wrote %s  (%s; %s)", final, ", ".join(f"{k} accuracy {v:.4f}"
                                                   for k, v in summary.items()),
             f"{train_metrics['wall_time_s']:.0f}s")
    return final


def _settings(cfg, task, placement, backbone) -> dict:
    return {
        "stage": "finetune",
        "config": json.loads(cfg.model_dump_json()),
        "learning_rate": cfg.learning_rate,
        "columns": vars(task.columns),
        "label_names": task.label_names,
        "rows": {k: len(v) for k, v in task.splits.items()},
        "device": placement.device,
        "precision": placement.precision,
        "backbone_source": backbone.source if not backbone.local else backbone.name,
        "processes": training.world_size(),
    }


def _check_resume_settings(path: Path, settings: dict, resuming: bool) -> None:
    if not resuming or not path.exists():
        return
    before = json.loads(path.read_text(encoding="utf-8"))
    old, new = before.get("config", {}), settings["config"]
    changed = sorted(k for k in set(old) | set(new)
                     if k not in _RUN_CONTROL and old.get(k) != new.get(k))
    if changed:
        raise OutputError(
            f"--resume: the interrupted run used other settings ({', '.join(changed)}); "
            f"rerun with the same ones, or pass --overwrite to start over"
        )


def _check_vocab(model, tokenizer, name: str) -> None:
    """Token ids past the embedding table crash deep inside torch; say so plainly instead."""
    table = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > table:
        from ..errors import ModelError

        raise ModelError(
            f"--model {name}: the tokenizer has {len(tokenizer)} tokens but the model's embedding "
            f"table only {table}; the tokenizer belongs to another model"
        )


def _probe_batch(dataset, tokenizer, device, n: int = 32) -> dict:
    from transformers import DataCollatorWithPadding

    rows = [dataset[i] for i in range(min(n, len(dataset)))]
    batch = DataCollatorWithPadding(tokenizer)(rows)
    batch.pop("labels", None)
    return {k: v.to(device) for k, v in batch.items()}
