"""One scoring path: the figure export and verify report for a tagger is the one its bundle
gives on raw text, and the spec it is scored with is the one the bundle carries."""

from __future__ import annotations

import json

import pytest
from seqeval.metrics.sequence_labeling import get_entities

from edgetransfer.tasks import get

TASK = get("token-classification")


def _by_hand(bundle, data) -> float:
    """Entity F1 of the bundle's own Predictor on each sentence's words joined by spaces,
    its spans matched to the gold spans by type and character offsets (no edgetransfer
    scoring code: the check that the shared path scores what the bundle prints)."""
    from edgetransfer.bundle.runtime.predict import Predictor

    predictor = Predictor(bundle)
    names = predictor.labels
    ds = TASK.read_eval(str(data), names)
    tp = n_pred = n_gold = 0
    for words, tags in zip(ds["tokens"], ds["label"]):
        text = " ".join(words)
        starts = [sum(len(w) + 1 for w in words[:i]) for i in range(len(words))]
        gold = {(kind, starts[a], starts[b] + len(words[b]))
                for kind, a, b in get_entities([names[t] for t in tags])}
        pred = {(e["type"], e["start"], e["end"])
                for e in predictor.predict([text])[0]["entities"]}
        tp, n_pred, n_gold = tp + len(gold & pred), n_pred + len(pred), n_gold + len(gold)
    return 2 * tp / max(n_pred + n_gold, 1)


@pytest.fixture(scope="module")
def scored(tiny_tagger, token_data, tmp_path_factory):
    """The tiny tagger exported to int8 (scored on test.txt), its bundle, and verify."""
    from edgetransfer.stages import export, package, verify

    root = tmp_path_factory.mktemp("shipped")
    test = str(token_data / "test.txt")
    onnx = export.run(export.ExportConfig(model=str(tiny_tagger), out=root / "onnx",
                                          quantize="int8-dynamic", eval_data=test,
                                          max_accuracy_drop=100))
    report = verify.run(verify.VerifyConfig(reference=str(tiny_tagger), candidate=[str(onnx)],
                                            data=test, latency=False, out=root / "verify.json",
                                            max_accuracy_drop=100))
    bundle = package.run(package.PackageConfig(
        model=onnx, verify_report=root / "verify.json", measure=False, target="linux-x86_64",
        out=root / "bundle", check_target=False))
    return onnx, bundle, json.loads((root / "verify.json").read_text()), report


def test_verify_and_export_report_what_the_bundle_answers(scored, token_data):
    onnx, bundle, report, _ = scored
    hand = _by_hand(bundle, token_data / "test.txt")
    (candidate,) = report["candidates"]
    assert candidate["metrics"]["entity_f1"] == pytest.approx(hand, abs=1e-9)
    assert json.loads((onnx / "export.json").read_text())["entity_f1"] == pytest.approx(
        hand, abs=1e-9)
    assert hand > 0  # (a tagger that finds entities: the match is not 0 == 0)
    # the bundle quotes that figure (manifest and README)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["verification"]["metrics"]["entity_f1"] == candidate["metrics"]["entity_f1"]
    assert f"entity_f1 {hand:.4f}" in (bundle / "README.md").read_text()


def test_the_bundle_carries_the_spec_it_was_scored_with(scored, tiny_tagger):
    from edgetransfer.bundle.runtime.predict import Predictor
    from edgetransfer.measure import latency, shipped

    onnx, bundle, _, _ = scored
    bundled = Predictor(bundle)
    model = shipped.of_session(latency.ort_session(onnx / "model.onnx"), onnx, None)
    assert shipped.predictor(TASK, model, bundled.labels, 128).spec == bundled.spec


def test_images_are_scored_from_their_files_as_the_processor_reads_them(image_data,
                                                                       tmp_path):
    """The runtime's pixel reading of the eval files gives the PyTorch model the labels the
    transformers processor's pixels give it (image figures did not move)."""
    from conftest import IMAGE_CLASSES, tiny_effnet_model

    from edgetransfer.measure import runners, scoring, shipped
    from edgetransfer.modeling import efficientnet_lite

    model = tiny_effnet_model(num_labels=len(IMAGE_CLASSES))
    model.config.id2label = dict(enumerate(IMAGE_CLASSES))
    model.config.label2id = {n: i for i, n in enumerate(IMAGE_CLASSES)}
    model.save_pretrained(tmp_path / "model")
    efficientnet_lite.processor(32).save_pretrained(tmp_path / "model")
    runner = runners.load(str(tmp_path / "model"), threads=1, provider="CPUExecutionProvider")
    task = runner.task
    ds = task.read_eval(str(image_data / "test"), runner.label_names)
    as_bundled = shipped.predictions(task, shipped.of_runner(runner), ds, runner.label_names,
                                     128)
    encoded, _ = scoring.predict(task, lambda f: task.output(runner.run(f)),
                                 scoring.batches(task, runner.preprocessor, ds, 128))
    assert list(as_bundled) == list(encoded) and len(as_bundled) == len(ds)


def test_a_checkpoint_without_the_bundles_tokenizer_file_is_refused_in_one_line(
        tiny_classifier, copy_of, cli, tmp_path):
    """verify scores every model as its bundle answers: a checkpoint without tokenizer.json
    (a slow tokenizer's vocab.txt alone) cannot be bundled, so it is named, not crashed on."""
    from conftest import write_jsonl

    model = copy_of(tiny_classifier)
    (model / "tokenizer.json").unlink()
    data = tmp_path / "eval.jsonl"
    write_jsonl(data, [{"text": f"a {w} film", "label": label} for w, label in
                       (("fine", "positive"), ("dull", "negative"))])
    code, text = cli("-q", "verify", "--reference", model, "--candidate", tiny_classifier,
                     "--data", data, "--out", tmp_path / "verify.json",
                     "--iterations", "20", "--rounds", "2", "--latency-samples", "8",
                     "--batch-sizes", "1")
    assert code == 2, text
    assert "has no tokenizer.json" in text and str(model) in text
    assert "Traceback" not in text and not (tmp_path / "verify.json").exists()
