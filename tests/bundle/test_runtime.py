"""The bundled runtime (predict.py): agreement with PyTorch, no torch needed, checksums,
the columns it shares with the stages, its own memory figure."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import BLOCK_TORCH, predictions, torch_scores, write_jsonl

TEXTS = ["turn the kitchen lights off", "ok",
         "an unexpectedly moving and beautifully shot story, though a little long"]




def test_predict_agrees_with_pytorch(built, tiny_classifier, cli, tmp_path):
    archive = built.parent / "bundle.tar.gz"
    code, out = cli("predict", "--bundle", archive, *TEXTS)
    assert code == 0, out
    rows = predictions(out)
    expected = torch_scores(tiny_classifier, TEXTS)
    assert [r["text"] for r in rows] == TEXTS
    for row, p in zip(rows, expected):
        got = np.array([row["scores"]["negative"], row["scores"]["positive"]])
        assert np.abs(got - p).max() < 1e-4
        assert row["label"] == ["negative", "positive"][int(p.argmax())]
        assert row["score"] == max(row["scores"].values())

    # the same answers from the folder and from each input format
    files = [write_jsonl(tmp_path / "t.jsonl", [{"text": t} for t in TEXTS])]
    files.append(tmp_path / "t.csv")
    files[-1].write_text("text,label\n" + "".join(f'"{t}",x\n' for t in TEXTS))
    files.append(tmp_path / "t.tsv")
    files[-1].write_text("sentence\tlabel\n" + "".join(f"{t}\t1\n" for t in TEXTS))
    files.append(tmp_path / "t.txt")
    files[-1].write_text("\n".join(TEXTS) + "\n")
    for f in files:
        code, out = cli("predict", "--bundle", built, "--input", f)
        assert code == 0, out
        assert predictions(out) == rows, f.name
    code, out = cli("predict", "--bundle", built, "--top-k", "1", TEXTS[0])
    assert code == 0 and list(predictions(out)[0]["scores"]) == [rows[0]["label"]]


def test_the_runtime_runs_without_torch_or_transformers(built, cli):
    unpacked = built.parent / "unpacked-for-runtime"
    shutil.copytree(built, unpacked)
    proc = subprocess.run([sys.executable, "-I", "-c", BLOCK_TORCH, *TEXTS], cwd=unpacked,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    code, out = cli("predict", "--bundle", built, *TEXTS)
    assert predictions(proc.stdout) == predictions(out)  # one implementation


def test_a_tampered_file_fails_its_checksum(built, cli, tmp_path):
    from edgetransfer.bundle.archive import write_archive

    copy = tmp_path / "bundle"
    shutil.copytree(built, copy)
    labels = copy / "labels.json"
    labels.write_bytes(labels.read_bytes().replace(b"positive", b"POSITIVE"))  # same size
    code, out = cli("predict", "--bundle", copy, "hello")
    assert code == 2 and "labels.json fails its sha256 check" in out
    assert len(out.strip().splitlines()) == 1 and "Traceback" not in out
    proc = subprocess.run([sys.executable, "-I", str(copy / "predict.py"), "hello"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "labels.json fails its sha256 check" in proc.stderr
    assert proc.stdout == ""

    archive = tmp_path / "tampered.tar.gz"
    write_archive(copy, archive, "bundle", exclude=("artifact.json",))
    code, out = cli("predict", "--bundle", archive, "hello")
    assert code == 2 and "labels.json fails its sha256 check" in out


def test_the_runtime_tries_the_same_text_columns_as_the_stages():
    from edgetransfer.bundle.runtime import predict
    from edgetransfer.tasks import text as data

    assert predict.TEXT_COLUMNS == data.TEXT_COLUMNS


def test_peak_rss_is_the_runtimes_own_not_its_parents():
    """ru_maxrss survives fork+exec: a runtime started by a large process (a pipeline holding
    a teacher) would report the parent's size. The runtime reads its own high-water mark."""
    import subprocess
    import sys

    ballast = bytearray(600 * 2**20)  # the parent grows by 600 MB before the fork
    runtime = Path(__file__).resolve().parents[2] / "edgetransfer" / "bundle" / "runtime"
    out = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(runtime)!r});"
                          " import predict; print(predict.peak_rss_mb())"],
                         capture_output=True, text=True, check=True)
    assert len(ballast) and float(out.stdout) < 300


def test_the_runtime_takes_text_pairs(built, tiny_classifier, cli, tmp_path):
    """A file with a second text column gives pairs, encoded as training encoded them."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    pairs = [("a great film", "I liked it"), ("ok", "a dull and weak story, too long")]
    tsv = tmp_path / "pairs.tsv"  # QNLI's columns: the pair wins over the lone "sentence"
    tsv.write_text("question\tsentence\n" + "".join(f"{a}\t{b}\n" for a, b in pairs))
    code, out = cli("predict", "--bundle", built, "--input", tsv)
    assert code == 0, out
    rows = predictions(out)
    assert [(r["text"], r["text_pair"]) for r in rows] == pairs

    model = AutoModelForSequenceClassification.from_pretrained(tiny_classifier).eval()
    tok = AutoTokenizer.from_pretrained(tiny_classifier)
    with torch.inference_mode():
        expected = [model(**tok(a, b, return_tensors="pt")).logits.softmax(-1)[0].numpy()
                    for a, b in pairs]
    labels = json.loads((built / "labels.json").read_text())
    for row, p in zip(rows, expected):
        assert np.allclose([row["scores"][name] for name in labels], p, atol=1e-4)


def test_the_runtime_tries_the_same_pair_columns_as_the_stages():
    from edgetransfer.bundle.runtime import predict
    from edgetransfer.tasks import text

    assert list(predict.PAIR_COLUMNS.items()) == list(text.PAIRS)  # order: first match wins
