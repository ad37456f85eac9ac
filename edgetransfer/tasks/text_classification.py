"""Task `text-classification`: one label per text, or per pair of texts (GLUE-style).

The head is AutoModelForSequenceClassification; predictions are the argmax of the logits;
accuracy is the primary metric (macro-F1 and a per-class report beside it); distillation
uses soft targets at a temperature plus cross-entropy on the gold labels; parity judges int8
by top-1 agreement; BERT-family heads read only the first token, so export may slice the
last layer to it; the bundled runtime turns logits into a softmax and a label.
"""

from __future__ import annotations

import logging

import numpy as np

from ..data import labels as class_labels
from ..data.splits import pick_column, read_splits, require_columns, row_name, sample_and_carve
from ..errors import DataError
from ..inputs import text as text_inputs
from ..measure import floor, metrics, parity
from ..modeling import backbones
from . import register, text
from .task import Task, TaskData

log = logging.getLogger(__name__)
HEAD = "ForSequenceClassification"


def claims(config: dict) -> bool:
    """A sequence classifier that is not a regression (one output, MSE: another task)."""
    return (any(str(a).endswith(HEAD) for a in config.get("architectures") or [])
            and config.get("problem_type") != "regression")


def load(train: str, validation: str | None = None, test: str | None = None, *,
         text_column: str | None = None, text_pair_column: str | None = None,
         label_column: str | None = None, label_names: list[str] | None = None,
         validation_fraction: float = 0.1, seed: int = 42,
         model_labels: list[str] | None = None, train_sample: int | None = None) -> TaskData:
    """Read, check and label-encode the splits. `model_labels`: a fixed head's classes."""
    raw, specs = read_splits(train, validation, test)
    names = list(raw["train"].column_names)
    text_col, pair = text.text_columns(names, train, text_column, text_pair_column)
    label_col = pick_column(names, label_column, class_labels.LABEL_COLUMNS, "label", train,
                            "--label-column")
    if label_col in (text_col, pair):
        raise DataError(
            f"{train}: the column {label_col!r} would be both text and label; pass "
            f"--text-column and --label-column naming two columns")
    inputs = [text_col] + ([pair] if pair else [])
    log.info("columns: text %r%s, label %r", text_col, f", pair {pair!r}" if pair else "",
             label_col)
    require_columns(raw, specs, inputs + [label_col])
    for name, ds in raw.items():
        text.check_texts(ds, inputs, specs[name])

    train_labels = [class_labels.normalise(v, row_name(train, i))
                    for i, v in enumerate(raw["train"][label_col])]
    classes = class_labels.names_for(train_labels, train, model_labels, label_names)
    if len(classes) < 2 and not model_labels:
        raise DataError(f"{train}: only one class ({classes[0]!r}); a classifier needs at "
                        f"least 2")
    splits = {}
    for name, ds in raw.items():
        ids = class_labels.encode(ds[label_col], specs[name], classes,
                                  fixed_by_model=bool(model_labels))
        splits[name] = text.inputs_of(ds, text_col, pair).add_column("label", ids)
    notes = sample_and_carve(splits, train_sample=train_sample,
                             validation_fraction=validation_fraction, seed=seed,
                             stratify=classes)
    unseen = sorted(set(range(len(classes))) - set(splits["train"]["label"]))
    if unseen and not model_labels:
        notes.append(f"classes with no train example: {[classes[i] for i in unseen]}")
    for note in notes:
        log.warning(note)
    return TaskData(splits=splits, label_names=classes,
                    columns={"text": text_col, "text_pair": pair, "label": label_col},
                    sources=specs, notes=notes)


def read(opts, model_labels: list[str] | None = None) -> TaskData:
    """The splits a stage's DataOptions name."""
    return load(opts.train, opts.validation, opts.test, text_column=opts.text_column,
                text_pair_column=opts.text_pair_column, label_column=opts.label_column,
                label_names=opts.label_names, validation_fraction=opts.validation_fraction,
                seed=getattr(opts, "seed", 42), model_labels=model_labels,
                train_sample=opts.train_sample)


def read_eval(spec: str, label_names: list[str] | None, opts=None):
    """One checked split for a trained model: texts (and pairs), labels as the model's ids.

    `label_names=None` reads texts only (calibration data needs no labels); `opts`: any
    config with text_column / text_pair_column / label_column (absent ones: found).
    """
    rows, raw = text.read_texts(spec, getattr(opts, "text_column", None),
                                getattr(opts, "text_pair_column", None))
    if label_names is None:
        return rows
    column = pick_column(list(raw.column_names), getattr(opts, "label_column", None),
                         class_labels.LABEL_COLUMNS, "label", spec, "--label-column")
    return rows.add_column("label", class_labels.encode(raw[column], spec, label_names,
                                                        fixed_by_model=True, trained=True))


def predictions(logits) -> np.ndarray:
    return np.asarray(logits).argmax(-1)


def shipped(predictor, ds, batch_size: int = 1) -> np.ndarray:
    """Each row's class id as the bundled runtime labels its raw text (or text pair):
    its tokenizer, truncation and softmax (measure/shipped.py)."""
    texts = list(ds["text"])
    if "text_pair" in ds.column_names:
        texts = list(zip(texts, ds["text_pair"]))
    index = {n: i for i, n in enumerate(predictor.labels)}
    return np.array([index[row["label"]]
                     for row in predictor.predict(texts, batch_size=batch_size)])


def drop(reference: float, candidate: float) -> float:
    """Accuracy points lost."""
    return 100 * (reference - candidate)


def distill_loss(student_logits, teacher_logits, labels, *, alpha: float, temperature: float):
    from ..train import losses  # (torch: imported when training, not for --help)

    return losses.combine(student_logits, labels, teacher_logits, alpha=alpha,
                          temperature=temperature)


TASK = register(Task(
    name="text-classification",
    summary="a label for each text (or pair of texts)",
    model_class="AutoModelForSequenceClassification",
    optimum_task="text-classification",
    peft_task_type="SEQ_CLS",
    claims=claims,
    head_config=class_labels.head_config,
    read=read,
    read_eval=read_eval,
    claims_data=text.has_text,
    load_preprocessor=backbones.load_tokenizer,
    prepare=lambda td, tok, opts: text.tokenize(
        td.splits, td.sources, tok, opts.max_length,
        "error" if opts.refuse_long else "truncate"),
    encode=text.encode_arrays,
    collator=text.collator,
    read_unlabeled=lambda spec, column, tok, max_length, data: text.read_unlabeled(
        spec, column, tok, max_length, data, class_labels.IGNORE),
    per_example=lambda values, index: values,  # one output row per example already
    index_columns=(),
    to_rows=lambda values, index: values,  # (row i is example i whatever the tokenizer)
    predictions=predictions,
    metrics=metrics.report,
    render=None,
    primary="accuracy",
    greater_is_better=True,
    compare=lambda y, ref, cand, names, seed=0: metrics.paired_drop(
        y, ref, cand, len(names), seed=seed),
    drop=drop,
    per_label_delta=metrics.per_class_delta,
    distill_loss=distill_loss,
    agreement=parity.top1_agreement,
    tolerances=None,
    probe_rows=text.PROBE_ROWS,
    rewrites=frozenset({"first_token_last_layer"}),
    # what predict.py does with the model's output (bundle/runtime/predict.py POSTPROCESS)
    runtime={"postprocess": "softmax-label"},
    head="sentence",  # a joint model's head over the encoder (tasks/joint)
    inputs=text_inputs.TEXT_PAIR,
    secondary="macro_f1",
    floor=floor.classes,
    shipped=shipped,
))
