"""Input kinds read as text: `text`, one text per example (the text-regression test's), and
`text-pair`, a text or a pair of texts per example (text-classification: SST-2, intents,
GLUE's MNLI).

Two kinds, not one, because a bundle says whether it takes pairs (input_spec.json "task"
"pairs", its README) and a task that reads one text must not claim them. No kind for pairs
alone: the second column is optional and found by name (sentence2 beside sentence1) and the
tokenizer encodes one text or two alike, so one task takes single texts and pairs from the
same data reader. The runtime reads all of them, and `words` (words.py), as text: these
functions serve them all.
"""

from __future__ import annotations

from pathlib import Path

from ..bundle import inputs as readers
from ..errors import DataError
from . import register
from .kind import LABEL, Column, InputKind

TEXT_COLUMN = Column.of("text_column", str | None, description="Text column [default: the "
                        "first of text, sentence, sentence1, question, question1, premise].")
PAIR_COLUMN = Column.of("text_pair_column", str | None, description="Second text column for "
                        "pair tasks [default: sentence2 beside sentence1, and so on].")


def latency_texts(cfg, task, scratch: Path | None = None) -> list:
    """What the text runtime is timed on: a text, or a (text, pair) tuple (the task's
    reader, so a recipe's eval file of any task times real inputs; a tagger's rows carry
    their words joined as "text")."""
    from ..bundle.runtime.predict import BundleError, read_texts
    from ..data import conll

    if (cfg.latency_data is not None and Path(cfg.latency_data).suffix.lower() == ".txt"
            and not task.claims_data(conll.columns_of(cfg.latency_data) or [])):
        # a .txt is CoNLL columns for a task that reads words, else one text a line (as the
        # runtime's --input reads it)
        try:
            return read_texts(cfg.latency_data)
        except BundleError as e:
            raise DataError(f"--latency-data {e}") from None
    rows = (task.read_eval(str(cfg.latency_data), None, cfg) if cfg.latency_data
            else task.probe_rows)
    return [(r["text"], r["text_pair"]) if r.get("text_pair") else r["text"] for r in rows]


def device_texts(task, latency_data) -> list:
    """What predict.py on a device is timed on: --latency-data as predict.py --input reads
    it (raises the runtime's BundleError), else the task's probe texts."""
    from ..bundle.runtime.predict import inputs_for

    if latency_data:
        return inputs_for(readers.TEXT.name, [], latency_data)
    return [r["text"] for r in task.probe_rows]


# (registered before `text`: its columns' order is --help's)
TEXT_PAIR = register(InputKind(
    name="text-pair",
    summary="a text, or a pair of texts, per example",
    reader=readers.TEXT,
    columns=(TEXT_COLUMN, PAIR_COLUMN, LABEL),
    latency_inputs=latency_texts,
    device_inputs=device_texts,
    runtime={"pairs": True},
))
TEXT = register(InputKind(
    name="text",
    summary="a text per example",
    reader=readers.TEXT,
    columns=(TEXT_COLUMN, LABEL),
    latency_inputs=latency_texts,
    device_inputs=device_texts,
))
