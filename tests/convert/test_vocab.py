"""Vocabulary pruning on a tiny BERT with the real MiniLM tokenizer: every character kept,
ids remapped consistently (the pruned model on the pruned tokenizer gives the unpruned
model's logits on in-corpus text, exactly)."""

from __future__ import annotations

import json

import numpy as np
import pytest

CORPUS = ["turn the kitchen lights off", "what a wonderful and lovely film",
          "set a timer for ten minutes", "the river by the garden is quiet"]


def test_pruned_model_and_tokenizer_give_the_same_logits(tiny_classifier, tmp_path):
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from edgetransfer.convert import vocab

    tok = AutoTokenizer.from_pretrained(tiny_classifier)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_classifier).eval()
    keep = vocab.kept_ids(tok, CORPUS)
    assert len(keep) < len(tok) / 10  # the corpus's words, specials and characters
    chars = [i for t, i in tok.get_vocab().items() if len(t) == 1]
    assert set(chars) <= set(keep) and set(tok.all_special_ids) <= set(keep)

    data = json.loads((tiny_classifier / "tokenizer.json").read_text())
    pruned_tok = Tokenizer.from_str(json.dumps(vocab.prune_tokenizer_json(data, keep)))
    pruned_tok.no_padding()
    pruned = AutoModelForSequenceClassification.from_pretrained(tiny_classifier).eval()
    vocab.prune_embeddings(pruned, keep)
    assert pruned.get_input_embeddings().num_embeddings == len(keep)
    for text in CORPUS + ["zebra quokka"]:  # unseen words still tokenize, by characters
        encoding = pruned_tok.encode(text)
        ids = encoding.ids
        assert all(0 <= i < len(keep) for i in ids) and "[UNK]" not in encoding.tokens
        if text in CORPUS:  # the same tokens as before, renumbered
            assert [keep[i] for i in ids] == tok(text)["input_ids"]
            with torch.no_grad():
                a = model(**tok(text, return_tensors="pt")).logits.numpy()
                b = pruned(input_ids=torch.tensor([ids])).logits.numpy()
            np.testing.assert_array_equal(a, b)


def test_only_wordpiece_is_pruned(tiny_classifier):
    from edgetransfer.convert import vocab
    from edgetransfer.errors import ModelError

    with pytest.raises(ModelError, match="WordPiece tokenizers"):
        vocab.prune_tokenizer_json({"model": {"type": "BPE"}}, [0, 1])


def test_added_tokens_are_kept_even_when_the_corpus_never_uses_them(tiny_classifier, tmp_path):
    from transformers import AutoTokenizer

    from edgetransfer.convert import vocab

    tok = AutoTokenizer.from_pretrained(tiny_classifier)
    tok.add_tokens(["<url>"])
    keep = vocab.kept_ids(tok, CORPUS)
    assert tok.convert_tokens_to_ids("<url>") in keep
    tok.save_pretrained(tmp_path)
    data = json.loads((tmp_path / "tokenizer.json").read_text())
    pruned = vocab.prune_tokenizer_json(data, keep)  # (no KeyError on the added token)
    assert any(t["content"] == "<url>" for t in pruned["added_tokens"])
