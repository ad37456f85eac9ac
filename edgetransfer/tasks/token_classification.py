"""Task `token-classification`: a tag for each word (named entities: CoNLL-2003 and kin).

Data: CoNLL-style column files (data.conll) or JSONL/Parquet rows holding a list of words
and a list of tags (strings, or integer ids with --label-names or a hub ClassLabel). Tags
are IOB2; IOB1 is repaired and counted (data.tags), or refused with --strict-tags. Words
become sub-tokens and windows (tasks.words); the label sits on each word's first sub-token.

Metrics: entity-level precision/recall/F1 with seqeval (strict IOB2 matching), per type and
micro/macro, primary `entity_f1`; beside it the token-level per-tag report (scikit-learn's,
in the layout of the BERT-on-CoNLL articles: precision, recall, f1-score, support per tag,
then micro/macro/weighted averages). Distillation: soft targets per word over the scored
positions plus cross-entropy on the gold tags. Parity: per-word logits (top-1 agreement per
word). The bundled runtime returns entity spans with character offsets; the figure every
stage reports is read from those spans on the gold words (tasks/spans.py states how).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..data import labels as class_labels
from ..data import tags as iob
from ..data.conll import column as conll_column
from ..data.files import FORMATS, row_line
from ..data.splits import pick_column, read_split, read_splits, row_name, sample_and_carve
from ..errors import DataError
from ..inputs import words as words_inputs
from ..measure import floor, parity
from ..modeling import backbones
from . import register, spans, text, words
from .task import Task, TaskData

log = logging.getLogger(__name__)
HEAD = "ForTokenClassification"
# Column names tried, in order, when the user names none (HF datasets conventions).
TOKEN_COLUMNS = ("tokens", "words")
TAG_COLUMNS = ("ner_tags", "tags", "labels", "label")

# Sentences of mixed lengths (one longer than 128 sub-tokens: windows) the parity gate runs.
_PROBES = (
    "Peter Blackburn",
    "EU rejects German call to boycott British lamb .",
    "The European Commission said on Thursday it disagreed with German advice to consumers "
    "to shun British lamb until scientists determine whether mad cow disease can be "
    "transmitted to sheep .",
    "Rare Hendrix song draft sells for almost $ 17,000 .",
    " ".join(["Germany 's representative to the European Union 's veterinary committee "
              "Werner Zwingmann said on Wednesday consumers should buy sheepmeat from "
              "countries other than Britain ."] * 5),
    "Nadim Ladki",
)
PROBE_ROWS = tuple({"tokens": s.split(), "text": s} for s in _PROBES)


def claims(config: dict) -> bool:
    return any(str(a).endswith(HEAD) for a in config.get("architectures") or [])


def claims_data(columns: list[str]) -> bool:
    return any(c in columns for c in TOKEN_COLUMNS)


def _tag_column(names: list[str], given: str | None, source: str) -> str:
    """--tag-column: a name, or a 1-based position in a CoNLL file; default the last
    CoNLL column, else the first of TAG_COLUMNS."""
    if given is not None and given.strip().lstrip("-").isdigit():
        position = int(given)
        columns = [n for n in names if n == "tokens" or n.startswith("column")]
        if len(columns) < 2:
            raise DataError(f"{source}: --tag-column {position} is a position, which only "
                            f"CoNLL column files have; name the column (the columns are "
                            f"{names})")
        if position < 0:
            position = len(columns) + 1 + position
        given = conll_column(position)
        if given not in names or given == "tokens":
            raise DataError(f"{source}: --tag-column {position}: the file's lines have "
                            f"{len(columns)} columns and the first is the word; give 2.."
                            f"{len(columns)}")
        return given
    if given is None:
        positional = sorted((n for n in names if n.startswith("column")),
                            key=lambda n: int(n[6:]))
        if positional:
            return positional[-1]
    return pick_column(names, given, TAG_COLUMNS, "tag", source, "--tag-column")


def _int_names(ds, column: str, given: list[str] | None, model_labels) -> list[str] | None:
    """Names for integer tags: --label-names, a hub ClassLabel's, else the model's."""
    feature = getattr(ds.features.get(column), "feature", None)
    return list(given or getattr(feature, "names", None) or model_labels or []) or None


def _where(source: str, row: int, word: int) -> str:
    """A word's place: its own line in a CoNLL file, else the row and the word's number."""
    line = row_line(source, row)
    if line is not None and FORMATS.get(Path(source).suffix.lower(), ("",))[0] == "conll":
        return f"{source}: line {line + word}"  # (one word a line, no blank line inside)
    return f"{row_name(source, row)}, word {word + 1}"


def _sentences(ds, source: str, tokens: str, tags: str | None, int_names, strict: bool,
               flag: str = "--tag-column"):
    """(words per sentence, IOB2 tags per sentence or None, tags repaired)."""
    sentences, tagged, repaired = [], [] if tags else None, 0
    tag_values = ds[tags] if tags else [None] * len(ds)
    for i, (ws, ts) in enumerate(zip(ds[tokens], tag_values)):
        ws = words.check_words(ws, row_name(source, i))
        sentences.append(ws)
        if tags is None:
            continue
        if not isinstance(ts, (list, tuple)) or len(ts) != len(ws):
            got = len(ts) if isinstance(ts, (list, tuple)) else type(ts).__name__
            raise DataError(f"{row_name(source, i)}: {len(ws)} words but {got} tags; give one "
                            f"tag per word")
        names = []
        for k, t in enumerate(ts):
            if isinstance(t, (int, np.integer)) and not isinstance(t, bool):
                if int_names is None or not 0 <= t < len(int_names):
                    raise DataError(f"{_where(source, i, k)}: tag id {t} has no name; pass "
                                    f"--label-names naming the tags in id order")
                t = int_names[t]
            names.append(iob.check(t, _where(source, i, k), flag))
        fixed, at = iob.to_iob2(names)
        if at and strict:
            raise DataError(f"{_where(source, i, at[0])}: tag {names[at[0]]!r} starts an entity "
                            f"with I- (IOB1); convert the file to IOB2, or drop --strict-tags "
                            f"to have it repaired")
        repaired += len(at)
        tagged.append(fixed)
    return sentences, tagged, repaired


def _ids(tagged: list[list[str]], source: str, label_names: list[str], hint: str) -> list:
    index = {n: i for i, n in enumerate(label_names)}
    out = []
    for i, ts in enumerate(tagged):
        bad = next((k for k, t in enumerate(ts) if t not in index), None)
        if bad is not None:
            raise DataError(f"{_where(source, i, bad)}: tag {ts[bad]!r} is not one of the "
                            f"labels {label_names}; {hint}")
        out.append([index[t] for t in ts])
    return out


def load(train: str, validation: str | None = None, test: str | None = None, *,
         tokens_column: str | None = None, tag_column: str | None = None,
         label_names: list[str] | None = None, strict_tags: bool = False,
         validation_fraction: float = 0.1, seed: int = 42,
         model_labels: list[str] | None = None, train_sample: int | None = None) -> TaskData:
    raw, specs = read_splits(train, validation, test)
    read, notes, columns = {}, [], {}
    for name, ds in raw.items():
        # each file's own columns: a CoNLL train file may come with a JSONL test file
        names = list(ds.column_names)
        tok_col = pick_column(names, tokens_column, TOKEN_COLUMNS, "tokens", specs[name],
                              "--tokens-column")
        tag_col = _tag_column(names, tag_column, specs[name])
        columns.setdefault("tokens", tok_col)
        columns.setdefault("tags", tag_col)
        int_names = _int_names(ds, tag_col, label_names, model_labels)
        sentences, tagged, repaired = _sentences(ds, specs[name], tok_col, tag_col, int_names,
                                                 strict_tags)
        if repaired:
            notes.append(f"{specs[name]}: {repaired} tag(s) repaired from IOB1 to IOB2 "
                         f"(I-X starting an entity -> B-X); --strict-tags refuses instead")
        read[name] = (sentences, tagged)
    seen = {t for ts in read["train"][1] for t in ts}
    if model_labels:
        classes = list(model_labels)
        hint = "the checkpoint's head has these; pass --new-head to replace it"
    elif label_names:
        classes = list(label_names)
        hint = "add it to --label-names"
    else:
        classes = iob.label_order(seen)
        hint = "train has no such tag; add examples of it to train or fix the tag"
    if len(classes) < 2:
        raise DataError(f"{train}: only the tag {classes[0]!r}; tagging needs at least 2")
    splits = {}
    from datasets import Dataset

    for name, (sentences, tagged) in read.items():
        ids = _ids(tagged, specs[name], classes, hint)
        splits[name] = Dataset.from_dict({"tokens": sentences, "label": ids})
    notes += sample_and_carve(splits, train_sample=train_sample,
                              validation_fraction=validation_fraction, seed=seed)
    for note in notes:
        log.warning(note)
    log.info("columns of %s: words %r, tags %r", train, columns["tokens"], columns["tags"])
    return TaskData(splits=splits, label_names=classes, columns=columns, sources=specs,
                    notes=notes)


def read(opts, model_labels: list[str] | None = None) -> TaskData:
    return load(opts.train, opts.validation, opts.test, tokens_column=opts.tokens_column,
                tag_column=opts.tag_column, label_names=opts.label_names,
                strict_tags=opts.strict_tags, validation_fraction=opts.validation_fraction,
                seed=getattr(opts, "seed", 42), model_labels=model_labels,
                train_sample=opts.train_sample)


def read_eval(spec: str, label_names: list[str] | None, opts=None):
    """One split's sentences for a trained model ("tokens", and "text"), with "label" (tag
    ids per word) unless `label_names` is None (calibration data needs no tags)."""
    from datasets import Dataset

    ds = read_split(spec, "validation")
    names = list(ds.column_names)
    tok_col = pick_column(names, getattr(opts, "tokens_column", None), TOKEN_COLUMNS,
                          "tokens", spec, "--tokens-column")
    tag_col = None
    if label_names is not None:
        tag_col = _tag_column(names, getattr(opts, "tag_column", None), spec)
    sentences, tagged, repaired = _sentences(
        ds, spec, tok_col, tag_col, _int_names(ds, tag_col, None, label_names) if tag_col
        else None, getattr(opts, "strict_tags", False))
    if repaired:
        log.warning("%s: %d tag(s) repaired from IOB1 to IOB2", spec, repaired)
    # "text": the words joined by spaces, what the bundled runtime takes (package's timing)
    rows = {"tokens": sentences, "text": [" ".join(ws) for ws in sentences]}
    if tagged is not None:
        rows["label"] = _ids(tagged, spec, label_names,
                             "the model has these; is this data for another task?")
    return Dataset.from_dict(rows)


def prepare(td: TaskData, tokenizer, opts):
    """Every split as model rows (tasks.words); long sentences in windows, or refused."""
    from datasets import Dataset

    inside = iob.inside_of(td.label_names)
    all_subtokens = getattr(opts, "label_all_subtokens", False)
    out, counts, longest = {}, {}, {}
    budget = opts.max_length - tokenizer.num_special_tokens_to_add(pair=False)
    for name, ds in td.splits.items():
        rows, lengths = words.rows_of(tokenizer, ds["tokens"], opts.max_length, ds["label"],
                                      inside=inside,
                                      all_subtokens=all_subtokens and name == "train")
        long = sum(n > budget for n in lengths)
        counts[name], longest[name] = long, max(lengths)
        if long and getattr(opts, "refuse_long", False):
            raise DataError(f"{td.sources.get(name, td.sources['train'])}: {long} sentence(s) "
                            f"are longer than {opts.max_length} tokens (the longest "
                            f"{max(lengths)}); raise --max-length or drop --refuse-long (they "
                            f"are then split into overlapping windows)")
        if long:
            log.info("%s: %d of %d sentences longer than %d tokens run in overlapping windows "
                     "(longest %d); each word is scored once", name, long, len(lengths),
                     opts.max_length, max(lengths))
        out[name] = Dataset.from_dict(rows)
    return out, text.Truncation(counts, longest, kind="windowed")


def read_unlabeled(spec: str, column: str | None, tokenizer, max_length: int, data):
    """Sentences without tags for the teacher to label: a CoNLL file or a tokens column
    (words as given), or a text column (raw sentences, split into the tokenizer's words, as
    the bundled runtime splits them)."""
    from datasets import Dataset

    ds = read_split(spec, "train")
    names = list(ds.column_names)
    tok_col = column if column in names and column in TOKEN_COLUMNS else next(
        (c for c in TOKEN_COLUMNS if c in names), None)
    if tok_col is not None and column in (None, tok_col):
        sentences, _, _ = _sentences(ds, spec, tok_col, None, None, False)
    else:
        rows, _ = text.read_texts(spec, column, None, text_flag="--unlabeled-column")
        sentences = words.split_words(tokenizer, list(rows["text"]))
        empty = next((i for i, s in enumerate(sentences) if not s), None)
        if empty is not None:
            raise DataError(f"{row_name(spec, empty)}: no words in the text; fill or remove it")
    rows, _ = words.rows_of(tokenizer, sentences, max_length)
    rows["label"] = [[class_labels.IGNORE] * len(ids) for ids in rows["input_ids"]]
    log.info("unlabelled: %d sentences from %s", len(sentences), spec)
    return Dataset.from_dict(rows)


def predictions(logits) -> list[np.ndarray]:
    return [np.asarray(r).argmax(-1) for r in logits]


def _tags(sequences, label_names) -> list[list[str]]:
    return [[label_names[int(i)] for i in seq] for seq in sequences]


def report(labels, predictions, label_names: list[str]) -> dict:
    """Entity-level (seqeval's entities, strict IOB2) and token-level (scikit-learn)
    reports; the spans a bundle printed that cut a gold word count as predicted entities
    matching none (tasks/spans.py)."""
    from sklearn.metrics import classification_report, precision_recall_fscore_support

    gold, pred = _tags(labels, label_names), _tags(predictions, label_names)
    entity = _entity_report(_entities(gold), _entities(pred),
                            [spans.cut_of(p) for p in predictions])
    flat_gold = [t for s in gold for t in s]
    flat_pred = [t for s in pred for t in s]
    order = sorted(set(label_names))  # the articles' order: B-LOC ... I-PER, O
    per_tag = classification_report(flat_gold, flat_pred, labels=order, output_dict=True,
                                    zero_division=0)
    token = {t: _rounded(per_tag[t]) for t in order}
    p, r, f, _ = precision_recall_fscore_support(flat_gold, flat_pred, labels=order,
                                                 average="micro", zero_division=0)
    token["micro avg"] = _rounded({"precision": p, "recall": r, "f1-score": f,
                                   "support": len(flat_gold)})
    for avg in ("macro avg", "weighted avg"):
        token[avg] = _rounded(per_tag[avg])
    types = sorted(k for k in entity if not k.endswith(" avg"))
    micro = entity.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0})
    return {
        "entity_f1": float(micro["f1-score"]),
        "entity_precision": float(micro["precision"]),
        "entity_recall": float(micro["recall"]),
        "entity_macro_f1": float(entity.get("macro avg", {}).get("f1-score", 0.0)),
        # over every tag, O included, micro-averaged F1 is the share of words tagged right
        "token_micro_f1": float(f),
        "n": len(gold), "words": len(flat_gold),
        "per_type": {t: _rounded(entity[t]) for t in types},
        "token_report": token,
    }


def _rounded(row: dict) -> dict:
    return {k: (int(v) if k == "support" else round(float(v), 4)) for k, v in row.items()}


def render(rep: dict) -> str:
    """The token-level report as the articles print it, then the entity-level one."""
    def table(rows: dict, title: str) -> str:
        width = max(len(k) for k in rows) + 2
        lines = [f"{title:>{width}} {'precision':>9} {'recall':>9} {'f1-score':>9} "
                 f"{'support':>9}"]
        averages = False
        for name, r in rows.items():
            if name.endswith(" avg") and not averages:
                lines.append("")
                averages = True
            lines.append(f"{name:>{width}} {r['precision']:>9.4f} {r['recall']:>9.4f} "
                         f"{r['f1-score']:>9.4f} {r['support']:>9d}")
        return "\n".join(lines)

    entity = rep["per_type"] | {"micro avg": {
        "precision": rep["entity_precision"], "recall": rep["entity_recall"],
        "f1-score": rep["entity_f1"],
        "support": sum(r["support"] for r in rep["per_type"].values())}}
    return table(rep["token_report"], "tag") + "\n\n" + table(entity, "entity")


def _entities(sequences) -> list[set]:
    """Per sentence, its entities read with seqeval, strict IOB2: (type, first, end)."""
    from seqeval.scheme import IOB2, Entities

    return [{(e.tag, e.start, e.end) for e in sent}
            for sent in Entities(sequences, IOB2).entities]


def _entity_counts(gold: list[set], pred: list[set], cut=None):
    """Per sentence: (true positives, predicted entities, gold entities); `cut`: per
    sentence, the printed spans that cut a gold word (predicted, matching none)."""
    cut = cut or [()] * len(gold)
    return np.array([[len(g & p), len(p) + len(c), len(g)]
                     for g, p, c in zip(gold, pred, cut)])


def _entity_report(gold: list[set], pred: list[set], cut: list) -> dict:
    """seqeval's classification report (strict: an entity is found when type, first and
    last word all match), per type, micro and macro, with the cut spans counted."""
    from collections import Counter

    def row(tp, n_pred, n_gold) -> dict:
        p, r = tp / n_pred if n_pred else 0.0, tp / n_gold if n_gold else 0.0
        return {"precision": p, "recall": r, "f1-score": 2 * p * r / (p + r) if p + r else 0.0,
                "support": n_gold}

    tp, n_pred, n_gold = Counter(), Counter(), Counter()
    for g, p, c in zip(gold, pred, cut):
        tp.update(e[0] for e in g & p)
        n_pred.update([e[0] for e in p] + list(c))
        n_gold.update(e[0] for e in g)
    types = sorted(set(n_pred) | set(n_gold))
    out = {t: row(tp[t], n_pred[t], n_gold[t]) for t in types}
    if types:
        out["micro avg"] = row(sum(tp.values()), sum(n_pred.values()), sum(n_gold.values()))
        out["macro avg"] = {k: float(np.mean([out[t][k] for t in types]))
                            for k in ("precision", "recall", "f1-score")}
    return out


def floor_evidence(labels, predictions, label_names: list[str]) -> floor.Evidence:
    """The floor's evidence (measure/floor.py): entity F1 against tagging every word O (F1
    0), its interval from precision and recall; and whether one tag went to every word."""
    from collections import Counter

    gold, pred = _tags(labels, label_names), _tags(predictions, label_names)
    tp, n_pred, n_gold = (_entity_counts(_entities(gold), _entities(pred),
                                         [spans.cut_of(p) for p in predictions]
                                         ).sum(0).tolist() if gold else (0, 0, 0))
    flat_gold = [t for s in gold for t in s]
    predicted = {t for s in pred for t in s}
    words = len(flat_gold)
    return floor.Evidence(
        metric="entity_f1", value=2 * tp / max(n_pred + n_gold, 1),
        interval=floor.f1_interval(tp, n_pred, n_gold), baseline=0.0,
        baseline_is=f"tagging every word {iob.OUTSIDE!r}", rows=len(gold), unit="sentences",
        single=next(iter(predicted)) if len(predicted) == 1 else None,
        single_chance=floor.one_class_chance(
            [c / max(words, 1) for c in Counter(flat_gold).values()], words),
        single_over="words")


def compare(labels, reference, candidate, label_names, seed: int = 0,
            resamples: int = 2000) -> dict:
    """Entity-F1 points lost (reference minus candidate) with a paired bootstrap over
    sentences, and how many words changed tag."""
    from scipy.stats import bootstrap

    gold = _entities(_tags(labels, label_names))
    ref = _entity_counts(gold, _entities(_tags(reference, label_names)),
                         [spans.cut_of(p) for p in reference])
    cand = _entity_counts(gold, _entities(_tags(candidate, label_names)),
                          [spans.cut_of(p) for p in candidate])

    def f1(tp, n_pred, n_gold):
        return 2 * tp / np.maximum(n_pred + n_gold, 1)

    def stat(idx, axis=-1):
        idx = np.asarray(idx, dtype=np.int64)
        r, c = ref[idx].sum(axis=-2), cand[idx].sum(axis=-2)
        return 100 * (f1(*np.moveaxis(r, -1, 0)) - f1(*np.moveaxis(c, -1, 0)))

    point = float(stat(np.arange(len(gold))))
    same = all(np.array_equal(a, b) and spans.cut_of(a) == spans.cut_of(b)
               for a, b in zip(reference, candidate))
    if len(gold) < 2 or same:
        low = high = point
    else:
        res = bootstrap((np.arange(len(gold)),), stat, vectorized=True,
                        n_resamples=resamples, batch=200, method="percentile",
                        random_state=seed)
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    flips = int(sum(int(np.sum(np.asarray(a) != np.asarray(b)))
                    for a, b in zip(reference, candidate)))
    total = sum(len(a) for a in reference)
    return {"n": len(gold), "words": total,
            "entity_f1": {"points": round(point, 3), "ci95": [round(low, 3), round(high, 3)]},
            "flips": flips, "flip_rate": round(flips / max(total, 1), 4)}


def per_type_delta(reference_report: dict, candidate_report: dict) -> dict:
    """Candidate minus reference, per entity type: F1 and recall."""
    return {name: {k: round(candidate_report["per_type"][name][k] - ref[k], 4)
                   for k in ("f1-score", "recall")}
            for name, ref in reference_report["per_type"].items()
            if name in candidate_report["per_type"]}


def drop(reference: float, candidate: float) -> float:
    """Entity-F1 points lost."""
    return 100 * (reference - candidate)


def distill_loss(student_logits, teacher_logits, labels, *, alpha: float, temperature: float,
                 teacher_mask=None):
    """Soft targets on the scored positions (teacher_mask), cross-entropy on the gold tags."""
    from ..train import losses

    parts, loss = {}, 0.0
    mask = teacher_mask if teacher_mask is not None else labels != class_labels.IGNORE
    if alpha > 0:
        parts["soft"] = losses.soft_target_loss(student_logits[mask], teacher_logits[mask],
                                                temperature)
        loss = loss + alpha * parts["soft"]
    if alpha < 1:
        parts["hard"] = losses.hard_label_loss(student_logits.flatten(0, 1),
                                               labels.flatten())
        loss = loss + (1 - alpha) * parts["hard"]
    return loss, parts


TASK = register(Task(
    name="token-classification",
    summary="a tag for each word (named entities), returned as entity spans",
    model_class="AutoModelForTokenClassification",
    optimum_task="token-classification",
    peft_task_type="TOKEN_CLS",
    claims=claims,
    head_config=class_labels.head_config,
    read=read,
    read_eval=read_eval,
    claims_data=claims_data,
    load_preprocessor=backbones.load_tokenizer,
    prepare=prepare,
    encode=words.encode,
    per_example=words.per_example,
    index_columns=words.INDEX,
    to_rows=words.to_rows,
    collator=words.Collator,
    read_unlabeled=read_unlabeled,
    predictions=predictions,
    metrics=report,
    render=render,
    primary="entity_f1",
    greater_is_better=True,
    compare=compare,
    drop=drop,
    per_label_delta=per_type_delta,
    distill_loss=distill_loss,
    agreement=parity.top1_agreement,
    tolerances=None,
    probe_rows=PROBE_ROWS,
    rewrites=frozenset(),  # every position's output is used: no first-token slicing
    runtime={"postprocess": "entities", "words": "the tokenizer's",
             "aggregation": "first sub-token", "tags": "IOB2, conlleval repair"},
    head="word",  # a joint model's head over the encoder (tasks/joint)
    inputs=words_inputs.WORDS,
    secondary="token_micro_f1",
    floor=floor_evidence,
    shipped=spans.predictions,
    # full fine-tuning of minilm-l6 on 300 CoNLL-2003 sentences, 5 epochs: test entity F1
    # 0.69 at 5e-4 against 0.34 at 1e-4 (1 epoch: 0.24 against 0.00); on 3,000 sentences
    # 0.835 against 0.824 (bench/small_data.py; bench/RESULTS.md "Small data")
    learning_rates={"full": 5e-4},
))
