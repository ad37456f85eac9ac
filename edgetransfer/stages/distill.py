"""Stage `distill`: teach a small, fast student from a fine-tuned teacher.

Input: a teacher checkpoint with a task head (a `finetune` output), the labelled splits,
optionally unlabelled in-domain text the teacher labels. Output: a plain HF checkpoint
(loads with the task's AutoModelFor... class), metrics.json with teacher and student side
by side, settings.json, history.json, training.png and artifact.json. The task supplies the
loss on the outputs (soft targets and gold labels for classification); hidden-state and
attention transfer are task-free.

The teacher's logits over the transfer set are computed once, before training, and ride
along in the dataset. Hidden-state and attention transfer between models that tokenize
alike need per-token teacher states, which would cost tokens x width x layers floats to
cache, so those run the teacher in inference mode beside the student instead; across
tokenizers the hidden states pass pooled (each row's first-token and mean state per mapped
layer: 2 x width floats), computed once with the logits and cached beside them, so the
teacher (a 12-layer mpnet-base: most of a step's time) does not run while the student
trains.
"""

from __future__ import annotations

import json
import logging
import time
import zipfile
from pathlib import Path
from typing import NamedTuple

from pydantic import Field, field_validator
from pydantic.fields import FieldInfo

from .. import paths, tasks
from ..artifacts import OutputFolder
from ..data import augment_images, augment_text, splits
from ..errors import ConfigError, DataError, ModelError
from ..measure import floor
from ..modeling import architectures, backbones, students
from ..options import (
    MAX_BATCH,
    DataOptions,
    HeadDataOptions,
    OutputOptions,
    TaskOption,
    TrainOptions,
    comma_list,
)
from ..tasks.task import EXAMPLE
from ..train import devices, training
from ..train.length_order import length_order
from ..train.outputs import output_folder, run_settings
from ..train.progress import pass_progress

log = logging.getLogger(__name__)

# The command's --help (edgetransfer.cli makes the command from the registry).
HELP = """Distill a fine-tuned teacher into a smaller, faster student.

\b
Example: a 3-layer student cut from a 6-layer teacher (layers 0, 2, 5 kept):
  edgetransfer distill --teacher models/demo/teacher --student-layers 3 \\
      --train recipes/data/intents/train.jsonl \\
      --validation recipes/data/intents/validation.jsonl --out models/demo/student

The loss mixes soft targets (KL at --temperature, weight --alpha) with cross-entropy on
the gold labels; --hidden-weight and --attention-weight add hidden-state and attention
transfer over the layer mapping.
"""


class DistillConfig(TaskOption, DataOptions, HeadDataOptions, TrainOptions, OutputOptions):
    """Settings of `edgetransfer distill`; each description is the CLI help."""

    teacher: str = Field(description="The fine-tuned teacher: a folder written by "
                         "`edgetransfer finetune` (any HF model with the task's head).")
    student_layers: int | None = Field(None, ge=1, description="Student = the teacher cut to "
                                       "N layers spread over its depth (first and last kept; "
                                       "6 -> 3 keeps 0,2,5); a CNN to N blocks, each stage "
                                       "keeping its first [default: half the teacher's]. "
                                       "With --student: that model cut so.")
    keep_layers: list[int] | None = Field(None, description="Student = exactly these teacher "
                                          "layers (a CNN's blocks), comma-separated (e.g. "
                                          "0,5); with --student, that model's.")
    student: str | None = Field(None, description="Student = another model: an HF folder "
                                "with weights, or one with only config.json (random init). "
                                "With a tokenizer of its own, each model reads the text its "
                                "own way and the teacher's outputs reach the student per "
                                "example (per word for a tagger). Images: another "
                                "EfficientNet-Lite (efficientnet-lite0 under a Lite2 "
                                "teacher), each reading a picture at its own side: the teacher at "
                                "its checkpoint's, the student at --image-size.")
    # Defaults measured on SST-2 with minilm-l6, a 3-layer student, 5,000 labelled rows
    # (bench/distill_sst2.py --sweep; bench/RESULTS.md "distill defaults"); accuracy on
    # validation.tsv, one change at a time from T=2, alpha=0.5, no hidden loss (0.8349):
    temperature: float = Field(2.0, gt=0, description="Softmax temperature of the soft "
                               "targets; the KL term is scaled by T^2. (T=4: 0.8360, within "
                               "one example of T=2's 0.8349 out of 872.)")
    alpha: float = Field(0.5, ge=0, le=1, description="Weight of the soft-target KL term; "
                         "1 - alpha weights cross-entropy on the gold labels. (alpha=0.9: "
                         "0.8349, the same as 0.5.)")
    hidden_weight: float | None = Field(None, ge=0, description="Weight of the hidden-state "
                                        "MSE over the layer mapping (a CNN: the feature maps "
                                        "at each stage's end); 0 turns it off [default: 1.0; "
                                        "0 for a student with another tokenizer, whose "
                                        "tokens do not line up with the teacher's: given, "
                                        "each row's first-token and mean states pass, the "
                                        "teacher's computed once]. (1.0: "
                                        "0.8429 against 0.8349 without: the largest gain "
                                        "measured, for 2x the step time since the teacher "
                                        "then runs beside the student.)")
    attention_weight: float = Field(0.0, ge=0, description="Weight of the attention-"
                                    "distribution KL over the layer mapping (0: off; not "
                                    "measured on SST-2 yet, so off by default).")
    unlabeled: str | None = Field(None, description="Unlabelled in-domain texts (CSV/TSV/"
                                  "JSONL/Parquet) for the teacher to label and the student "
                                  "to learn from (soft targets only); its rows that train "
                                  "or validation holds are left out.")
    unlabeled_column: str | None = Field(None, description="Text column of --unlabeled "
                                         "[default: as for --text-column].")
    augment: str | None = Field(None, description="New sentences made from the training rows "
                                "for the teacher to label beside them (text and token "
                                "classification): a preset of docs/distill.md, e.g. tinybert "
                                "(20 copies a row, 40% of words replaced by the teacher's "
                                "embedding neighbours); off by default; deterministic by "
                                "--seed; cached with the teacher's outputs by "
                                "--teacher-cache.")
    augment_unlabeled: bool = Field(False, description="--augment copies --unlabeled's rows "
                                    "too (those it keeps: none that train, validation or "
                                    "test holds), not only the training rows (TinyBERT "
                                    "copied all of SST-2's train); single-text "
                                    "classification.")
    lr: float | None = Field(None, gt=0, description="Peak learning rate [default 1e-4; "
                             "image-classification 1e-3].")
    teacher_batch_size: int = Field(64, ge=1, le=MAX_BATCH, description="Batch size for "
                                    "computing the "
                                    "teacher's outputs once.")
    teacher_cache: str | None = Field(None, description="A folder to keep the teacher's "
                                      "outputs over the transfer set in, keyed by the "
                                      "teacher and the transfer rows, so later runs (other "
                                      "students of the same teacher) reuse them [default: "
                                      "none; a recipe's: teacher-cache/ under its folder].")

    @field_validator("keep_layers", mode="before")
    @classmethod
    def _split_layers(cls, v):
        v = comma_list(v)
        try:
            return [int(x) for x in v] if v else None
        except ValueError:
            raise ValueError("give layer numbers, comma-separated, e.g. 0,5") from None


# --hidden-weight's default where teacher and student tokenize alike (measured: its help)
HIDDEN_WEIGHT = 1.0

# The student's learning rate, measured on SST-2 with minilm-l6 (bench/distill_sst2.py); a
# task whose models want another says so (Task.learning_rates["distill"]: images' CNN).
DEFAULT_LR = 1e-4


def learning_rate_for(cfg: DistillConfig, task) -> float:
    """--lr, else the task's rate for distillation, else DEFAULT_LR."""
    return cfg.lr if cfg.lr is not None else task.learning_rates.get("distill", DEFAULT_LR)


def check_settings(cfg: DistillConfig) -> None:
    """The settings alone, before anything is read or loaded (under `run`: before the
    recipe's first step)."""
    if cfg.augment is not None:
        _augments_images(cfg.augment)  # (a name that is no preset: refused before loading)
    if cfg.augment_unlabeled and not (cfg.augment and cfg.unlabeled):
        raise ConfigError("--augment-unlabeled: copies --unlabeled's rows with --augment's "
                          "preset; give both, or leave it out")
    # (with --student, --student-layers or --keep-layers cut that model instead)
    if cfg.student_layers and cfg.keep_layers:
        raise ConfigError("--student-layers and --keep-layers both choose the student; give "
                          "one")
    if cfg.student and paths.same(cfg.student, cfg.teacher):
        raise ConfigError(f"--student {cfg.student}: is the --teacher itself, so nothing gets "
                          f"smaller; give a smaller model, or --student-layers")
    if cfg.teacher_cache:
        cache = Path(cfg.teacher_cache)
        if cache.exists() and not cache.is_dir():
            raise ConfigError(f"--teacher-cache {cache}: is a file; give a folder")
        out = OutputFolder(cfg.out)  # (its names only: nothing is checked or written)
        if any(paths.inside(cache, f) for f in (out.final, out.work, out.old)):
            raise ConfigError(f"--teacher-cache {cache}: is inside --out {cfg.out}, which the "
                              f"result replaces; keep the cache in another folder")
        for flag, model in (("--teacher", cfg.teacher), ("--student", cfg.student)):
            if model and Path(model).is_dir() and paths.inside(cache, model):
                raise ConfigError(f"--teacher-cache {cache}: is inside {flag} {model}; inputs "
                                  f"are never written, keep the cache in another folder")


def run(cfg: DistillConfig) -> Path:
    started = time.perf_counter()
    check_settings(cfg)
    placement = devices.choose(cfg.device, cfg.precision)
    teacher_bb, student_bb, task, teacher_floor = _resolve(cfg)
    images = bool(_check_augment(cfg, task))  # (augmented images: taught online)
    cfg, data, toks, rows, truncation, differs = _read_rows(cfg, task, teacher_bb, student_bb)
    if cfg.augment and not images:  # (before the teacher loads)
        augment_text.check_task(task.name, data.splits["train"], cfg.augment,
                                unlabeled=cfg.augment_unlabeled)
    cross = rows["teacher"] is not rows["student"]  # (each model tokenizes for itself)
    # the preprocessors that make rows of their own: not an image's two sides, which read
    # one set of rows (an --unlabeled folder is listed and checked once)
    tokenizers = (toks["student"], toks["teacher"]) if cross else (toks["student"],)
    unlabeled, known, keep = _unlabeled(cfg, task, tokenizers, data, rows["student"])
    # (the texts --augment copies beside train's: --unlabeled's that it keeps)
    more = augment_text.texts_of(cfg.unlabeled, cfg.unlabeled_column, keep) \
        if cfg.augment_unlabeled else []
    if cfg.augment and not images:
        _check_text_rows(cfg, data, more)
    out = output_folder(cfg, data.sources, [teacher_bb] + ([student_bb] if student_bb else []),
                        extra_inputs=[cfg.unlabeled] if cfg.unlabeled else [])

    from transformers import set_seed

    set_seed(cfg.seed)
    eager = cfg.attention_weight > 0  # attention maps come only from the eager kernels
    teacher = _teacher(cfg, teacher_bb, task, toks["teacher"], eager)
    # (text: new rows the teacher labels once, beside --unlabeled's)
    augmented = (_augmented(cfg, task, tokenizers, data, teacher, rows["student"], more)
                 if cfg.augment and not images else None)
    # each extra as (the student's rows, the teacher's rows): the same rows but across
    # tokenizers
    extras = [(d[0], d[-1]) for d in (unlabeled, augmented) if d is not None]
    student, keep, mapping = _build_student(cfg, teacher, student_bb, toks["student"], task,
                                            data, eager)
    backbones.check_reads(task, student, toks["student"], cfg)
    n_s = architectures.layer_count(student)
    _fit_for_transfer(cfg, student, teacher, eager, mapping)
    device = _torch_device(placement)
    targets = _teacher_targets(cfg, teacher, rows, extras, task, toks, data, device,
                               cached=not images, mapping=mapping)
    transfer = targets.transfer
    if images:  # (each image read augmented: the teacher runs on every batch beside)
        transfer = augment_images.on_splits(cfg.augment, cfg.seed, task,
                                            {"train": transfer})["train"]

    lr = learning_rate_for(cfg, task)
    settings = _settings(cfg, lr, keep, mapping, _count(rows["student"]["train"]), extras,
                         run_settings(task, data, placement) | differs,
                         augmented=augmented, images=images, cross=cross)
    if known:
        settings["transfer_rows"]["unlabelled_left_out_as_labelled"] = known
    fitted = training.fit(
        model=student, tokenizer=toks["student"], task=task, tokenized=rows["student"],
        label_names=data.label_names, opts=cfg, lr=lr, out=out, settings=settings,
        placement=placement, started=started, train_dataset=transfer,
        collator=_collator(task, toks, differs),
        teacher_floor=teacher_floor, trainer_class=distill_trainer_class(),
        trainer_kwargs=_trainer_kwargs(cfg, task, teacher, mapping, images, targets.pooled))
    if not training.is_main_process():
        return out.final
    trained = fitted.trainer.model
    if hasattr(trained, "distill_projection"):
        del trained.distill_projection
    fitted.train_metrics["teacher_outputs_s"] = round(targets.seconds, 1)
    comparison = _side_by_side(teacher, trained, targets.evaluations, fitted.evaluations, task)
    result = {**fitted.evaluations, "teacher": targets.evaluations, "comparison": comparison,
              "training": fitted.train_metrics, truncation.kind: truncation.counts}
    return training.finish(out, fitted, model=trained, tokenizer=toks["student"], task=task,
                           kind="distilled-model", settings=settings, metrics=result,
                           parents={"teacher": cfg.teacher, **data.sources,
                                    **({"unlabeled": cfg.unlabeled} if cfg.unlabeled else {})},
                           title=f"distill: {n_s}-layer student of {Path(cfg.teacher).name}",
                           keep_checkpoints=cfg.keep_checkpoints)


def _read_rows(cfg: DistillConfig, task, teacher_bb, student_bb):
    """(cfg with --hidden-weight decided, the labelled splits, the preprocessors and the
    model rows each makes of them: {"student": ..., "teacher": ...}, one and the same unless
    the student tokenizes differently; the student's truncation record; what the student's
    preprocessor does otherwise than the teacher's (Task.student_preprocessor: an image's
    side), {} where nothing)."""
    splits.warn_shared({"train": cfg.train, "validation": cfg.validation, "test": cfg.test,
                        "unlabeled": cfg.unlabeled})
    data = task.read(cfg, teacher_bb.head_labels(task))
    tokenizer = task.load_preprocessor(teacher_bb, cfg.trust_remote_code)
    student_tok = _student_tokenizer(cfg, student_bb, task, tokenizer)
    cross = student_tok is not tokenizer  # (each model reads the text its own way)
    # (the same rows, each model preprocessing them its own way: a picture at each side)
    own = (task.student_preprocessor(tokenizer, cfg)
           if not cross and task.student_preprocessor else None)
    student_tok, differs = own or (student_tok, {})
    cfg = _transfer_weights(cfg, cross, task)
    tokenized, truncation = task.prepare(data, student_tok, cfg)
    theirs = task.prepare(data, tokenizer, cfg)[0] if cross else tokenized
    return (cfg, data, {"student": student_tok, "teacher": tokenizer},
            {"student": tokenized, "teacher": theirs}, truncation, differs)


def _collator(task, toks: dict, differs: dict):
    """The Trainer's collator: the student's; where the teacher preprocesses the same rows
    otherwise (`differs`, _read_rows': a picture at its own side), each batch also holds
    the teacher's own inputs, TEACHER_INPUT + their names, which DistillTrainer feeds it
    when it runs beside the student (augmented pictures, feature maps): both read the one
    augmented picture."""
    ours = task.collator(toks["student"])
    if not differs:
        return ours
    theirs = task.collator(toks["teacher"])

    def collate(rows: list[dict]) -> dict:
        batch = ours(rows)
        # (the model's inputs alone: not the labels, nor the cached teacher outputs)
        return batch | {TEACHER_INPUT + k: v for k, v in theirs(rows).items()
                        if "label" not in k and not k.startswith("teacher_")}

    return collate


def _trainer_kwargs(cfg: DistillConfig, task, teacher, mapping, images: bool,
                    pooled) -> dict:
    """What DistillTrainer takes beyond the Trainer's: the loss's settings, the teacher
    where it runs beside the student (hidden states between models that tokenize alike,
    attention maps, augmented images), and its pooled states where they were computed once
    (across tokenizers)."""
    online = (cfg.hidden_weight > 0 and pooled is None) or cfg.attention_weight > 0 or images
    return {"task": task, "teacher": teacher if online else None, "alpha": cfg.alpha,
            "temperature": cfg.temperature, "hidden_weight": cfg.hidden_weight,
            "attention_weight": cfg.attention_weight, "mapping": mapping,
            "online_targets": images, "teacher_pooled": pooled}


def _teacher(cfg: DistillConfig, teacher_bb, task, tokenizer, eager: bool):
    """The teacher, loaded frozen (with the eager attention kernels where its attention
    maps are transferred: only they return them)."""
    teacher = backbones.load_trained(teacher_bb, task, allow_pickle=cfg.allow_pickle,
                                     trust_remote_code=cfg.trust_remote_code,
                                     attn_implementation="eager" if eager else None,
                                     flag="--teacher")
    backbones.check_vocab(teacher, tokenizer, cfg.teacher, "--teacher")
    teacher.requires_grad_(False)
    return teacher


def _student_tokenizer(cfg: DistillConfig, student_bb, task, tokenizer):
    """The student's tokenizer: the teacher's (`tokenizer` itself) when the student has none
    or one with the same tokens, else its own, for a task that can put the teacher's
    outputs onto another tokenizer's rows (Task.to_rows)."""
    if student_bb is None or not backbones.has_tokenizer(student_bb):
        return tokenizer
    # (its tokenizer alone: a task's preprocessor may want the head config a bare student
    # lacks, a joint model's)
    own = backbones.load_tokenizer(student_bb, cfg.trust_remote_code)
    if students.same_tokens(tokenizer, own):
        return tokenizer
    if task.to_rows is None:
        raise ConfigError(f"--student {cfg.student}: its tokenizer differs from the "
                          f"teacher's, and {task.name} distils only between models that "
                          f"tokenize alike; give a student with the teacher's tokenizer")
    log.info("--student %s tokenizes differently from the teacher: each reads the text its "
             "own way; soft targets per example (per word for a tagger)", cfg.student)
    return own


def _transfer_weights(cfg: DistillConfig, cross: bool, task) -> DistillConfig:
    """cfg with --hidden-weight decided: HIDDEN_WEIGHT by default. Across tokenizers the
    models' token positions do not line up: the default is 0; a weight given transfers
    each row's first-token and mean states (losses.pooled_state_loss), for a task whose
    rows are its examples (not a tagger's windows); attention maps are refused."""
    if not cross:
        weight = HIDDEN_WEIGHT if cfg.hidden_weight is None else cfg.hidden_weight
        return cfg.model_copy(update={"hidden_weight": weight})
    refused = [("--attention-weight", cfg.attention_weight)] + (
        [("--hidden-weight", cfg.hidden_weight)] if task.index_columns else [])
    for flag, value in refused:
        if value:
            raise ConfigError(f"{flag} {value}: the student tokenizes differently from the "
                              f"teacher, so their tokens' states do not line up; give {flag} "
                              f"0 (the soft targets still pass, per example or per word)")
    return cfg.model_copy(update={"hidden_weight": cfg.hidden_weight or 0.0})


def _unlabeled(cfg: DistillConfig, task, tokenizers: tuple, data, labelled: dict) -> tuple:
    """(--unlabeled's rows, read as the task reads them, once per tokenizer (None without
    it), less those train, validation or test hold (`labelled`: the student's rows of each
    split); how many of those were left out; the numbers of the examples kept)."""
    if not cfg.unlabeled:
        return None, 0, []
    if task.read_unlabeled is None:
        raise ConfigError(f"--unlabeled: the task {task.name} takes no unlabelled data")
    read = tuple(task.read_unlabeled(cfg.unlabeled, cfg.unlabeled_column, tok, cfg.max_length,
                                     data) for tok in tokenizers)
    return _outside(read, _labelled(labelled), "--unlabeled", cfg.unlabeled)


def _labelled(rows: dict) -> list:
    """The splits whose examples no row without a gold label repeats: train's are taught
    with their gold labels, validation's choose the checkpoint, and test's are the figure
    reported (its texts taught with the teacher's answers would be a leak)."""
    return [rows[k] for k in ("train", "validation", "test") if k in rows]


def _outside(read: tuple, labelled: list, flag: str, spec: str) -> tuple:
    """(`read` (per tokenizer, the student's first, as `labelled` is tokenized) less the
    examples a labelled split holds already (_labelled says why); how many were left out;
    the numbers of the examples kept). So the train file itself
    can be --unlabeled beside a --train-sample of it (the recipes with a strong teacher):
    the sample labelled (and validation carved from it), the rest unlabelled, none twice.

    By example, not by row: a tagger's long sentence is several rows (windows), as many as
    each tokenizer needs, so row numbers would name other sentences in the teacher's rows
    than in the student's; the same examples are kept in every tokenizer's rows."""
    known = {key for split in labelled for key in _example_keys(split).values()}
    keys = _example_keys(read[0])
    keep = [example for example, key in keys.items() if key not in known]
    if not keep:
        raise DataError(f"{flag} {spec}: every row is one that train, validation or test "
                        f"holds already; give rows they do not")
    left = len(keys) - len(keep)
    if left:
        log.info("%s: %d of %d examples left out, train, validation or test holds them",
                 flag, left, len(keys))
    return (tuple(_examples(d, keep) for d in read) if left else read), left, keep


def _example_keys(ds) -> dict:
    """Each example's key (its rows' keys, _row_keys), by example number: a row's own
    number where rows carry none (one row, one example)."""
    rows = _row_keys(ds)
    if EXAMPLE not in ds.column_names:
        return dict(enumerate(rows))
    keys: dict = {}
    for example, key in zip(ds[EXAMPLE], rows):
        keys[example] = keys.get(example, ()) + (key,)
    return keys


def _count(ds) -> int:
    """Examples, not model rows: a long sentence's overlapping windows are one sentence."""
    return len(set(ds[EXAMPLE])) if EXAMPLE in ds.column_names else len(ds)


def _examples(ds, keep: list):
    """The rows of the examples `keep` (their numbers kept: Task.to_rows matches the
    teacher's examples to the student's in order of them)."""
    if EXAMPLE not in ds.column_names:
        return ds.select(keep)
    kept = set(keep)
    return ds.select([i for i, example in enumerate(ds[EXAMPLE]) if example in kept])


def _row_keys(ds) -> list:
    """What makes two rows one: text and words, their token ids (one tokenizer, one
    truncation); images, the sha256 of the bytes each is read from, not decoded (by
    content, not by file name: a copy of test's pictures in another folder is test's)."""
    if "input_ids" in ds.column_names:
        return [tuple(ids) for ids in ds["input_ids"]]
    import hashlib

    from datasets import Image

    files = ds.cast_column("image", Image(decode=False))["image"]
    return [hashlib.sha256(f["bytes"] if f.get("bytes") is not None
                           else Path(f["path"]).read_bytes()).hexdigest() for f in files]


def _augments_images(name: str) -> bool:
    """Whether --augment NAME is an image preset (else a text one; a name of neither is
    refused)."""
    if name in augment_images.PRESETS:
        return True
    augment_text.preset(name)
    return False


def _check_augment(cfg: DistillConfig, task) -> bool | None:
    """Whether --augment augments images (None: no --augment); its preset fits the task's
    inputs (an image preset for images, a text one for text), said before anything is
    loaded."""
    from ..bundle import inputs as bundle_inputs

    if cfg.augment is None:
        return None
    images = task.inputs.reader is bundle_inputs.IMAGE
    if images != _augments_images(cfg.augment):
        kind, presets = (("an image", augment_images.PRESETS) if images
                         else ("a text", augment_text.PRESETS))
        raise ConfigError(f"--augment {cfg.augment}: {task.name} takes {kind} preset: "
                          f"{', '.join(presets)}")
    if images and cfg.augment_unlabeled:
        raise ConfigError("--augment-unlabeled: pictures are augmented as they are read, "
                          "--unlabeled's with train's already; leave it out")
    return images


def _check_text_rows(cfg: DistillConfig, data, more: list[str]) -> None:
    """A preset with a floor of words (long) finds rows that reach it, or says so (before
    the teacher loads)."""
    aug = augment_text.preset(cfg.augment)
    if aug.min_words and not augment_text.long_enough(data.splits["train"], aug, more):
        where = f"{cfg.train} or {cfg.unlabeled}" if cfg.augment_unlabeled else cfg.train
        raise DataError(f"--augment {cfg.augment}: no row of {where} has {aug.min_words} "
                        f"words or more to copy; choose another preset "
                        f"({', '.join(augment_text.PRESETS)})")


def _augmented(cfg: DistillConfig, task, tokenizers: tuple, data, teacher, labelled: dict,
               more: list[str]):
    """--augment's rows (data/augment_text.py: words from the teacher's vocabulary and
    embedding neighbourhood), made from train's rows and `more` (--unlabeled's texts, with
    --augment-unlabeled), read back through the task's unlabelled reader, so they are
    checked and tokenized as --unlabeled's are, once per tokenizer (the teacher's last),
    each with its own mask token; less those a labelled split holds (`labelled`, as
    _unlabeled)."""
    import tempfile

    aug, tokenizer = augment_text.preset(cfg.augment), tokenizers[-1]
    embeddings = teacher.get_input_embeddings().weight.detach().float().cpu().numpy()
    made = augment_text.make_rows(task.name, data, embeddings, tokenizer.get_vocab(), aug,
                                  cfg.seed, more)
    floor = f" of {aug.min_words} words or more" if aug.min_words else ""
    train = data.splits["train"]
    also = (f" and {augment_text.copied(more, aug)} of the {len(more)} unlabelled rows"
            if cfg.augment_unlabeled else "")
    log.info("--augment %s: %d new rows from %d of the %d training rows%s%s (%d copies each, "
             "less those alike or equal to a row given), for the teacher to label",
             cfg.augment, len(made), augment_text.long_enough(train, aug), len(train), also,
             floor, aug.copies)
    if not made:
        sources = f"{cfg.train}'s and {cfg.unlabeled}'s" if cfg.augment_unlabeled \
            else f"{cfg.train}'s"
        raise DataError(f"--augment {cfg.augment}: every copy of {sources} rows came out "
                        f"as a row given or another copy; choose another preset "
                        f"({', '.join(augment_text.PRESETS)})")
    read = []
    with tempfile.TemporaryDirectory(prefix="edgetransfer-augment-") as scratch:
        for i, tok in enumerate(tokenizers):
            path = Path(scratch) / f"augmented-{i}.jsonl"
            augment_text.write_rows(task.name, made, tok.mask_token or tok.unk_token, path)
            read.append(task.read_unlabeled(str(path), None, tok, cfg.max_length, data))
    return _outside(tuple(read), _labelled(labelled), "--augment", cfg.augment)[0]


def _settings(cfg: DistillConfig, lr: float, keep, mapping, labelled: int, extras: list,
              run: dict, *, augmented, images: bool, cross: bool) -> dict:
    """settings.json: the config, and what the run decided (student, mapping, rows,
    tokenizers, augmentation). `extras`: (student's, teacher's) rows without gold labels."""
    settings = {
        "stage": "distill",
        "config": json.loads(cfg.model_dump_json()),
        "learning_rate": lr,
        "student_kind": ("teacher-layers" if not cfg.student else "model-layers" if keep
                         else "model"),
        "keep_layers": keep,
        "layer_mapping": mapping,
        # (unlabelled: every row without a gold label, --unlabeled's and --augment's)
        "transfer_rows": {"labelled": labelled,
                          "unlabelled": sum(_count(d) for d, _ in extras)},
        "tokenizers": ("each its own: the teacher's outputs reach the student per example (a "
                       "tagger's per word, at each word's first sub-token)"
                       + ("; hidden states as each row's first-token and mean states"
                          if cfg.hidden_weight > 0 else "") if cross else "the teacher's"),
        **run,
    }
    if augmented is not None:
        made = settings["transfer_rows"]["augmented"] = _count(augmented[0])
        settings["augment"] = {"preset": cfg.augment, "seed": cfg.seed, "rows": made,
                               "unlabeled": cfg.augment_unlabeled,
                               **augment_text.preset(cfg.augment).record()}
    elif images:
        settings["augment"] = {"preset": cfg.augment, "seed": cfg.seed, "teacher": "online",
                               **augment_images.preset(cfg.augment).record()}
    return settings


class Targets(NamedTuple):
    transfer: object  # the student's transfer rows (a datasets.Dataset), targets beside
    seconds: float  # what the teacher's pass over them took (0: read from the cache)
    evaluations: dict  # the teacher's own figures on validation and test
    pooled: object = None  # (rows, pairs, 2 x width) torch tensor: across tokenizers


def _teacher_targets(cfg: DistillConfig, teacher, rows: dict, extras: list, task,
                     tokenizers: dict, data, device, cached: bool = True,
                     mapping=()) -> Targets:
    """The student's transfer rows (train and `extras`, rows without gold labels) with the
    teacher's logits computed once or read from the cache; across tokenizers with
    --hidden-weight, its pooled states at `mapping`'s layers too (each transfer row's
    `teacher_row` indexes them). `rows`, `tokenizers`: the student's and the teacher's (one
    and the same unless they tokenize differently; `extras` pairs them likewise). `cached`
    False: no logits (the teacher runs on each batch while training)."""
    collate = task.collator(tokenizers["teacher"])
    parts = {"student": [rows["student"]["train"], *(s for s, _ in extras)],
             "teacher": [rows["teacher"]["train"], *(t for _, t in extras)]}
    transfer = _joined(parts["student"])
    if not cached:
        return Targets(transfer, 0.0, _teacher_evaluations(cfg, teacher, rows["teacher"],
                                                           collate, device, task, data))
    log.info("computing the teacher's outputs once over %d transfer examples", len(transfer))
    t0 = time.perf_counter()
    cross = rows["teacher"] is not rows["student"]
    # (across tokenizers a row is its example, _transfer_weights: row k of the teacher's
    # rows is row k of the student's, and its pooled states are the row's)
    layers = tuple(t for _, t in mapping) if cross and cfg.hidden_weight > 0 else ()
    names = (*task.outputs, POOLED) if layers else task.outputs
    # part by part (train, --unlabeled, --augment), each cached under its own key: a later
    # student on another mix of the same parts reuses the ones it shares (labelled rows
    # with and without unlabelled text), rather than the teacher reading them all again
    pieces = [_cached_logits(cfg, teacher, part, collate, device, names, inputs=task.inputs,
                             pooled_layers=layers) for part in parts["teacher"]]
    outputs = {name: [v for piece in pieces for v in piece[name]] for name in names}
    pooled = None
    if layers:
        import numpy as np
        import torch

        pooled = torch.from_numpy(np.stack(outputs.pop(POOLED))).view(len(transfer),
                                                                      len(layers), -1)
        transfer = transfer.add_column(TEACHER_ROW, list(range(len(transfer))))
    if cross:
        outputs = _onto_student_rows(task, outputs, parts)
    for name, values in outputs.items():  # (every output the task distils: its columns)
        transfer = transfer.add_column(task.teacher_column(name),
                                       [row.tolist() for row in values])
    teacher_time = time.perf_counter() - t0
    teacher_eval = _teacher_evaluations(cfg, teacher, rows["teacher"], collate, device, task,
                                        data)
    if not ((cfg.hidden_weight > 0 and not layers) or cfg.attention_weight > 0):
        teacher.to("cpu")  # only its cached outputs are needed from here: free the GPU
    return Targets(transfer, teacher_time, teacher_eval, pooled)


def _joined(parts: list):
    """The transfer rows: train's, then each extra's (cast to train's columns)."""
    from datasets import concatenate_datasets

    first = parts[0]
    return concatenate_datasets([first, *(d.cast(first.features) for d in parts[1:])]) \
        if len(parts) > 1 else first


def _onto_student_rows(task, outputs: dict, parts: dict) -> dict:
    """The teacher's outputs per row of its own tokenizer's transfer rows, taken to examples
    (Task.per_example) and put onto the student's rows of the same examples (Task.to_rows),
    part by part (train, then each extra: each numbers its examples from 0)."""
    index = task.index_columns
    out = {}
    for name, values in outputs.items():
        out[name], start = [], 0
        for t, s in zip(parts["teacher"], parts["student"]):
            per_example = task.per_example(values[start:start + len(t)],
                                           {c: t[c] for c in index})
            out[name] += task.to_rows(per_example, {c: s[c] for c in index})
            start += len(t)
    return out


def _teacher_evaluations(cfg: DistillConfig, teacher, tokenized, collate, device, task,
                         data) -> dict:
    """The teacher's own figures on validation and test."""
    return {split: _evaluate_teacher(cfg, teacher, tokenized[split], collate, device, task,
                                     data.label_names)
            for split in ("validation", "test") if split in tokenized}


def _torch_device(placement):
    """Each process's own GPU under torchrun/accelerate (LOCAL_RANK), else the first; or the
    placement's CPU/MPS."""
    import os

    import torch

    return (torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
            if placement.device == "cuda" else torch.device(placement.device))


def _resolve(cfg: DistillConfig):
    """(the teacher's backbone, the student's or None, the task, the teacher's recorded
    floor verdict): every check that needs no data and no loaded model, first."""
    teacher_bb = backbones.resolve(cfg.teacher, cfg.allow_pickle, cfg.trust_remote_code)
    task = tasks.resolve(cfg.task, config=teacher_bb.config, where=f"--teacher {cfg.teacher}")
    backbones.require_head(teacher_bb, task, "--teacher")
    teacher_floor = floor.recorded(teacher_bb.source) if teacher_bb.local else None
    if teacher_floor is not None and teacher_floor.get("verdict") == floor.DEGENERATE:
        # (a warning: distilling it is allowed, and its student will be judged the same way)
        log.warning("--teacher %s: a degenerate model (%s); a student learns no more than its "
                    "teacher knows", cfg.teacher, teacher_floor.get("why"))
    student_bb = (backbones.resolve(cfg.student, cfg.allow_pickle, cfg.trust_remote_code,
                                    weights_optional=True) if cfg.student else None)
    backbones.check_max_length(teacher_bb, cfg.max_length)
    if student_bb is not None:
        backbones.check_max_length(student_bb, cfg.max_length)
    # (from config.json: before the data is read or a model loaded)
    students.check_choice(*((student_bb.config, cfg.student_layers, cfg.keep_layers,
                             f"--student {cfg.student}") if student_bb is not None else
                            (teacher_bb.config, cfg.student_layers, cfg.keep_layers)))
    return teacher_bb, student_bb, task, teacher_floor


def _fit_for_transfer(cfg: DistillConfig, student, teacher, eager: bool, mapping) -> None:
    """What hidden-state and attention transfer need of the student."""
    import torch

    if cfg.hidden_weight > 0 and architectures.is_cnn(teacher):
        _fit_feature_maps(student, teacher, mapping)
    elif (cfg.hidden_weight > 0 and getattr(student.config, "hidden_size", None)
            != getattr(teacher.config, "hidden_size", None)):
        # learned projection of the student's states into the teacher's width; attached to
        # the student so the Trainer optimises and checkpoints it, removed before saving
        student.distill_projection = torch.nn.Linear(student.config.hidden_size,
                                                     teacher.config.hidden_size)
    if eager:
        # BERT returns attention probabilities after dropout: in training they no longer sum
        # to 1 and the KL goes noisy, so the student's attention-probability dropout is off
        for name, module in student.named_modules():
            if isinstance(module, torch.nn.Dropout) and name.endswith("attention.self.dropout"):
                module.p = 0.0


def _fit_feature_maps(student, teacher, mapping) -> None:
    """A CNN student of other widths than its teacher's (not cut from it): a learned 1x1
    convolution per mapped pair taking the student's map to the teacher's channels (FitNets'
    regressor, Romero et al. 2015), attached and removed as the text projection is; the
    widths read from one small forward of each."""
    import torch

    probe = torch.zeros(1, student.config.num_channels, 32, 32)
    with torch.no_grad():
        ours = student.eval()(pixel_values=probe, output_hidden_states=True).hidden_states
        theirs = teacher.eval()(pixel_values=probe, output_hidden_states=True).hidden_states
    student.train()
    widths = [(ours[s].shape[1], theirs[t].shape[1]) for s, t in mapping]
    if all(a == b for a, b in widths):
        return
    student.distill_projection = torch.nn.ModuleList(
        torch.nn.Conv2d(a, b, kernel_size=1) for a, b in widths)


def _cached_logits(cfg, teacher, transfer, collate, device, names: tuple[str, ...], *,
                   inputs, pooled_layers: tuple[int, ...] = ()) -> dict[str, list]:
    """The teacher's outputs `names` (the task's; POOLED: its pooled states at
    `pooled_layers`) per transfer row, read from --teacher-cache when a run over the same
    teacher and rows left them there (a .npz per output, no pickle), else computed in one
    pass over the rows (those missing alone) and left there. `inputs`: the task's input
    kind, which says whether its rows can key a cache."""
    if not cfg.teacher_cache or not inputs.teacher_cache:
        if cfg.teacher_cache:  # (the key hashes token ids; images would need their bytes)
            log.warning("--teacher-cache: not for %s inputs yet; the teacher's outputs are "
                        "computed afresh", inputs.name)
        return teacher_outputs(teacher, transfer, collate, device, names,
                               cfg.teacher_batch_size, pooled_layers)
    import hashlib

    import numpy as np

    from ..artifacts import fingerprint

    h = hashlib.sha256(fingerprint(cfg.teacher).encode())
    for column in (c for c in MODEL_INPUTS if c in transfer.column_names):
        for row in transfer[column]:
            h.update(np.asarray(row, dtype=np.int64).tobytes() + b";")
    folder = Path(cfg.teacher_cache)
    # (the first output's file keeps its name: caches left by earlier runs still serve;
    # the pooled states' names their layers)
    stems = {name: "logits" if i == 0 else f"pooled-L{'.'.join(map(str, pooled_layers))}"
             if name == POOLED else name for i, name in enumerate(names)}
    paths = {name: folder / f"teacher-{stems[name]}-{h.hexdigest()[:24]}.npz"
             for name in names}
    missing = tuple(name for name, p in paths.items() if not p.exists())
    if len(missing) < len(names):
        log.info("teacher outputs: reusing %s", ", ".join(
            str(p) for name, p in paths.items() if name not in missing))
    outputs = {name: _read_cached(p) for name, p in paths.items() if name not in missing}
    if missing:
        folder.mkdir(parents=True, exist_ok=True)
        computed = _in_pieces(cfg, teacher, transfer, collate, device, missing, pooled_layers,
                              {name: paths[name] for name in missing})
        for name in missing:
            _write_cached(paths[name], computed[name])
            for piece in folder.glob(f".{paths[name].stem}.rows-*.npz"):
                piece.unlink(missing_ok=True)
        outputs |= computed
    return {name: outputs[name] for name in names}


# A pass of the teacher over a part of more rows than this is saved piece by piece beside
# the part's files, so an interrupted pass resumes from its last piece: a 12-layer teacher
# reads about 9 sentences a second on 2 cores, a piece is minutes, the whole part may be
# hours (100,000 augmented sentences).
PIECE_ROWS = 4096


def _in_pieces(cfg, teacher, transfer, collate, device, names: tuple[str, ...],
               pooled_layers: tuple[int, ...], paths: dict) -> dict[str, list]:
    """teacher_outputs over `transfer`, PIECE_ROWS rows at a time, each piece written as a
    hidden file beside its output's `paths` entry and read back, not computed, by a pass
    that finds it (the part's key in its name: the same teacher and rows)."""
    if len(transfer) <= PIECE_ROWS:
        return teacher_outputs(teacher, transfer, collate, device, names,
                               cfg.teacher_batch_size, pooled_layers)
    pieces = {}
    for at in range(0, len(transfer), PIECE_ROWS):
        end = min(at + PIECE_ROWS, len(transfer))
        pieces[at, end] = {name: p.parent / f".{p.stem}.rows-{at}-{end}.npz"
                           for name, p in paths.items()}
    done = {piece: _read_piece(files) for piece, files in pieces.items()}
    todo = sum(end - at for (at, end), got in done.items() if got is None)
    if todo < len(transfer):
        log.info("teacher outputs: %d of %d rows read from an interrupted pass",
                 len(transfer) - todo, len(transfer))
    seen = pass_progress(todo, "teacher outputs")
    out: dict[str, list] = {name: [] for name in names}
    computed = 0
    for (at, end), files in pieces.items():
        got = done.pop((at, end))
        if got is None:
            got = teacher_outputs(teacher, transfer.select(range(at, end)), collate, device,
                                  names, cfg.teacher_batch_size, pooled_layers,
                                  progress=lambda done, before=computed: seen(before + done))
            for name, f in files.items():
                _write_cached(f, got[name])
            computed += end - at
        for name in names:
            out[name] += got[name]
    return out


def _read_piece(files: dict) -> dict | None:
    """A piece's outputs, or None where a file is missing or unreadable (cut short by a
    lost machine: removed, to be computed again)."""
    if not all(f.exists() for f in files.values()):
        return None
    try:
        return {name: _read_cached(f) for name, f in files.items()}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        log.warning("teacher outputs: %s unreadable (%s); computing it again",
                    next(iter(files.values())).name, type(e).__name__)
        for f in files.values():
            f.unlink(missing_ok=True)
        return None


def _read_cached(path: Path) -> list:
    import numpy as np

    with np.load(path, allow_pickle=False) as f:
        values, rows, ndim = f["values"], f["rows"], int(f["ndim"])
    parts = np.split(values, np.cumsum(rows)[:-1])
    return [x[0] for x in parts] if ndim == 1 else parts


def _write_cached(path: Path, logits: list) -> None:
    import numpy as np

    from ..artifacts import write_whole

    # rows of one length (a class per text) or of each row's tokens: stored flat + counts;
    # written whole (flushed to disk, then renamed) or not at all
    write_whole(path, lambda f: np.savez(
        f, values=np.concatenate([np.reshape(x, (-1, x.shape[-1])) for x in logits]),
        rows=np.array([1 if x.ndim == 1 else x.shape[0] for x in logits]),
        ndim=np.array(logits[0].ndim if logits else 1)))


def _build_student(cfg, teacher, student_bb, student_tok, task, data, eager):
    """(student model, kept teacher layers or None, (student, teacher) hidden-state pairs)."""
    cnn = architectures.is_cnn(teacher)
    if cnn and cfg.attention_weight > 0:
        raise ConfigError("--attention-weight: a CNN has no attention maps; use "
                          "--hidden-weight (feature maps) or neither")
    if student_bb is None:
        student, keep, mapping = _cut(cfg, teacher, "the teacher")
        student.requires_grad_(True)
        architectures.keep_fixed(student)
        return student, keep, mapping
    student_labels = student_bb.head_labels(task)
    if student_labels is not None and student_labels != data.label_names:
        raise ModelError(f"--student {cfg.student}: its labels {student_labels} differ from "
                         f"the teacher's {data.label_names}; give a student without a head or "
                         f"with the same labels")
    student, _ = backbones.load_model(
        student_bb, task, data.label_names, allow_pickle=cfg.allow_pickle,
        trust_remote_code=cfg.trust_remote_code, attn_implementation="eager" if eager else None)
    students.check_compatible(teacher, student, student_tok)
    keep = None
    if cfg.student_layers or cfg.keep_layers:  # (--student cut: minilm-l6's 3 of 6 layers)
        student, keep, _ = _cut(cfg, student, f"--student {cfg.student}")
    if cnn:  # (another CNN: a Lite0-shaped student of a Lite2, each at its own side)
        architectures.keep_fixed(student)
        return student, keep, students.stage_ends(student.config, teacher.config)
    return student, keep, students.layer_mapping(architectures.layer_count(student),
                                                 architectures.layer_count(teacher))


def _cut(cfg: DistillConfig, model, whose: str):
    """`model` cut to --student-layers or --keep-layers (by default half its depth): (the
    cut copy, the layers or blocks kept, (cut, model) hidden-state pairs)."""
    n = architectures.layer_count(model)
    if architectures.is_cnn(model):
        stages = architectures.stages(model.config)
        keep = cfg.keep_layers or students.spread_blocks(
            stages, cfg.student_layers or max(len(set(stages)), n // 2), whose)
        cut, mapping = students.from_teacher_blocks(model, keep)
        return cut, keep, mapping
    keep = cfg.keep_layers or students.spread_layers(n, cfg.student_layers or max(1, n // 2),
                                                     whose)
    return (students.from_teacher_layers(model, keep, whose), keep,
            students.layer_mapping(len(keep), n, keep))


# the teacher's pooled states, an output teacher_outputs makes beside the task's (across
# tokenizers), and the column by which each transfer row finds its own
POOLED = "pooled_states"
TEACHER_ROW = "teacher_row"
# the prefix of a batch's inputs for the teacher alone, where it preprocesses the rows
# otherwise than the student (_collator)
TEACHER_INPUT = "teacher_input_"

# what a row gives the model: token ids (texts), or the decoded image the image task's
# collator turns into pixel_values
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "image")


def teacher_outputs(model, dataset, collate, device, names: tuple[str, ...],
                    batch_size: int = 64, pooled_layers: tuple[int, ...] = (), progress=None
                    ) -> dict[str, list]:
    """The model's outputs `names` for every row, in order, one float32 numpy array per row
    and output (one pass); POOLED among them: its pooled states at `pooled_layers` (indices
    into its hidden states) flattened, float16 (2 x width x layers a row: 12 KB for
    mpnet-base at 4 layers). `progress`: called with the rows done [default: a log line
    every 30 s].

    Per row, not one array: a per-token head's rows differ in length (each is cut to its
    row's real tokens, from the attention mask).
    """
    import torch

    from ..train.losses import pooled_states

    model = model.to(device)
    # rows in order of length (train/length_order.py); each output put back at its row
    order = length_order(dataset) or list(range(len(dataset)))
    out: dict[str, list] = {name: [None] * len(dataset) for name in names}
    seen = progress or pass_progress(len(dataset), "teacher outputs")
    with torch.inference_mode():
        for start in range(0, len(dataset), batch_size):
            at = order[start:start + batch_size]
            rows = dataset.select(at)
            batch = collate([{k: r[k] for k in MODEL_INPUTS if k in r} for r in rows])
            result = model(**{k: v.to(device) for k, v in batch.items()},
                           **({"output_hidden_states": True} if POOLED in names else {}))
            got = {name: result[name].float() for name in names if name != POOLED}
            if POOLED in names:
                mask = batch["attention_mask"].to(device)
                got[POOLED] = torch.stack([pooled_states(result.hidden_states[t], mask)
                                           for t in pooled_layers], 1).flatten(1).half()
            for name in names:
                logits = got[name].cpu()
                if logits.dim() == 3:  # a row's real tokens, on either padding side
                    values = [row[m.bool()].numpy() for row, m in zip(
                        logits, batch["attention_mask"])]
                else:
                    values = [row.numpy() for row in logits]
                for i, v in zip(at, values):
                    out[name][i] = v
            seen(start + len(at))
    return out


def _evaluate_teacher(cfg, teacher, dataset, collate, device, task, names):
    # (through --teacher-cache as the transfer rows are: every student of one teacher is
    # scored beside it on the same splits, minutes each for a 12-layer teacher)
    logits = task.scored(_cached_logits(cfg, teacher, dataset, collate, device,
                                        task.scored_outputs, inputs=task.inputs))
    return training.scored(task, logits, dataset["label"], training.index_of(task, dataset),
                           names)


def _side_by_side(teacher, student, teacher_eval, student_eval, task) -> dict:
    def size_mb(model):
        return round(sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20, 1)

    rows = {
        "teacher": {"parameters": sum(p.numel() for p in teacher.parameters()),
                    "layers": architectures.layer_count(teacher), "size_mb": size_mb(teacher)},
        "student": {"parameters": sum(p.numel() for p in student.parameters()),
                    "layers": architectures.layer_count(student), "size_mb": size_mb(student)},
    }
    metric = task.primary
    for split, ev in student_eval.items():
        t, s = teacher_eval[split][metric], ev[metric]
        rows["teacher"][f"{split}_{metric}"] = t
        rows["student"][f"{split}_{metric}"] = s
        kept = (s / t if t else None) if task.greater_is_better else (t / s if s else None)
        rows[f"{split}_{metric}_kept"] = round(kept, 4) if kept is not None else None
    log.info("teacher %s vs student %s", rows["teacher"], rows["student"])
    return rows


def distill_trainer_class():
    """transformers' Trainer with the distillation loss (defined lazily: torch is heavy)."""
    from transformers import Trainer


    class DistillTrainer(Trainer):
        online_targets = False  # (set by __init__; the class's default for a bare instance)

        def __init__(self, *a, task=None, teacher=None, alpha=0.5, temperature=2.0,
                     hidden_weight=0.0, attention_weight=0.0, mapping=(), online_targets=False,
                     teacher_pooled=None, **kw):
            super().__init__(*a, **kw)
            self.task, self.teacher, self.alpha = task, teacher, alpha
            self.temperature = temperature
            # the soft targets from the teacher on this very batch (augmented images), not
            # the cached ones
            self.online_targets = online_targets
            self.hidden_weight, self.attention_weight = hidden_weight, attention_weight
            self.mapping = list(mapping)
            # (across tokenizers: the teacher's pooled states per transfer row, computed
            # once; a batch's rows find theirs by TEACHER_ROW)
            self.teacher_pooled = teacher_pooled

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            task = self.task
            # (first: the other teacher_ keys below are the loss's)
            own = {k[len(TEACHER_INPUT):]: inputs.pop(k)
                   for k in [k for k in inputs if k.startswith(TEACHER_INPUT)]}
            cached = {n: inputs.pop(task.teacher_column(n), None) for n in task.outputs}
            row = inputs.pop(TEACHER_ROW, None)
            # evaluation (no cached targets, or, taught online, the model in eval mode): the
            # model's own loss on the gold labels
            if (not model.training if self.online_targets
                    else cached[task.outputs[0]] is None):
                outputs = model(**inputs)
                return (outputs.loss, outputs) if return_outputs else outputs.loss
            # the gold labels: the model's label argument, or each of its several (by name;
            # a label argument is one whose name holds "label", transformers' find_labels)
            gold = {k: inputs.pop(k) for k in [k for k in inputs if "label" in k]}
            labels = next(iter(gold.values())) if len(gold) == 1 else gold
            # what else the collator sent for the loss (a token task's teacher_mask)
            extra = {k: inputs.pop(k) for k in [k for k in inputs if k.startswith("teacher_")]}
            want_h, want_a = self.hidden_weight > 0, self.attention_weight > 0
            # (asked only when wanted: a CNN's forward takes no output_attentions)
            wanted = ({"output_hidden_states": True} if want_h else {}) | (
                {"output_attentions": True} if want_a else {})
            outputs = model(**inputs, **wanted)
            t = None
            if (want_h and row is None) or want_a or self.online_targets:
                import torch

                self.teacher.to(self.task.output(outputs, task.outputs[0]).device)
                with torch.no_grad():
                    t = self.teacher(**(own or inputs), **wanted)
            if self.online_targets:
                cached = {n: task.output(t, n) for n in task.outputs}
            # every output the task names, student's and teacher's (one: as they are)
            loss, _ = task.distill_loss(
                task.values({n: task.output(outputs, n).float() for n in task.outputs}),
                task.values({n: t.float() for n, t in cached.items()}), labels,
                alpha=self.alpha, temperature=self.temperature, **extra)
            if want_h or want_a:
                pooled = None if row is None else self.teacher_pooled[row.cpu()]
                loss = loss + _state_losses(self, model, outputs, t,
                                            inputs.get("attention_mask"), pooled)
            return (loss, outputs) if return_outputs else loss

    return DistillTrainer


def _state_losses(trainer, model, outputs, t, mask, pooled):
    """Hidden-state (a CNN's feature maps; across tokenizers each row's pooled states, the
    teacher's `pooled` computed once) and attention transfer over `trainer`'s layer
    mapping, weighted (DistillTrainer's); `t`: the teacher's outputs on this batch."""
    from ..train import losses

    core = model.module if hasattr(model, "module") else model
    projection, loss = getattr(core, "distill_projection", None), 0.0
    hidden, mapping = trainer.hidden_weight, trainer.mapping
    if hidden > 0 and mask is None:  # a CNN's feature maps
        loss = hidden * losses.feature_map_loss(outputs.hidden_states, t.hidden_states,
                                                mapping, projection)
    elif hidden > 0 and pooled is not None:
        loss = hidden * losses.pooled_state_loss(outputs.hidden_states,
                                                 pooled.to(mask.device), mapping, mask,
                                                 projection)
    elif hidden > 0:
        loss = hidden * losses.hidden_state_loss(outputs.hidden_states, t.hidden_states,
                                                 mapping, mask, projection)
    if trainer.attention_weight > 0:
        pairs = [(s - 1, tt - 1) for s, tt in mapping if s > 0]
        loss = loss + trainer.attention_weight * losses.attention_loss(
            outputs.attentions, t.attentions, pairs, mask)
    return loss


# A recipe's distill: may fine-tune the student's model on the labelled rows before it is
# cut, as a finetune step of its own (student-init/): the strong teacher's student then
# starts from the task already learnt (SST-2, bench/RESULTS.md "Teach better, sst2": 0.8807
# against 0.8739 cut from the raw model).
RECIPE_SECTIONS = {"student_finetune": (
    "finetune", "Fine-tune distill.student on the labelled rows first (a finetune step of "
    "these settings, into student-init/), then cut that and distil into it [default: the "
    "student as given].")}

# The recipe's `distill:` may give the student another side than the teacher's (data's
# image_size is wired into every step, so the section could not say it otherwise).
RECIPE_FIELDS = {"image_size": (int | None, FieldInfo.merge_field_infos(
    DataOptions.model_fields["image_size"], description="Images: the side in pixels the "
    "student reads at, the teacher still at its own (data.image_size) [default: "
    "data.image_size]."))}


def plan(section, w) -> list[dict]:
    """The pipeline step (a recipe's `distill:`): the student of the teacher (finetune's
    output, else the recipe's model); with student_finetune, the finetune step of the
    student's model before it."""
    from ..records.references import Student, Teacher

    out = w.root / "student"
    teacher = w.model_of(Teacher)
    if (section.student_layers or section.keep_layers) and not section.student:
        # checked now, not after the teacher's training: its depth is the recipe's model's
        config = w.model_config()
        if config is not None:
            students.check_choice(config, section.student_layers, section.keep_layers)
    settings = section.model_dump(exclude=set(RECIPE_SECTIONS) | set(RECIPE_FIELDS))
    if section.student:  # (a path written in the recipe is relative to it)
        settings["student"] = w.model_path(section.student)
    # the teacher's outputs kept under the run's folder unless the recipe names a place: a
    # rerun with another student (depth, epochs, rate) reads them instead of running the
    # teacher over the transfer set again (recipes/sst2-strong.yaml: mpnet-base over 60,484
    # rows); where they are is no part of the step's key (options.RUN_CONTROL)
    # (not for inputs whose rows cannot key it, images: _cached_logits would warn of a
    # cache nobody asked for)
    task = tasks.get(w.recipe.task) if w.recipe.task not in (None, tasks.JOINT) else None
    if section.teacher_cache:
        settings["teacher_cache"] = str(w.path(section.teacher_cache))
    elif task is None or task.inputs.teacher_cache:
        settings["teacher_cache"] = str(w.teacher_cache)
    steps = []
    if section.student_finetune is not None:
        if not section.student:
            raise ConfigError(f"{w.recipe_file}: distill.student_finetune: fine-tunes "
                              f"distill.student before it is cut; name the student's model "
                              f"(e.g. student: minilm-l6)")
        init = w.step_of("finetune", section.student_finetune, model=settings["student"],
                         label="student-init")
        steps.append(init | {"section": "distill.student_finetune",
                             "wired_keys": {"model": "distill.student"}})
        settings["student"] = str(init["config"]["out"])
    config = settings | w.training_data() | dict(teacher=teacher, unlabeled=w.files["unlabeled"],
                                                 out=out)
    if section.image_size:
        config["image_size"] = section.image_size
    inputs = {"teacher": teacher, "unlabeled": w.files["unlabeled"]} | (
        {"student": settings["student"]} if section.student else {})
    return [*steps, {"label": "student", "config": config, "makes": [Student(folder=out)],
                     "inputs": inputs | w.splits() | w.head_files(),
                     "shared": [settings["teacher_cache"]] if settings.get("teacher_cache")
                     else []}]

