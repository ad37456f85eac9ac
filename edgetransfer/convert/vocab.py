"""Vocabulary pruning (issue 19, part 1; not wired into a command yet): keep the token ids a
corpus uses, the special tokens and every single character with its ## continuation, so any
word still tokenizes; remap the embedding rows; write a tokenizer.json whose ids match.

In a small student most of the bytes are the embedding table (30,522 x 384 for MiniLM), so
this is where a bundle shrinks. No library does it through to a tokenizer.json (TextPruner
prunes PyTorch models only). WordPiece tokenizers (BERT family) only, for now.
"""

from __future__ import annotations

import copy
from collections import Counter

from ..errors import ModelError


def kept_ids(tokenizer, texts: list[str], min_count: int = 1) -> list[int]:
    """The ids to keep, in the old order: those the texts use at least `min_count` times,
    the special tokens, and every single-character token with its ## form."""
    counts = Counter(i for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]
                     for i in ids)
    vocab = tokenizer.get_vocab()
    keep = {i for i, n in counts.items() if n >= min_count}
    keep |= set(tokenizer.all_special_ids)
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
