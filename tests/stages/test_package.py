"""package on a tiny exported BERT: the bundle's files, reproducible archives, verify gates,
target checks, the .ort model."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

from conftest import sha_of, write_report

BUNDLE_FILES = {"README.md", "input_spec.json", "labels.json", "manifest.json", "model.onnx",
                "predict.py", "requirements.txt", "tokenizer.json"}



def test_package_writes_the_bundle(built, exported):
    from importlib import metadata

    assert {p.name for p in built.iterdir()} == BUNDLE_FILES | {"artifact.json"}
    archive = built.parent / "bundle.tar.gz"
    record = json.loads((built.parent / "bundle.json").read_text())
    assert record["archive_sha256"] == sha_of(archive)
    assert record["archive_bytes"] == archive.stat().st_size
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == sorted(f"bundle/{n}" for n in BUNDLE_FILES)
    for m in members:
        assert m.isreg() and m.mtime == 0 and (m.uid, m.gid, m.uname, m.gname) == (0, 0, "", "")
        assert m.mode == (0o755 if m.name.endswith("predict.py") else 0o644)

    manifest = json.loads((built / "manifest.json").read_text())
    assert set(manifest["files"]) == BUNDLE_FILES - {"manifest.json"}
    for name, entry in manifest["files"].items():
        assert entry == {"sha256": sha_of(built / name), "bytes": (built / name).stat().st_size}
    assert (built / "model.onnx").read_bytes() == (exported / "model.onnx").read_bytes()
    assert manifest["target"] == "linux-x86_64"
    v = manifest["verification"]
    assert v["verified"] and v["passed"] and not v["forced"] and v["candidate"] == "onnx"
    assert v["metrics"] == {"accuracy": 0.9, "macro_f1": 0.88}
    assert manifest["requirements"] == [
        f"{name}=={metadata.version(name)}" for name in ("onnxruntime", "tokenizers", "numpy")]
    # each pin carries the sha256 of its wheels, and the runtime's whole closure is these
    from edgetransfer.bundle import requirements as pinned

    text = (built / "requirements.txt").read_text()
    pins = pinned.parse(text, "requirements.txt")
    assert [p.spec for p in pins] == manifest["requirements"]
    assert all(p.hashes for p in pins)
    assert "--require-hashes" in text and "--no-deps" in (built / "README.md").read_text()
    assert "torch" not in text and "transformers" not in text
    m = manifest["measurements"]
    assert m["cold_start_s"] > 0 and m["peak_rss_mb"] > 10
    assert m["latency"]["requests"] == 20 and m["latency"]["p50_ms"] > 0
    spec = json.loads((built / "input_spec.json").read_text())
    assert [i["name"] for i in spec["inputs"]] == ["input_ids", "attention_mask",
                                                   "token_type_ids"]
    assert spec["max_length"] == 128 and spec["pad_token"] == "[PAD]"
    assert json.loads((built / "labels.json").read_text()) == ["negative", "positive"]
    artifact = json.loads((built / "artifact.json").read_text())
    assert artifact["kind"] == "bundle"
    assert artifact["metrics"]["archive_sha256"] == record["archive_sha256"]


def test_a_rebuild_is_byte_identical(exported, cli, tmp_path):
    report = write_report(tmp_path / "verify.json", exported)
    args = ["-q", "package", "--model", exported, "--verify-report", report, "--target",
            "linux-aarch64", "--out", tmp_path / "bundle", "--no-measure"]
    assert cli(*args)[0] == 0
    first = sha_of(tmp_path / "bundle.tar.gz")
    code, out = cli(*args)
    assert code == 2 and "already holds results; pass --overwrite" in out
    assert cli(*args, "--overwrite")[0] == 0
    assert sha_of(tmp_path / "bundle.tar.gz") == first
    assert json.loads((tmp_path / "bundle.json").read_text())["archive_sha256"] == first
    assert "measurements" not in json.loads((tmp_path / "bundle/manifest.json").read_text())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "bundle.json",
                                                          "bundle.tar.gz", "verify.json"]


def test_a_failed_verify_is_refused_unless_forced(exported, cli, tmp_path):
    failure = {"gate": "accuracy", "model": "onnx", "message": "onnx: accuracy 0.70 is 20 "
               "points below the reference's"}
    report = write_report(tmp_path / "verify.json", exported, passed=False, failures=[failure])
    args = ["-q", "package", "--model", exported, "--verify-report", report, "--target",
            "linux-x86_64", "--out", tmp_path / "bundle", "--no-measure"]
    code, out = cli(*args)
    assert code == 3 and "failed verify (accuracy: onnx: accuracy 0.70" in out
    assert "--force" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["verify.json"]  # nothing written

    code, out = cli(*args, "--force")
    assert code == 0, out
    v = json.loads((tmp_path / "bundle/manifest.json").read_text())["verification"]
    assert v["forced"] is True and v["passed"] is False and v["failures"] == [failure]
    assert "FAILED verify" in (tmp_path / "bundle/README.md").read_text()


def test_the_report_must_cover_this_model(exported, cli, tmp_path):
    other = write_report(tmp_path / "verify.json", exported, sha="0" * 64)
    out_dir = tmp_path / "bundle"
    base = ["package", "--model", exported, "--out", out_dir, "--no-measure"]
    code, out = cli(*base, "--verify-report", other)
    assert code == 2 and f"verify report {other} does not cover this model (sha256" in out
    assert "run edgetransfer verify on it" in out
    code, out = cli(*base)
    assert code == 2 and "--verify-report is needed" in out and "--unverified" in out
    assert not out_dir.exists()
    code, out = cli("-q", *base, "--unverified")
    assert code == 0, out
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert manifest["verification"] == {"verified": False}
    import platform  # no --target: this machine's, where the measurements would be taken

    assert manifest["target"] == manifest["settings"]["target"] == \
        f"linux-{platform.machine()}"


def test_an_int8_model_tuned_for_x86_warns_on_aarch64(exported, copy_of, cli, tmp_path):
    model = copy_of(exported, "int8")
    record = json.loads((model / "export.json").read_text())
    record["quantization"] = {"mode": "int8-dynamic", "target": "x86-avx512-vnni"}
    (model / "export.json").write_text(json.dumps(record))
    code, out = cli("package", "--model", model, "--unverified", "--target", "linux-aarch64",
                    "--out", tmp_path / "bundle", "--no-measure")
    assert code == 0, out
    assert "warning: model.onnx is int8 tuned for --target x86-avx512-vnni" in out
    assert "--target arm64" in out
    notes = json.loads((tmp_path / "bundle/manifest.json").read_text())["notes"]
    assert notes and "x86-avx512-vnni" in notes[0]


def test_ort_format_files_are_bundled_and_run_when_asked(exported, copy_of, cli, tmp_path):
    from edgetransfer.bundle.runtime.predict import Predictor
    from edgetransfer.convert.ort_format import convert as ort_format

    model = copy_of(exported, "with-ort")
    base = ["package", "--model", model, "--unverified", "--target", "linux-x86_64",
            "--out", tmp_path / "bundle", "--no-measure", "--ort-format"]
    code, out = cli(*base)
    assert code == 2 and "has no model.ort; export with --ort-format first" in out
    written = ort_format(model / "model.onnx", model)["files"]  # what export --ort-format does
    code, out = cli("-q", *base)
    assert code == 0, out
    manifest = json.loads((tmp_path / "bundle/manifest.json").read_text())
    assert {"model.ort", *written} <= set(manifest["files"])
    assert manifest["model"]["runs"] == "model.ort"
    spec = json.loads((tmp_path / "bundle/input_spec.json").read_text())
    assert spec["model_ort"] == "model.ort"
    onnx_run = Predictor(exported_bundle_like(tmp_path / "bundle", tmp_path / "onnx-only"),
                         check=False)
    ort_run = Predictor(tmp_path / "bundle")
    assert ort_run.model_file == "model.ort" and onnx_run.model_file == "model.onnx"
    texts = ["great lovely superb", "awful bad terrible", "table window river"]
    assert [r["label"] for r in ort_run.predict(texts)] == \
        [r["label"] for r in onnx_run.predict(texts)]


def exported_bundle_like(bundle: Path, dest: Path) -> Path:
    """A copy of a bundle without its .ort model (unchecked: only for the runtime's choice)."""

    shutil.copytree(bundle, dest)
    (dest / "model.ort").unlink()
    return dest


def test_pairs_as_latency_data_are_measured_as_pairs(exported, cli, tmp_path):
    """A pair task's eval file (what a recipe hands package) times the runtime on pairs."""
    data = tmp_path / "pairs.tsv"
    data.write_text("sentence1\tsentence2\tlabel\n" + "".join(
        f"text number {i}\tits pair {i}\t1\n" for i in range(5)))
    code, out = cli("-q", "package", "--model", exported, "--unverified", "--out",
                    tmp_path / "bundle", "--latency-data", data, "--cold-starts", "1",
                    "--latency-requests", "5")
    assert code == 0, out
    measured = json.loads((tmp_path / "bundle/manifest.json").read_text())["measurements"]
    assert measured["latency"]["requests"] == 5 and measured["cold_start_s"] > 0


def test_a_txt_of_texts_times_a_classifier_one_text_a_line(exported, cli, tmp_path):
    """.txt data is CoNLL columns for a task that reads words; for a classifier it is one
    text a line, as the runtime's --input reads it."""
    data = tmp_path / "texts.txt"
    data.write_text("turn the lights off\nok\nset a timer for ten minutes please\n")
    code, out = cli("-q", "package", "--model", exported, "--unverified", "--out",
                    tmp_path / "bundle", "--latency-data", data, "--cold-starts", "1",
                    "--latency-requests", "5")
    assert code == 0, out
    measured = json.loads((tmp_path / "bundle/manifest.json").read_text())["measurements"]
    assert measured["latency"]["texts"] == 3
