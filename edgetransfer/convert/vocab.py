"""Vocabulary pruning (`export --prune-vocab`): keep the token ids a corpus uses, the special
tokens and every single character with its ## continuation, so any word still tokenizes;
remap the embedding rows; write a tokenizer.json (and vocab.txt) whose ids match.

In a small student most of the bytes are the embedding table (30,522 x 384 for MiniLM), so
this is where a bundle shrinks. No library does it through to a tokenizer.json (TextPruner
prunes PyTorch models only), so it is written here. WordPiece tokenizers (BERT family) only,
for now.

Why on export and not on distill: pruning changes no logit on text the corpus covers, so
one distilled student serves pruned and unpruned exports alike (the search builds both from
one distillation), and the export is where the shipped tokenizer is written.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections import Counter
from pathlib import Path

from ..errors import DataError, ModelError
from ..untrusted import MAX_TOKENIZER_BYTES, fields_of, read_json

# A corpus more than this share [UNK] under the model's tokenizer was not written for it
# (another language's script, another model's token ids): pruning by it would keep nothing
# of what the model knows.
MAX_CORPUS_UNK = 0.2
# Label agreement with the unpruned model, on text outside the corpus, that a pruned model
# must keep (int8's own least agreement: pruning may not cost more than quantizing does).
MIN_AGREEMENT = 0.95
# tokenizer files rewritten with the new ids; the rest (tokenizer_config.json,
# special_tokens_map.json) name tokens, not ids, and are copied as they are
REWRITTEN = ("tokenizer.json", "vocab.txt")


def count_tokens(id_batches, special_ids) -> Counter:
    """How often each non-special id occurs in (input_ids, attention_mask) batches."""
    import numpy as np

    counts: Counter = Counter()
    special = np.asarray(sorted(special_ids))
    for ids, mask in id_batches:
        used = ids[(mask > 0) & ~np.isin(ids, special)]
        counts.update(dict(zip(*(x.tolist() for x in np.unique(used, return_counts=True)))))
    return counts


def check_corpus(counts: Counter, unk_id: int | None, where: str) -> None:
    """Refuse a corpus that is empty or not text this tokenizer reads."""
    total = sum(counts.values())
    if total == 0:
        raise DataError(f"{where}: the corpus holds no text (no tokens); give the texts the "
                        f"model will see (training plus unlabelled text)")
    unk = counts.get(unk_id, 0) / total if unk_id is not None else 0.0
    if unk > MAX_CORPUS_UNK:
        raise DataError(f"{where}: {unk:.0%} of the corpus's tokens are [UNK] to this model's "
                        f"tokenizer (at most {MAX_CORPUS_UNK:.0%}): it is not text this "
                        f"tokenizer was made for (another script or another model's vocabulary)"
                        f"; prune with text like the model's own data")


def kept_ids(tokenizer, texts: list[str], min_count: int = 1) -> list[int]:
    """The ids to keep, in the old order: those the texts use at least `min_count` times,
    the special tokens, and every single-character token with its ## form."""
    counts = Counter(i for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]
                     for i in ids)
    return kept_from_counts(tokenizer, counts, min_count)


def kept_from_counts(tokenizer, counts: Counter, min_count: int = 1) -> list[int]:
    """kept_ids from token counts already made (count_tokens)."""
    vocab = tokenizer.get_vocab()
    keep = {i for i, n in counts.items() if n >= min_count}
    keep |= set(tokenizer.all_special_ids)
    # tokens added to the tokenizer (special or not) are matched before WordPiece: kept, so
    # tokenizer.json's added_tokens stay whole
    keep |= set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    keep |= {i for t, i in vocab.items() if len(t) == 1 or (t.startswith("##") and len(t) == 3)}
    return sorted(keep)


def prune_tokenizer_json(data: dict, keep: list[int]) -> dict:
    """tokenizer.json (as a dict) with only `keep`'s tokens, renumbered in their old order."""
    if (data.get("model") or {}).get("type") != "WordPiece":
        raise ModelError("vocabulary pruning takes WordPiece tokenizers (BERT family) for now")
    new_id = {old: new for new, old in enumerate(keep)}
    out = copy.deepcopy(data)
    vocab = data["model"]["vocab"]
    out["model"]["vocab"] = {t: new_id[i] for t, i in sorted(vocab.items(), key=lambda x: x[1])
                             if i in new_id}
    for token in out.get("added_tokens") or []:
        token["id"] = new_id[token["id"]]
    post = out.get("post_processor") or {}
    for special in (post.get("special_tokens") or {}).values():
        special["ids"] = [new_id[i] for i in special["ids"]]
    if out.get("padding"):
        out["padding"]["pad_id"] = new_id[out["padding"]["pad_id"]]
    return out


def prune_embeddings(model, keep: list[int]) -> None:
    """The model's input embedding table cut to `keep`'s rows, in place."""
    import torch

    old = model.get_input_embeddings()
    table = torch.nn.Embedding(len(keep), old.embedding_dim,
                               padding_idx=None if old.padding_idx is None
                               else keep.index(old.padding_idx))
    with torch.no_grad():
        table.weight.copy_(old.weight[torch.tensor(keep)])
    model.set_input_embeddings(table)
    model.config.vocab_size = len(keep)
    if getattr(model.config, "pad_token_id", None) is not None and \
            model.config.pad_token_id in keep:
        model.config.pad_token_id = keep.index(model.config.pad_token_id)


def prune_checkpoint(model, source: Path, keep: list[int], folder: Path) -> None:
    """A checkpoint folder of `model` cut to `keep`'s ids: weights (safetensors), config,
    and the source's tokenizer files with the new ids."""
    source, folder = Path(source), Path(folder)
    label, fix = str(source / "tokenizer.json"), "the tokenizer is damaged"
    data = read_json(source / "tokenizer.json", what="tokenizer.json", error=ModelError,
                     fix=fix, limit=MAX_TOKENIZER_BYTES)  # (bounded: size, nesting)
    with fields_of(label, error=ModelError, fix=fix):  # (a field of another shape: one line)
        pruned = prune_tokenizer_json(data, keep)
    prune_embeddings(model, keep)
    model.save_pretrained(folder, safe_serialization=True)
    for f in source.iterdir():
        if f.is_file() and f.name.startswith(("tokenizer", "special_tokens")) \
                and f.name not in REWRITTEN:
            shutil.copyfile(f, folder / f.name)
    (folder / "tokenizer.json").write_text(json.dumps(pruned, ensure_ascii=False),
                                           encoding="utf-8")
    # vocab.txt: one token a line, line number = id (what the slow BERT tokenizer reads)
    tokens = sorted(pruned["model"]["vocab"].items(), key=lambda x: x[1])
    (folder / "vocab.txt").write_text("".join(t + "\n" for t, _ in tokens), encoding="utf-8")
