"""Input kind `words`: a sentence as its list of words, with a tag per word (CoNLL-2003).

The data holds words (and their tags); the bundled runtime reads raw text, as a user has
it, and splits it into words itself: the text reader, timed on the rows' words joined as
text (what the task's eval reader gives as "text").
"""

from __future__ import annotations

from ..bundle import inputs as readers
from . import register, text
from .kind import Column, InputKind

TOKENS_COLUMN = Column.of("tokens_column", str | None, description="Token classification: the "
                          "column holding each sentence's list of words [default: tokens or "
                          "words; the first column of a CoNLL file].")
TAG_COLUMN = Column.of("tag_column", str | None, description="Token classification: the tag "
                       "column, a name (JSONL/Parquet) or a 1-based position in a CoNLL file "
                       "[default: a CoNLL file's last column, else the first of ner_tags, "
                       "tags, labels, label].")
STRICT_TAGS = Column.of("strict_tags", bool, False, description="Token classification: refuse "
                        "IOB1 tags (an entity starting with I-) instead of repairing them to "
                        "IOB2.")

WORDS = register(InputKind(
    name="words",
    summary="a sentence's words, a tag for each",
    reader=readers.TEXT,
    columns=(TOKENS_COLUMN, TAG_COLUMN, STRICT_TAGS),
    latency_inputs=text.latency_texts,
    device_inputs=text.device_texts,
))
