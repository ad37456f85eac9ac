"""export's size options on a tiny random BERT: vocabulary pruning (--prune-vocab) through to
the ONNX model, its tokenizer, verify and the bundle; 4-bit weight-only blocks (--quantize
int4, --int4-embeddings)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import make_classifier, make_rows, write_jsonl


@pytest.fixture(scope="module")
def setup(tiny_backbone, tmp_path_factory):
    folder = tmp_path_factory.mktemp("small")
    model = make_classifier(tiny_backbone, folder / "m", seed=1)
    corpus = write_jsonl(folder / "corpus.jsonl", make_rows(40, seed=5))
    # text outside the corpus: other words (they still tokenize, by pieces)
    unseen = [{"text": t, "label": lab} for t, lab in
              [("a quokka was superb", "pos"), ("the zebra engine", "neu"),
               ("horrible marmalade", "neg")] * 4] + make_rows(12, seed=6)
    evals = write_jsonl(folder / "eval.jsonl", unseen)
    return model, corpus, evals, folder


@pytest.fixture(scope="module")
def pruned(setup, tmp_path_factory):
    from edgetransfer.cli import main

    model, corpus, evals, folder = setup
    out = folder / "onnx-pruned"
    try:
        main(["-q", "export", "--model", str(model), "--out", str(out), "--quantize", "none",
              "--prune-vocab", str(corpus), "--eval-data", str(evals),
              "--max-accuracy-drop", "100", "--min-agreement", "0.01"])
    except SystemExit as e:
        assert not e.code, e.code
    return out


def _onnx_logits(folder: Path, texts):
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.enable_padding(pad_id=tok.token_to_id("[PAD]"))
    enc = tok.encode_batch(texts)
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    feeds = {"input_ids": np.array([e.ids for e in enc], np.int64),
             "attention_mask": np.array([e.attention_mask for e in enc], np.int64),
             "token_type_ids": np.array([e.type_ids for e in enc], np.int64)}
    return session.run(None, {k: v for k, v in feeds.items() if k in names})[0]


def test_pruned_export_answers_as_the_unpruned_model_on_corpus_text(setup, pruned):
    import onnx
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model, corpus, evals, _ = setup
    record = json.loads((pruned / "export.json").read_text())["vocab"]
    vocab = json.loads((pruned / "tokenizer.json").read_text())["model"]["vocab"]
    assert record["kept"] == len(vocab) < record["of"] / 10
    assert record["kept_fraction"] == round(record["kept"] / record["of"], 4)
    assert record["judged_on"] == str(evals) and 0 <= record["label_agreement"] <= 1
    assert set(record["unk_rate"]) == {"unpruned", "pruned"}
    # every single character is still there, with its ## continuation
    assert {"q", "##q", "z", "##z", "[UNK]", "[CLS]", "[SEP]", "[PAD]"} <= set(vocab)
    # the embedding table in the graph has exactly the kept rows
    graph = onnx.load(str(pruned / "model.onnx"))
    table = next(t for t in graph.graph.initializer if "word_embeddings" in t.name)
    assert table.dims[0] == record["kept"]
    # vocab.txt matches tokenizer.json line by line (id = line number)
    lines = (pruned / "vocab.txt").read_text().splitlines()
    assert all(vocab[t] == i for i, t in enumerate(lines)) and len(lines) == len(vocab)
    texts = [json.loads(x)["text"] for x in corpus.read_text().splitlines()[:6]]
    ref = AutoModelForSequenceClassification.from_pretrained(model).eval()
    with torch.inference_mode():
        expected = ref(**AutoTokenizer.from_pretrained(model)(
            texts, padding=True, return_tensors="pt")).logits.numpy()
    np.testing.assert_allclose(_onnx_logits(pruned, texts), expected, atol=1e-4)
    # a word the corpus never had still tokenizes, by pieces, never [UNK]
    from tokenizers import Tokenizer

    assert "[UNK]" not in Tokenizer.from_file(str(pruned / "tokenizer.json")).encode(
        "quokka marmalade").tokens


def test_verify_and_the_bundle_take_a_pruned_export(setup, pruned, cli, tmp_path):
    model, corpus, evals, _ = setup
    code, text = cli("-q", "verify", "--reference", model, "--candidate", pruned,
                     "--data", evals, "--no-latency", "--max-accuracy-drop", "100",
                     "--min-agreement", "0.01", "--out", tmp_path / "verify.json")
    assert code == 0, text
    report = json.loads((tmp_path / "verify.json").read_text())
    parity = report["candidates"][0]["parity"]
    assert parity["passed"] and "label agreement" in parity["vocab_pruned"]
    assert parity["outputs"]["logits"]["atol"] is None
    code, text = cli("-q", "package", "--model", pruned, "--unverified", "--out",
                     tmp_path / "bundle", "--no-measure")
    assert code == 0, text
    assert (tmp_path / "bundle" / "tokenizer.json").read_bytes() == \
        (pruned / "tokenizer.json").read_bytes()
    code, text = cli("predict", "--bundle", tmp_path / "bundle", "a quokka was superb")
    assert code == 0, text
    assert json.loads(text.strip().splitlines()[-1])["label"] in ("neg", "neu", "pos")


@pytest.mark.parametrize("corpus_text, words", [
    ("\U0001f980 \U0001f981 \U0001f984\n" * 5, "are [UNK] to this model's tokenizer"),
    ("", "empty")])
def test_a_corpus_that_is_empty_or_for_another_tokenizer_is_refused(
        setup, cli, tmp_path, corpus_text, words):
    model, _, evals, _ = setup
    corpus = tmp_path / "corpus.txt.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n"
                              for t in corpus_text.splitlines()), encoding="utf-8")
    before = corpus.read_bytes()
    code, text = cli("export", "--model", model, "--out", tmp_path / "o", "--quantize", "none",
                     "--prune-vocab", corpus, "--eval-data", evals)
    assert code == 2, text
    assert words in text and "Traceback" not in text
    assert not (tmp_path / "o").exists() and corpus.read_bytes() == before


def test_pruning_needs_unseen_eval_text(setup, cli, tmp_path):
    model, corpus, evals, _ = setup
    code, text = cli("export", "--model", model, "--out", tmp_path / "o", "--prune-vocab",
                     corpus)
    assert code == 2 and "needs --eval-data" in text
    code, text = cli("export", "--model", model, "--out", tmp_path / "o", "--prune-vocab",
                     f"{corpus},{evals}", "--eval-data", evals)
    assert code == 2 and "never saw" in text


def test_int4_blocks(setup, cli, tmp_path):
    import onnx

    model, corpus, evals, _ = setup
    sizes = {}
    for name, args in (("int8", ["--quantize", "int8-dynamic"]),
                       ("int8-int4emb", ["--quantize", "int8-dynamic", "--int4-embeddings"]),
                       ("int4", ["--quantize", "int4"])):
        out = tmp_path / name
        code, text = cli("-q", "export", "--model", model, "--out", out, *args,
                         "--eval-data", evals, "--max-accuracy-drop", "100",
                         "--min-agreement", "0.01")
        assert code == 0, text
        ops = {n.op_type for n in onnx.load(str(out / "model.onnx")).graph.node}
        record = json.loads((out / "export.json").read_text())
        sizes[name] = record["size_bytes"]
        if name != "int8":
            assert "GatherBlockQuantized" in ops  # the embedding tables in 4-bit blocks
        if name == "int4":
            assert "MatMulNBits" in ops and record["quantization"]["MatMulNBits"] > 0
        if name == "int8-int4emb":
            assert "QAttention" in ops or "DynamicQuantizeMatMul" in ops or \
                "MatMulInteger" in ops
    # the tiny model is nearly all embedding table: 4-bit blocks of 32 (5 bits a weight with
    # the scale) against int8's 8
    assert max(sizes["int4"], sizes["int8-int4emb"]) < 0.7 * sizes["int8"]
    code, text = cli("export", "--model", model, "--out", tmp_path / "x", "--quantize",
                     "none", "--int4-embeddings")
    assert code == 2 and "--int4-embeddings goes with an int8" in text


def test_pruning_works_for_a_token_task(tiny_tagger, token_data, cli, tmp_path):
    """Every text task of the seam: a tagger's corpus is its sentences' words."""
    out = tmp_path / "onnx"
    code, text = cli("-q", "export", "--model", tiny_tagger, "--out", out, "--quantize",
                     "none", "--prune-vocab", token_data / "train.txt", "--eval-data",
                     token_data / "test.txt", "--max-accuracy-drop", "100",
                     "--min-agreement", "0.01")
    assert code == 0, text
    record = json.loads((out / "export.json").read_text())
    assert record["task"] == "token-classification"
    assert record["vocab"]["kept"] < record["vocab"]["of"] / 10
    assert 0 <= record["vocab"]["label_agreement"] <= 1
    assert set(record["vocab"]["f1" if "f1" in record["vocab"] else record["metric"]]) == \
        {"unpruned", "pruned"}


def test_a_recipe_prunes_to_its_own_text(tiny_backbone, data_dir, tmp_path):
    """`prune_vocab: data` in a recipe's export variant: its training plus unlabelled files,
    inputs of the step's key (a changed corpus re-runs the export)."""
    import yaml

    from edgetransfer import pipeline
    from edgetransfer import recipe as recipes

    doc = {"name": "p", "model": str(tiny_backbone), "output": str(tmp_path / "m"),
           "data": {"train": str(data_dir / "train.jsonl"), "test": str(data_dir / "test.jsonl"),
                    "unlabeled": str(data_dir / "validation.jsonl")},
           "export": [{"name": "small", "quantize": "int4", "prune_vocab": "data",
                       "min_count": 2}]}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(doc))
    recipe, _ = recipes.load(path)
    (step,) = pipeline.plan(recipe, path, tmp_path / "m")
    assert step.config.prune_vocab == f"{data_dir / 'train.jsonl'},{data_dir / 'validation.jsonl'}"
    assert step.config.min_count == 2
    assert step.inputs["corpus"] == str(data_dir / "train.jsonl")
    assert step.inputs["corpus_unlabeled"] == str(data_dir / "validation.jsonl")
