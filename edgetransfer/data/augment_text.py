"""Text augmentation for distillation: new sentences the teacher labels, made from the
training rows (TinyBERT's data augmentation, and EDA's edits).

Every edit works on whole words, deterministic by seed (each new sentence draws from its
own generator, seeded by (seed, row, copy), so a row's copies do not depend on the others):

- **replace**: a word becomes one of its nearest neighbours in the teacher's own input
  embeddings (cosine, among the vocabulary's whole-word tokens): words the teacher already
  places near each other, TinyBERT's stand-in for a masked language model's guesses;
- **mask**: a word becomes the tokenizer's mask (or unknown) token;
- **delete**, **swap**: a word is dropped, or two words trade places.

For token classification only `O` words are replaced, masked or deleted and words are not
swapped; an entity mention may instead be swapped for another of the same type from the
training rows (its words and IOB2 tags together), so tags stay aligned. No library does
this over a teacher's vocabulary (nlpaug and TextAttack need their own models or WordNet,
which this offline project cannot fetch); it is written here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

# (IOB2 decoding, stated once: the runtime's, which bundles ship)
from ..bundle.runtime.predict import entity_spans
from ..errors import ConfigError


@dataclass(frozen=True)
class TextAugment:
    """A preset: how many new sentences per training row, and each edit's share of words."""

    copies: int
    replace: float = 0.0
    mask: float = 0.0
    delete: float = 0.0
    swap: float = 0.0
    mention_swap: float = 0.0  # token classification: share of mentions swapped
    neighbours: int = 10  # candidates per word for `replace`
    min_words: int = 0  # only rows of at least this many words are copied

    def record(self) -> dict:
        return asdict(self)

    def takes(self, words: list[str]) -> bool:
        """Whether a row (its words) is copied: it reaches the floor of words."""
        return len(words) >= self.min_words


# Named presets (the artifact records the preset's name and its parameters).
PRESETS = {
    # TinyBERT's recipe: about 20 new sentences a row, 40% of words replaced (SST-2 grew ~20x)
    "tinybert": TextAugment(copies=20, replace=0.4),
    # EDA's small edits (Wei & Zou 2019): 4 copies, a tenth of the words each way
    "eda": TextAugment(copies=4, replace=0.1, delete=0.1, swap=0.1),
    # a light mix for small budgets
    "light": TextAugment(copies=2, replace=0.15, mask=0.1),
    # named entities: O words replaced, mentions swapped for others of their type
    "ner": TextAugment(copies=4, replace=0.3, mention_swap=0.5),
    # the copies spent on rows of sentence length: SST-2's 3-layer student follows its
    # teacher on train's phrases (99.8% on dev.tsv) and falls behind on whole sentences
    # (96.5% on validation.tsv, median 19 words; 68% of 15 words or more, against 22% of
    # the transfer text's rows)
    "long": TextAugment(copies=8, replace=0.3, min_words=15),
}
MAX_COPIES = 64  # a preset's copies are bounded: 64 x a training file is already large


def preset(name: str) -> TextAugment:
    if name not in PRESETS:
        raise ConfigError(f"--augment {name}: not a text preset; use one of "
                          f"{', '.join(PRESETS)}")
    return PRESETS[name]


def is_word(token: str) -> bool:
    """A vocabulary entry that is a whole alphabetic word (not a ##piece, [SPECIAL] or ▁)."""
    return token.isalpha() and token.isascii() and len(token) > 1


# The marks that begin a word in SentencePiece (▁) and byte-level BPE (Ġ) vocabularies;
# there the unmarked entries are the pieces inside words, as WordPiece's ##-marked ones are.
WORD_STARTS = ("\u2581", "\u0120")


def whole_words(vocab: dict[str, int]) -> dict[str, int]:
    """Each whole word of a vocabulary -> its id: WordPiece's plain entries, or a
    SentencePiece or byte-level BPE vocabulary's word-initial entries, their mark dropped
    (told apart by which marks a quarter of the entries carry)."""
    marked = [t for t in vocab if t[:1] in WORD_STARTS]
    if len(marked) * 4 > len(vocab):
        return {t[1:]: vocab[t] for t in marked if is_word(t[1:])}
    return {t: i for t, i in vocab.items() if is_word(t)}


def neighbours(embeddings: np.ndarray, vocab: dict[str, int], words: set[str], k: int
               ) -> dict[str, list[str]]:
    """Each of `words` that is a whole word of `vocab` -> its k nearest whole words by
    cosine in the embedding table (itself excluded). Computed in blocks: a 30k x 384 table
    is fine."""
    vocab = whole_words(vocab)
    candidates = sorted(vocab, key=vocab.__getitem__)
    if not candidates:
        return {}
    ids = np.array([vocab[t] for t in candidates])
    table = embeddings[ids].astype(np.float32)
    table /= np.linalg.norm(table, axis=1, keepdims=True) + 1e-12
    asked = sorted(w for w in words if w in vocab)
    out = {}
    for start in range(0, len(asked), 512):
        block = asked[start:start + 512]
        rows = embeddings[[vocab[w] for w in block]].astype(np.float32)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True) + 1e-12
        sims = rows @ table.T
        top = np.argsort(-sims, axis=1)[:, :k + 1]
        for word, row in zip(block, top):
            out[word] = [candidates[j] for j in row if candidates[j] != word][:k]
    return out


def _rng(seed: int, row: int, copy: int) -> np.random.Generator:
    return np.random.default_rng([seed, row, copy])


def sentence(words: list[str], aug: TextAugment, near: dict[str, list[str]],
             mask_token: str, rng: np.random.Generator) -> list[str]:
    """One edited copy of a sentence (a word list); never empty."""
    out = []
    for word in words:
        roll = rng.random()
        if roll < aug.delete:  # (a one-word sentence keeps its word, unedited)
            if len(words) > 1:
                continue
            out.append(word)
            continue
        roll -= aug.delete
        options = near.get(word.lower())
        if roll < aug.replace:  # (a word without neighbours stays as it is)
            pick = options[int(rng.integers(len(options)))] if options else word
            out.append(pick.capitalize() if options and word[:1].isupper() else pick)
        elif roll < aug.replace + aug.mask:
            out.append(mask_token)
        else:
            out.append(word)
    if len(out) > 1 and aug.swap:
        for _ in range(int(rng.binomial(len(out), aug.swap))):
            i, j = rng.integers(len(out), size=2)
            out[i], out[j] = out[j], out[i]
    return out or list(words[:1])


def mentions(rows: list[tuple[list[str], list[str]]]) -> dict[str, list[list[str]]]:
    """Every entity mention of the training rows by type (IOB2): type -> [words], each
    distinct mention once, in the order first seen."""
    seen: dict[str, dict[tuple, None]] = {}  # (dicts: ordered, and a set's lookup)
    for words, tags in rows:
        for kind, first, last in entity_spans(tags):
            seen.setdefault(kind, {})[tuple(words[first:last + 1])] = None
    return {kind: [list(m) for m in mentions] for kind, mentions in seen.items()}


def tagged(words: list[str], tags: list[str], aug: TextAugment, near: dict[str, list[str]],
           pool: dict[str, list[list[str]]], mask_token: str, rng: np.random.Generator
           ) -> tuple[list[str], list[str]]:
    """One edited copy of a tagged sentence, its tags aligned: O words replaced, masked or
    deleted; a mention swapped, whole, for another of its type (B- then I- tags)."""
    starts = {first: (kind, last + 1) for kind, first, last in entity_spans(tags)}
    word_edit = TextAugment(1, replace=aug.replace, mask=aug.mask)  # (an O word's own edits)
    out_words, out_tags, i = [], [], 0
    while i < len(words):
        if i in starts:
            kind, end = starts[i]
            mention = words[i:end]
            mentions_of = pool.get(kind, [])
            if len(mentions_of) > 1 and rng.random() < aug.mention_swap:
                # another mention of the type, drawn among all but this one (no list of
                # the others is built: a CoNLL type holds thousands)
                pick = int(rng.integers(len(mentions_of) - 1))
                if mentions_of[pick] == mention:
                    pick = len(mentions_of) - 1
                mention = mentions_of[pick]
            out_words += mention
            out_tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(mention) - 1)
            i = end
            continue
        if tags[i] != "O":  # (an I- without its B-: kept as it is)
            out_words.append(words[i])
            out_tags.append(tags[i])
        else:
            edited = sentence([words[i]], word_edit, near, mask_token, rng)
            if not (aug.delete and rng.random() < aug.delete and len(words) > 1):
                out_words += edited
                out_tags.append("O")
        i += 1
    if not out_words:  # (every word was an O word and deleted: the first one stays)
        return list(words[:1]), list(tags[:1])
    return out_words, out_tags


def long_enough(train, aug: TextAugment, more: list[str] = ()) -> int:
    """How many rows of `train` (a split: texts, or a tagger's words), and of `more` texts,
    the preset copies."""
    own = (sum(aug.takes(words) for words in train["tokens"])
           if "tokens" in train.column_names else copied(train["text"], aug))
    return own + copied(more, aug)


def copied(texts: list[str], aug: TextAugment) -> int:
    """How many of `texts` the preset copies."""
    return sum(aug.takes(t.split()) for t in texts)


def _check_copies(aug: TextAugment) -> None:
    if not 1 <= aug.copies <= MAX_COPIES:
        raise ConfigError(f"augmentation copies {aug.copies}: give 1..{MAX_COPIES}")


def expand_texts(texts: list[str], aug: TextAugment, near: dict[str, list[str]],
                 mask_token: str, seed: int) -> list[str]:
    """`copies` new sentences per text of at least `min_words` words, in row order (the rows
    themselves not included)."""
    _check_copies(aug)
    return [" ".join(sentence(words, aug, near, mask_token, _rng(seed, r, c)))
            for r, words in enumerate(t.split() for t in texts)
            if aug.takes(words) for c in range(aug.copies)]


def expand_tagged(rows: list[tuple[list[str], list[str]]], aug: TextAugment,
                  near: dict[str, list[str]], mask_token: str, seed: int
                  ) -> list[tuple[list[str], list[str]]]:
    """`copies` new tagged sentences per row of at least `min_words` words, in row order
    (mentions swapped in from every row)."""
    _check_copies(aug)
    pool = mentions(rows)
    return [tagged(words, tags, aug, near, pool, mask_token, _rng(seed, r, c))
            for r, (words, tags) in enumerate(rows) if aug.takes(words)
            for c in range(aug.copies)]


# A masked word in the rows made, until each model's file is written with its own mask
# token: teacher and student may tokenize differently, and one's mask ("<mask>") is three
# ordinary pieces to the other's reader. (A control character: no text file's word.)
MASK = "\x00mask\x00"


def check_task(task_name: str, train, spec: str, unlabeled: bool = False) -> None:
    """The task's training rows are ones text augmentation edits, and with `unlabeled`
    (--augment-unlabeled) its unlabelled rows too (said before a model loads)."""
    if unlabeled and task_name == "token-classification":
        raise ConfigError("--augment-unlabeled: an unlabelled sentence has no tags to keep "
                          "its mentions whole (--augment copies a tagger's training rows "
                          "only); leave it out")
    if task_name == "token-classification" or (task_name == "text-classification"
                                               and "text_pair" not in train.column_names):
        return
    raise ConfigError(f"--augment {spec}: text augmentation is for single-text "
                      f"classification and token classification, not {task_name}"
                      + (" with a text pair" if task_name == "text-classification" else ""))


def make_rows(task_name: str, data, embeddings: np.ndarray, vocab: dict[str, int],
              aug: TextAugment, seed: int, more: list[str] = ()) -> list[list[str]]:
    """The new sentences (word lists, a masked word as MASK) made from `data`'s train
    split (a task check_task takes) and `more` texts after its rows (--unlabeled's kept,
    single texts), less those a row given or an earlier new sentence already is: a copy
    that edited nothing, or two copies alike, would teach one sentence twice. Train's rows
    draw the same copies with `more` or without (each copy's generator is seeded by its
    row's number)."""
    train = data.splits["train"]
    if task_name == "token-classification":
        rows = [(list(w), [data.label_names[i] for i in ids])
                for w, ids in zip(train["tokens"], train["label"])]
        words = {w.lower() for ws, _ in rows if aug.takes(ws) for w in ws}
        made = [ws for ws, _ in expand_tagged(
            rows, aug, neighbours(embeddings, vocab, words, aug.neighbours), MASK, seed)]
        seen = {tuple(ws) for ws, _ in rows}
    else:
        texts = [*train["text"], *more]
        split = [t.split() for t in texts]
        # (the neighbours of the copied rows' words alone)
        words = {w.lower() for ws in split if aug.takes(ws) for w in ws}
        near = neighbours(embeddings, vocab, words, aug.neighbours)
        # (expand_texts joins a new sentence's words with single spaces)
        made = [s.split(" ") for s in expand_texts(texts, aug, near, MASK, seed)]
        seen = set(map(tuple, split))
    kept = []
    for ws in made:
        if tuple(ws) not in seen:
            seen.add(tuple(ws))
            kept.append(ws)
    return kept


def texts_of(spec: str, column: str | None, keep: list[int]) -> list[str]:
    """The texts of an unlabelled file (--unlabeled's, as the text tasks read it: the same
    checks, the same column), its rows `keep` in their order."""
    from ..tasks.text import read_texts

    rows, _ = read_texts(spec, column, None, text_flag="--unlabeled-column")
    texts = rows["text"]
    return [texts[i] for i in keep]


def write_rows(task_name: str, rows: list[list[str]], mask_token: str, path: Path) -> int:
    """`rows` (make_rows') written as JSONL at `path`, MASK as `mask_token`, in the layout
    the task's unlabelled reader takes (text rows, or a tagger's `tokens`): the teacher
    labels them as it labels --unlabeled. Returns how many."""
    import json

    with path.open("w", encoding="utf-8") as f:
        for ws in rows:
            ws = [mask_token if w == MASK else w for w in ws]
            row = {"tokens": ws} if task_name == "token-classification" else {
                "text": " ".join(ws)}
            f.write(json.dumps(row) + "\n")
    return len(rows)
