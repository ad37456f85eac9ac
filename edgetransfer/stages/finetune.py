"""Stage `finetune`: adapt a backbone to a labelled text-classification task.

Input: a backbone (built-in name, local folder, hub id) and labelled splits.
Output (the folder given as `out`): a plain HF checkpoint loadable with
AutoModelForSequenceClassification (LoRA merged in; the adapter kept under adapter/),
metrics.json, settings.json, history.json, training.png and artifact.json.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from .. import backbones, data, devices, methods, training
from ..artifacts import OutputFolder
from ..errors import ConfigError, ModelError, OutputError
from ..options import RUN_CONTROL, DataOptions, OutputOptions, TrainOptions, comma_list, data_kwargs

log = logging.getLogger(__name__)

# Learning rates by method, measured on the quickstart intents and SST-2 with minilm-l6
# (bench/finetune_methods.py): the fewer weights move, the larger the step they tolerate.
DEFAULT_LR = {"full": 1e-4, "lora": 1e-3, "head": 3e-3}


class FinetuneConfig(DataOptions, TrainOptions, OutputOptions):
    """Settings of `edgetransfer finetune`; each description is the CLI help."""

    model: str = Field("minilm-l6", description="Backbone: 'minilm-l6' (all-MiniLM-L6-v2, "
                       "bundled, offline), a local HF folder, or a hub id when online.")
    new_head: bool = Field(False, description="Replace an existing classification head whose "
                           "classes differ from the data's.")
    method: Literal["full", "lora", "head"] = Field("full", description="What is trained: all "
                                                    "weights, LoRA adapters (merged at the "
                                                    "end), or the classification head only.")
    lr: float | None = Field(None, gt=0, description="Peak learning rate [default by method: "
                             "full 1e-4, lora 1e-3, head 3e-3].")
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

    @field_validator("lora_targets", mode="before")
    @classmethod
    def _split_targets(cls, v):  # (a distinct name: a same-named one would hide DataOptions')
        return comma_list(v)

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.method]


def run(cfg: FinetuneConfig) -> Path:
    started = time.perf_counter()
    if cfg.freeze_layers and cfg.method == "head":
        raise ConfigError("--freeze-layers has no effect with --method head (all is frozen)")
    placement = devices.choose(cfg.device, cfg.precision)
    backbone = backbones.resolve(cfg.model, cfg.allow_pickle, cfg.trust_remote_code)
    model_labels = None if cfg.new_head else backbone.label_names

    backbones.check_max_length(backbone, cfg.max_length)
    task = data.load_task(cfg.train, cfg.validation, cfg.test, model_labels=model_labels,
                          **data_kwargs(cfg))
    log.info("data: %s; classes: %s", ", ".join(f"{k} {len(v)}" for k, v in task.splits.items()),
             ", ".join(task.label_names))
    tokenizer = backbones.load_tokenizer(backbone, cfg.trust_remote_code)
    tokenized, truncation = data.tokenize(task, tokenizer, cfg.max_length,
                                          "error" if cfg.refuse_long else "truncate")

    out = output_folder(cfg, task, [backbone])
    settings = _settings(cfg, task, placement, backbone)

    from transformers import set_seed

    set_seed(cfg.seed)  # the new head's initial weights depend on it
    model, new_modules = backbones.load_classifier(
        backbone, task.label_names, new_head=cfg.new_head, allow_pickle=cfg.allow_pickle,
        trust_remote_code=cfg.trust_remote_code,
    )
    check_vocab(model, tokenizer, cfg.model)
    model = methods.apply(
        model, cfg.method, new_modules, freeze_layers=cfg.freeze_layers, lora_r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, lora_targets=cfg.lora_targets,
    )
    fitted = training.fit(model=model, tokenizer=tokenizer, tokenized=tokenized,
                          label_names=task.label_names, opts=cfg, lr=cfg.learning_rate, out=out,
                          settings=settings, placement=placement, started=started)
    if not training.is_main_process():
        return out.final

    merge = None
    trained = fitted.trainer.model
    if cfg.method == "lora":
        trained.save_pretrained(out.work / "adapter")  # safetensors by default
        batch = probe_batch(tokenized["validation"], tokenizer, trained.device)
        trained, diff = methods.merge_checked(trained, batch, cfg.merge_tolerance)
        merge = {"max_abs_logit_diff": diff, "tolerance": cfg.merge_tolerance,
                 "examples": int(batch["input_ids"].shape[0])}
    fitted.train_metrics["parameters"] = sum(p.numel() for p in trained.parameters())
    result = {**fitted.evaluations, "training": fitted.train_metrics,
              "truncated": truncation.counts, "longest_tokens": truncation.longest,
              "merge_check": merge}
    return training.finish(out, fitted, model=trained, tokenizer=tokenizer,
                           kind="finetuned-classifier", settings=settings, metrics=result,
                           parents={"backbone": backbone.name, **task.sources},
                           title=f"finetune {cfg.method}: {backbone.name}",
                           keep_checkpoints=cfg.keep_checkpoints)


def output_folder(cfg, task, models, extra_inputs=()) -> OutputFolder:
    """The stage's OutputFolder, checked now (before slow work) by the first process alone."""
    inputs = [Path(p) for p in [*task.sources.values(), *extra_inputs] if Path(p).exists()]
    inputs += [Path(m.source) for m in models if m.local]
    out = OutputFolder(cfg.out, overwrite=cfg.overwrite, resume=cfg.resume, inputs=tuple(inputs))
    will_resume = out.check() if training.is_main_process() else False
    if will_resume:
        _check_resume_settings(out.work / "settings.json", cfg)
    return out


def _settings(cfg, task, placement, backbone) -> dict:
    return {
        "stage": "finetune",
        "config": json.loads(cfg.model_dump_json()),
        "learning_rate": cfg.learning_rate,
        **task_settings(task, placement),
        "backbone_source": backbone.source if not backbone.local else backbone.name,
    }


def task_settings(task, placement) -> dict:
    return {
        "columns": vars(task.columns),
        "label_names": task.label_names,
        "rows": {k: len(v) for k, v in task.splits.items()},
        "device": placement.device,
        "precision": placement.precision,
        "processes": training.world_size(),
    }


def _check_resume_settings(path: Path, cfg) -> None:
    if not path.exists():
        return
    before = json.loads(path.read_text(encoding="utf-8"))
    if before.get("processes", 1) != training.world_size():
        raise OutputError(
            f"--resume: the interrupted run used {before.get('processes', 1)} process(es), this "
            f"one {training.world_size()}: batches and steps would differ; resume with the same "
            f"number, or pass --overwrite")
    old = before.get("config", {})
    new = json.loads(cfg.model_dump_json())
    changed = sorted(k for k in set(old) | set(new)
                     if k not in RUN_CONTROL and old.get(k) != new.get(k))
    if changed:
        raise OutputError(
            f"--resume: the interrupted run used other settings ({', '.join(changed)}); "
            f"rerun with the same ones, or pass --overwrite to start over"
        )


def check_vocab(model, tokenizer, flag: str) -> None:
    """Token ids past the embedding table crash deep inside torch; say so plainly instead."""
    table = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > table:
        raise ModelError(
            f"--model {flag}: the tokenizer has {len(tokenizer)} tokens but the model's embedding "
            f"table only {table}; the tokenizer belongs to another model"
        )


def probe_batch(dataset, tokenizer, device, n: int = 32) -> dict:
    """A padded batch of the first `n` examples, labels dropped, for output checks."""
    from transformers import DataCollatorWithPadding

    rows = [{k: v for k, v in dataset[i].items() if k in ("input_ids", "attention_mask",
                                                            "token_type_ids")}
            for i in range(min(n, len(dataset)))]
    batch = DataCollatorWithPadding(tokenizer)(rows)
    return {k: v.to(device) for k, v in batch.items()}
