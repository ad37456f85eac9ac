"""Task token-classification: reading, alignment, windows, metrics, and every stage on a
tiny tagger, down to the bundle's entity spans."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import BLOCK_TORCH, make_sentences, predictions, token_args, write_conll, write_jsonl

from edgetransfer.data.labels import IGNORE
from edgetransfer.errors import DataError
from edgetransfer.tasks import get, token_classification, words

TASK = get("token-classification")


@pytest.fixture(scope="module")
def tokenizer(tiny_backbone):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_backbone)


# --- alignment and windows

def test_the_label_goes_on_each_words_first_sub_token(tokenizer):
    sentence = ["Blackburnshire", "visited", "Oslo"]  # the first word has several pieces
    pieces = len(tokenizer.tokenize("Blackburnshire"))
    assert pieces > 1
    rows, _ = words.rows_of(tokenizer, [sentence], 32, [[1, 0, 2]])
    label, index = rows["label"][0], rows[words.WORD_INDEX][0]
    assert label[0] == IGNORE and index[0] == -1  # [CLS]
    assert label[1:1 + pieces] == [1] + [IGNORE] * (pieces - 1)
    assert index[1:1 + pieces] == [0] + [-1] * (pieces - 1)
    assert [t for t in label if t != IGNORE] == [1, 0, 2]
    # --label-all-subtokens: the continuations take the inside tag (1 -> 3 here)
    rows, _ = words.rows_of(tokenizer, [sentence], 32, [[1, 0, 2]], inside=[0, 3, 2, 3],
                            all_subtokens=True)
    assert rows["label"][0][1:1 + pieces] == [1] + [3] * (pieces - 1)
    assert rows[words.WORD_INDEX][0] == index  # evaluation still reads the first


def test_a_word_split_at_punctuation_is_labelled_as_the_runtime_reads_it(tokenizer):
    """The runtime tags the tokenizer's words: "Anglo-Dutch" is three (anglo, -, dutch), so
    training puts B-MISC on the first and I-MISC on the others' first sub-tokens."""
    names = ["O", "B-MISC", "I-MISC"]
    rows, _ = words.rows_of(tokenizer, [["Anglo-Dutch", "deal"]], 32, [[1, 0]],
                            inside=[0, 2, 2])
    tokens = tokenizer.convert_ids_to_tokens(rows["input_ids"][0])
    tagged = {t: names[lab] for t, lab in zip(tokens, rows["label"][0]) if lab != IGNORE}
    assert tagged == {"anglo": "B-MISC", "-": "I-MISC", "dutch": "I-MISC", "deal": "O"}
    assert [w for w in rows[words.WORD_INDEX][0] if w >= 0] == [0, 1]  # scored: data words


def test_a_long_sentence_runs_in_windows_and_every_word_is_scored_once(tokenizer):
    sentence = [w for ws, _ in make_sentences(12, seed=5) for w in ws]  # 72 words
    labels = [list(range(len(sentence)))]
    rows, lengths = words.rows_of(tokenizer, [sentence], 24, labels)
    assert len(rows["input_ids"]) > 3 and lengths[0] > 24
    assert all(len(ids) <= 24 for ids in rows["input_ids"])
    scored = sorted(w for row in rows[words.WORD_INDEX] for w in row if w >= 0)
    assert scored == list(range(len(sentence)))
    # windows overlap: more words are fed than scored, for context at both edges
    fed = sum(len({w for w in rows_of_one if w is not None})
              for rows_of_one in (_word_ids(tokenizer, rows, j)
                                  for j in range(len(rows["input_ids"]))))
    assert fed > len(sentence)
    # any per-position output goes back to one value per word, in word order
    per = words.per_example(rows["label"], rows)
    assert len(per) == 1 and per[0].tolist() == labels[0]
    feeds = words.encode(tokenizer, {"tokens": [sentence, ["Oslo", "."]]}, 24)
    back = words.per_example(feeds[words.WORD_INDEX], feeds)
    assert [b.tolist() for b in back] == [list(range(len(sentence))), [0, 1]]


def _word_ids(tokenizer, rows, j):
    """The words row j holds, from its input ids (tokens between [CLS] and [SEP])."""
    ids = rows["input_ids"][j][1:-1]
    return [i for i, _ in enumerate(ids) if not tokenizer.convert_ids_to_tokens(_).startswith(
        "##")]


def test_the_collator_pads_right_whatever_the_tokenizers_side(tokenizer):
    """Rows map back to words by position from the left: a left-padding tokenizer (XLNet's)
    must not shift the labels the Trainer hands back."""
    import copy

    left = copy.copy(tokenizer)
    left.padding_side = "left"
    rows, _ = words.rows_of(left, [["Peter", "Blackburn"], ["EU", "rejects", "German", "call"]],
                            32, [[1, 2], [3, 0, 5, 0]])
    features = [{k: rows[k][i] for k in rows} for i in range(2)]
    batch = words.Collator(left)(features)
    assert [p.tolist() for p in words.per_example(batch["labels"].numpy(), rows)] == [
        [1, 2], [3, 0, 5, 0]]


# --- reading

def test_jsonl_with_integer_tags_and_label_names(tmp_path):
    rows = [{"tokens": ws, "ner_tags": [["O", "B-PER", "I-PER", "B-LOC"].index(t)
                                        if t in ("O", "B-PER", "I-PER", "B-LOC") else 0
                                        for t in ts]}
            for ws, ts in make_sentences(10, seed=3)]
    write_jsonl(tmp_path / "train.jsonl", rows)
    data = token_classification.load(str(tmp_path / "train.jsonl"),
                                     label_names=["O", "B-PER", "I-PER", "B-LOC"])
    assert data.label_names == ["O", "B-PER", "I-PER", "B-LOC"]
    assert data.columns == {"tokens": "tokens", "tags": "ner_tags"}
    with pytest.raises(DataError, match=r"word 1: tag id 1 has no name; pass --label-names"):
        token_classification.load(str(tmp_path / "train.jsonl"))


@pytest.mark.parametrize("row, message", [
    ({"tokens": ["a", "b"], "tags": ["O"]}, r"train.jsonl: line 2: 2 words but 1 tags"),
    ({"tokens": [], "tags": []}, r"train.jsonl: line 2: the sentence has no words"),
    ({"tokens": ["a", 0], "tags": ["O", "O"]}, r"line 2: word 2 \(0\) is not a non-empty string"),
    ({"tokens": ["a"], "tags": ["O"]}, None),
    ({"tokens": ["a"], "tags": ["NNP"]}, r"line 2, word 1: tag 'NNP' is not an IOB tag"),
])
def test_bad_jsonl_rows_are_named(tmp_path, row, message):
    write_jsonl(tmp_path / "train.jsonl", [{"tokens": ["Oslo"], "tags": ["B-LOC"]}, row] * 5)
    if message is None:  # (the good row: the file reads)
        assert token_classification.load(str(tmp_path / "train.jsonl")).num_labels == 2
        with pytest.raises(DataError, match=r"--tag-column 2 is a position, which only CoNLL"):
            token_classification.load(str(tmp_path / "train.jsonl"), tag_column="2")
        return
    with pytest.raises(DataError, match=message):
        token_classification.load(str(tmp_path / "train.jsonl"))


def test_iob1_is_repaired_and_counted_or_refused_with_strict_tags(tmp_path, caplog):
    sentences = [(["Anna", "Berg", "met", "Li"], ["I-PER", "I-PER", "O", "I-PER"])] * 10
    path = write_conll(tmp_path / "train.txt", sentences)
    data = token_classification.load(str(path))
    assert any("20 tag(s) repaired from IOB1 to IOB2" in n for n in data.notes)
    assert data.splits["train"]["label"][0] == [data.label_names.index(t) for t in
                                                ("B-PER", "I-PER", "O", "B-PER")]
    with pytest.raises(DataError, match=r"train.txt: line 3: tag 'I-PER' starts an entity "
                                        r"with I- \(IOB1\)"):
        token_classification.load(str(path), strict_tags=True)


def test_a_tag_outside_the_label_set_at_evaluation_names_its_line(tmp_path):
    path = write_conll(tmp_path / "eval.txt", [(["Oslo", "."], ["B-LOC", "O"]),
                                               (["Acme", "."], ["B-ORG", "O"])])
    with pytest.raises(DataError, match=r"eval.txt: line 6: tag 'B-ORG' is not one of the "
                                        r"labels"):
        token_classification.read_eval(str(path), ["O", "B-LOC", "I-LOC"])


# --- metrics

def test_entity_and_token_reports():
    from seqeval.metrics import f1_score
    from seqeval.scheme import IOB2

    names = ["O", "B-PER", "I-PER", "B-LOC"]
    gold = [[1, 2, 0, 3], [0, 3]]
    pred = [[1, 2, 0, 0], [2, 3]]  # a missed LOC; a stray I-PER (not an entity, strict)
    rep = TASK.metrics(gold, pred, names)
    tags = lambda seqs: [[names[i] for i in s] for s in seqs]  # noqa: E731
    assert rep["entity_f1"] == pytest.approx(f1_score(tags(gold), tags(pred), mode="strict",
                                                      scheme=IOB2))
    assert rep["entity_precision"] == 1.0 and rep["entity_recall"] == pytest.approx(2 / 3)
    token = rep["token_report"]
    assert list(token) == ["B-LOC", "B-PER", "I-PER", "O", "micro avg", "macro avg",
                           "weighted avg"]
    assert token["O"]["support"] == 2 and token["micro avg"]["support"] == 6
    assert rep["token_micro_f1"] == pytest.approx(4 / 6)
    assert "micro avg" in TASK.render(rep)
    same = TASK.compare(gold, pred, pred, names)
    assert same["entity_f1"]["points"] == 0 and same["flips"] == 0
    worse = TASK.compare(gold, gold, pred, names)
    assert worse["entity_f1"]["points"] == pytest.approx(100 * (1 - rep["entity_f1"]), abs=1e-3)
    assert worse["flips"] == 2 and worse["words"] == 6


# --- every stage on the tiny tagger

@pytest.mark.parametrize("method", ["lora", "head", "freeze"])
def test_each_method_trains_a_tagger(method, cli, tiny_backbone, token_data, tmp_path):
    extra = {"lora": ["--method", "lora", "--lora-targets", "query,value"],
             "head": ["--method", "head"], "freeze": ["--freeze-layers", "1"]}[method]
    out = tmp_path / "out"
    code, err = cli(*token_args(tiny_backbone, token_data, out, *extra))
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["validation"]) >= {"entity_f1", "token_report", "per_type"}
    assert json.loads((out / "config.json").read_text())["architectures"] == [
        "BertForTokenClassification"]


def test_full_finetune_learns_the_tags(tiny_tagger):
    metrics = json.loads((tiny_tagger / "metrics.json").read_text())
    assert metrics["test"]["entity_f1"] > 0.5
    assert metrics["test"]["token_report"]["micro avg"]["support"] == 120
    assert json.loads((tiny_tagger / "artifact.json").read_text())["task"] == TASK.name


def test_distill_with_unlabelled_raw_sentences(cli, tiny_tagger, token_data, tmp_path):
    sentences = [ws for ws, _ in make_sentences(15, seed=9)]
    raw = write_jsonl(tmp_path / "raw.jsonl", [{"text": " ".join(ws)} for ws in sentences])
    # (a sentence train or validation holds too is left out: it is labelled there)
    labelled = {tuple(ws) for seed, n in ((1, 60), (2, 20)) for ws, _ in make_sentences(n, seed)}
    known = sum(tuple(ws) in labelled for ws in sentences)
    assert known < 15
    out = tmp_path / "student"
    code, err = cli("-q", "distill", "--teacher", tiny_tagger, "--student-layers", "1",
                    "--train", token_data / "train.txt", "--validation",
                    token_data / "validation.txt", "--unlabeled", raw, "--epochs", "1",
                    "--batch-size", "8", "--out", out)
    assert code == 0, err
    settings = json.loads((out / "settings.json").read_text())
    assert settings["transfer_rows"] == {"labelled": 60, "unlabelled": 15 - known} | (
        {"unlabelled_left_out_as_labelled": known} if known else {})
    metrics = json.loads((out / "metrics.json").read_text())
    assert "entity_f1" in metrics["teacher"]["validation"]


@pytest.fixture(scope="module")
def tagger_onnx(tiny_tagger, token_data, tmp_path_factory):
    from edgetransfer.stages import export

    out = tmp_path_factory.mktemp("tagger-onnx") / "onnx"
    export.run(export.ExportConfig(model=str(tiny_tagger), out=out, quantize="int8-dynamic",
                                   eval_data=str(token_data / "test.txt"),
                                   max_accuracy_drop=100))
    return out


def test_export_gates_per_word_logits(tagger_onnx, token_data):
    record = json.loads((tagger_onnx / "export.json").read_text())
    assert record["task"] == TASK.name and "first_token_last_layer" not in record
    probe_words = sum(len(r["tokens"]) for r in TASK.probe_rows)
    test_words = 120
    compared = record["parity"]["export"]["outputs"]["logits"]["examples"]
    # every word of the probes and the eval data once (padding, continuations and window
    # overlaps dropped): the probe batches are rows 1, 2-4 and the last 4 of eval + probes
    assert compared > test_words and compared < 2 * (test_words + probe_words)
    assert record["parity"]["final"]["passed"]
    assert 0 <= record["entity_f1"] <= 1


@pytest.mark.parametrize("mode", ["int8-static", "fp16"])
def test_static_int8_and_fp16_exports_of_a_tagger(mode, tiny_tagger, token_data, tmp_path):
    from edgetransfer.stages import export

    out = export.run(export.ExportConfig(
        model=str(tiny_tagger), out=tmp_path / "onnx", quantize=mode, max_accuracy_drop=100,
        eval_data=str(token_data / "test.txt"),
        calibration_data=str(token_data / "train.txt") if mode == "int8-static" else None))
    record = json.loads((out / "export.json").read_text())
    assert record["quantization"]["mode"] == mode and record["parity"]["final"]["passed"]
    if mode == "int8-static":
        assert record["quantization"]["calibration_examples"] > 0
    assert 0 <= record["entity_f1"] <= 1


def test_verify_scores_entities_per_sentence(cli, tiny_tagger, tagger_onnx, token_data,
                                             tmp_path):
    out = tmp_path / "verify.json"
    code, err = cli("verify", "--reference", tiny_tagger, "--candidate", tagger_onnx,
                    "--data", token_data / "test.txt", "--iterations", "10", "--rounds", "1",
                    "--batch-sizes", "1", "--max-accuracy-drop", "100", "--out", out)
    assert code == 0, err
    report = json.loads(out.read_text())
    cand = report["candidates"][0]
    assert report["metric"] == "entity_f1" and report["data"]["examples"] == 20
    assert set(cand["accuracy_drop"]) >= {"entity_f1", "flip_rate", "words"}
    assert cand["accuracy_drop"]["words"] == 120
    assert set(cand["per_class_delta"]) <= {"PER", "LOC"}
    assert cand["parity"]["passed"] and cand["latency"]["batch1"]["p50_ms"] > 0


@pytest.fixture(scope="module")
def tagger_bundle(tagger_onnx, tmp_path_factory):
    from edgetransfer.stages import package

    root = tmp_path_factory.mktemp("tagger-bundle")
    return package.run(package.PackageConfig(model=tagger_onnx, unverified=True,
                                             target="linux-x86_64", out=root / "bundle",
                                             cold_starts=1, latency_requests=10))


def _forced(bundle, tmp_path, tag: str):
    """A copy of the bundle whose model always answers `tag` (a bias on that logit)."""
    import onnx
    from onnx import helper, numpy_helper

    from edgetransfer.bundle.archive import write_archive  # noqa: F401  (same package)

    copy = tmp_path / f"forced-{tag}"
    shutil.copytree(bundle, copy)
    model = onnx.load(str(copy / "model.onnx"))
    labels = json.loads((copy / "labels.json").read_text())
    bias = np.zeros(len(labels), dtype=np.float32)
    bias[labels.index(tag)] = 1000.0
    out = model.graph.output[0]
    model.graph.initializer.append(numpy_helper.from_array(bias, "forced_bias"))
    for node in model.graph.node:
        node.output[:] = [("raw_logits" if o == out.name else o) for o in node.output]
    model.graph.node.append(helper.make_node("Add", ["raw_logits", "forced_bias"], [out.name]))
    onnx.save(model, str(copy / "model.onnx"))
    return copy


TEXT = "Ünal Åkesson met O'Brien-Smith in São Paulo, São Paulo! Berlin; Berlin."


def test_entities_slice_the_text_exactly(tagger_bundle, tmp_path):
    from edgetransfer.bundle.runtime.predict import Predictor

    every_word = Predictor(_forced(tagger_bundle, tmp_path, "B-PER"), check=False)
    row = every_word.predict([TEXT])[0]
    assert row["text"] == TEXT
    spans = row["entities"]
    assert len(spans) > 10  # each word (punctuation too) its own entity
    for e in spans:
        assert TEXT[e["start"]:e["end"]] == e["text"] and e["type"] == "PER"
        assert 0.99 < e["score"] <= 1.0
    assert [e["text"] for e in spans][:3] == ["Ünal", "Åkesson", "met"]
    assert [e["start"] for e in spans if e["text"] == "Berlin"] == [
        TEXT.index("Berlin"), TEXT.rindex("Berlin")]  # repeated words: their own offsets
    one = Predictor(_forced(tagger_bundle, tmp_path, "I-PER"), check=False)
    (whole,) = one.predict([TEXT])[0]["entities"]  # I-X after nothing starts an entity
    assert whole["start"] == 0 and whole["end"] == len(TEXT) and whole["text"] == TEXT
    # longer than the model's limit: windows, and still every word once
    long_text = " ".join([TEXT] * 40)
    n = len(every_word.word_probabilities(long_text)[0])
    assert n > every_word.spec["max_length"]
    assert len(every_word.predict([long_text])[0]["entities"]) == n


def test_the_bundled_tagger_runs_without_torch_and_agrees_with_predict(tagger_bundle, cli):
    proc = subprocess.run([sys.executable, "-I", "-c", BLOCK_TORCH, TEXT], cwd=tagger_bundle,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    code, out = cli("predict", "--bundle", tagger_bundle, TEXT)
    assert code == 0 and predictions(proc.stdout) == predictions(out)
    row = predictions(out)[0]
    assert all(TEXT[e["start"]:e["end"]] == e["text"] for e in row["entities"])
    readme = (tagger_bundle / "README.md").read_text()
    assert "first sub-token" in readme and "conlleval" in readme
    spec = json.loads((tagger_bundle / "input_spec.json").read_text())
    assert spec["task"]["postprocess"] == "entities"


# --- a head of the other task

def test_a_head_of_the_other_task_is_refused(cli, tiny_tagger, tiny_classifier, token_data,
                                              data_dir, tmp_path):
    code, err = cli("finetune", "--model", tiny_classifier, "--task", "token-classification",
                    "--train", token_data / "train.txt", "--out", tmp_path / "a")
    assert code == 2 and "its head is text-classification, not token-classification" in err
    code, err = cli("export", "--model", tiny_tagger, "--task", "text-classification",
                    "--out", tmp_path / "b")
    assert code == 2 and "its head is token-classification, not text-classification" in err
    code, err = cli("distill", "--teacher", tiny_classifier, "--train",
                    token_data / "train.txt", "--task", "token-classification",
                    "--out", tmp_path / "c")
    assert code == 2 and "not token-classification" in err
    assert not any((tmp_path / n).exists() for n in "abc")
    assert len(err.strip().splitlines()) == 1


# --- bad input: one line, exit 2, nothing written, inputs untouched

def _ragged(d):
    (d / "train.txt").write_text("EU NNP B-ORG\nrejects O\n")
    return "train.txt: line 2 has 2 columns, the lines before have 3"


def _docstart_only(d):
    (d / "train.txt").write_text("-DOCSTART- -X- O\n\n")
    return "train.txt: holds only -DOCSTART- lines, no sentences"


def _no_sentences(d):
    write_jsonl(d / "train.txt", [])
    (d / "train.txt").write_text("\n\n\n")
    return "train.txt: the file is empty; it needs one word a line"


def _empty_sentence(d):
    d.joinpath("train.txt").unlink()
    write_jsonl(d / "train.jsonl", [{"tokens": ["Oslo"], "tags": ["B-LOC"]},
                                    {"tokens": [], "tags": []}])
    return "train.jsonl: line 2: the sentence has no words"


def _lengths_differ(d):
    d.joinpath("train.txt").unlink()
    write_jsonl(d / "train.jsonl", [{"tokens": ["Oslo", "."], "tags": ["B-LOC", "O"]}] * 3
                + [{"tokens": ["Anna", "Berg"], "tags": ["B-PER"]}])
    return "train.jsonl: line 4: 2 words but 1 tags; give one tag per word"


def _unknown_tag_in_validation(d):
    write_conll(d / "validation.txt", [(["Acme", "Corp"], ["B-ORG", "I-ORG"])])
    return "validation.txt: line 3: tag 'B-ORG' is not one of the labels"


@pytest.mark.parametrize("case", [_ragged, _docstart_only, _no_sentences, _empty_sentence,
                                  _lengths_differ, _unknown_tag_in_validation],
                         ids=lambda c: c.__name__[1:])
def test_bad_token_data_is_one_line_and_exit_2(case, cli, tiny_backbone, tmp_path):
    d = tmp_path / "data"
    write_conll(d / "train.txt", make_sentences(12, seed=1))
    write_conll(d / "validation.txt", make_sentences(4, seed=2))
    expected = case(d)
    train = d / "train.txt" if (d / "train.txt").exists() else d / "train.jsonl"
    before = {p: p.read_bytes() for p in d.iterdir()}
    out = tmp_path / "out"
    code, err = cli("finetune", "--model", tiny_backbone, "--task", "token-classification",
                    "--train", train, "--validation", d / "validation.txt", "--out", out)
    assert code == 2, err
    assert expected in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("error")]) == 1
    assert not out.exists() and {p: p.read_bytes() for p in d.iterdir()} == before


def test_a_tag_the_model_lacks_at_evaluation_is_refused(cli, tiny_tagger, tmp_path):
    data = write_conll(tmp_path / "eval.txt", [(["Oslo", "."], ["B-LOC", "O"]),
                                               (["Acme", "."], ["B-ORG", "O"])])
    code, err = cli("verify", "--reference", tiny_tagger, "--candidate", f"again={tiny_tagger}",
                    "--data", data, "--out", tmp_path / "v.json")
    assert code == 2 and "eval.txt: line 6: tag 'B-ORG' is not one of the labels" in err
    assert not (tmp_path / "v.json").exists()
