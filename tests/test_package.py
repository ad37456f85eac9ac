"""package and predict on a tiny exported BERT: the bundle's files, agreement with PyTorch,
the runtime without torch, checksums, hostile archives, reproducible archives, verify gates."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from conftest import write_jsonl

BUNDLE_FILES = {"README.md", "input_spec.json", "labels.json", "manifest.json", "model.onnx",
                "predict.py", "requirements.txt", "tokenizer.json"}
TEXTS = ["turn the kitchen lights off", "ok",
         "an unexpectedly moving and beautifully shot story, though a little long"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_report(path: Path, model_dir: Path, *, passed: bool = True, sha: str | None = None,
                 failures: list[dict] | None = None) -> Path:
    """A verify.json of the documented shape, by hand (the verify command is not needed)."""
    failures = failures or []
    report = {
        "passed": passed, "failures": failures,
        "reference": {"name": "reference", "kind": "pytorch", "metrics": {"accuracy": 0.9}},
        "candidates": [{
            "name": "onnx", "path": str(model_dir / "model.onnx"), "kind": "onnx",
            "sha256": sha or _sha(model_dir / "model.onnx"), "precision": "fp32",
            "passed": passed, "metrics": {"accuracy": 0.9, "macro_f1": 0.88},
            "accuracy_drop": {"accuracy": {"points": 0.0}},
            "parity": {"passed": passed}, "latency": {"batch1": {"p50_ms": 0.3}}}],
        "env": {"versions": {}},
    }
    path.write_text(json.dumps(report))
    return path


@pytest.fixture(scope="session")
def exported(tiny_classifier, tmp_path_factory) -> Path:
    """tiny_classifier exported to fp32 ONNX (fused), as `edgetransfer export` writes it."""
    from edgetransfer.stages import export

    out = tmp_path_factory.mktemp("package-export") / "onnx"
    export.run(export.ExportConfig(model=str(tiny_classifier), out=out, quantize="none"))
    return out


@pytest.fixture(scope="session")
def built(exported, tmp_path_factory) -> Path:
    """A measured bundle of `exported`, verified by a hand-written report: its folder."""
    from edgetransfer.stages import package

    root = tmp_path_factory.mktemp("package-out")
    report = write_report(root / "verify.json", exported)
    return package.run(package.PackageConfig(
        model=exported, verify_report=report, target="linux-x86_64", out=root / "bundle",
        cold_starts=1, latency_requests=20))


def _predictions(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def _torch_scores(model_dir: Path, texts) -> np.ndarray:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    with torch.inference_mode():
        return torch.cat([model(**tok([t], truncation=True, max_length=128,
                                      return_tensors="pt")).logits.softmax(-1)
                          for t in texts]).numpy()


def test_package_writes_the_bundle(built, exported):
    from importlib import metadata

    assert {p.name for p in built.iterdir()} == BUNDLE_FILES | {"artifact.json"}
    archive = built.parent / "bundle.tar.gz"
    record = json.loads((built.parent / "bundle.json").read_text())
    assert record["archive_sha256"] == _sha(archive)
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
        assert entry == {"sha256": _sha(built / name), "bytes": (built / name).stat().st_size}
    assert (built / "model.onnx").read_bytes() == (exported / "model.onnx").read_bytes()
    assert manifest["target"] == "linux-x86_64"
    v = manifest["verification"]
    assert v["verified"] and v["passed"] and not v["forced"] and v["candidate"] == "onnx"
    assert v["metrics"] == {"accuracy": 0.9, "macro_f1": 0.88}
    assert manifest["requirements"] == [
        f"onnxruntime=={metadata.version('onnxruntime')}",
        f"tokenizers=={metadata.version('tokenizers')}",
        f"numpy>={'.'.join(metadata.version('numpy').split('.')[:2])},"
        f"<{int(metadata.version('numpy').split('.')[0]) + 1}"]
    requirements = (built / "requirements.txt").read_text()
    assert all(line in requirements.splitlines() for line in manifest["requirements"])
    assert "torch" not in requirements and "transformers" not in requirements
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


def test_predict_agrees_with_pytorch(built, tiny_classifier, cli, tmp_path):
    archive = built.parent / "bundle.tar.gz"
    code, out = cli("predict", "--bundle", archive, *TEXTS)
    assert code == 0, out
    rows = _predictions(out)
    expected = _torch_scores(tiny_classifier, TEXTS)
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
        assert _predictions(out) == rows, f.name
    code, out = cli("predict", "--bundle", built, "--top-k", "1", TEXTS[0])
    assert code == 0 and list(_predictions(out)[0]["scores"]) == [rows[0]["label"]]


BLOCK_TORCH = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers"):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
try:
    import torch
except ImportError:
    pass
else:
    raise SystemExit("the block did not work")
import runpy
sys.argv = ["predict.py"] + sys.argv[1:]
try:
    runpy.run_path("predict.py", run_name="__main__")
finally:
    assert not {"torch", "transformers"} & set(sys.modules)
    assert "onnxruntime" in sys.modules and "tokenizers" in sys.modules
"""


def test_the_runtime_runs_without_torch_or_transformers(built, cli):
    unpacked = built.parent / "unpacked-for-runtime"
    shutil.copytree(built, unpacked)
    proc = subprocess.run([sys.executable, "-I", "-c", BLOCK_TORCH, *TEXTS], cwd=unpacked,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    code, out = cli("predict", "--bundle", built, *TEXTS)
    assert _predictions(proc.stdout) == _predictions(out)  # one implementation


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


def _info(name: str, kind=tarfile.REGTYPE, data: bytes = b"x", link: str = ""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, (io.BytesIO(data) if kind == tarfile.REGTYPE else None)


@pytest.mark.parametrize("case, why", [
    ("symlink", "is a symlink"),
    ("hardlink", "is a hard link"),
    ("device", "is a device or FIFO"),
    ("parent", "unsafe file name"),
    ("absolute", "unsafe file name"),
    ("duplicate", "appears twice"),
    ("unlisted", "which manifest.json does not list"),
    ("no-manifest", "no manifest.json at its top"),
])
def test_hostile_archives_are_refused(case, why, built, cli, tmp_path):
    escape = tmp_path / "escaped.txt"
    hostile = {
        "symlink": _info("bundle/labels.json", tarfile.SYMTYPE, link="/etc/passwd"),
        "hardlink": _info("bundle/labels.json", tarfile.LNKTYPE, link="/etc/passwd"),
        "device": _info("bundle/labels.json", tarfile.CHRTYPE),
        "parent": _info("bundle/../../escaped.txt"),
        "absolute": _info(str(escape)),
        "duplicate": _info("bundle/labels.json", data=b'["a", "b"]'),
        "unlisted": _info("bundle/extra.py"),
    }.get(case)
    archive = tmp_path / "hostile.tar.gz"
    with tarfile.open(built.parent / "bundle.tar.gz") as src, \
            tarfile.open(archive, "w:gz") as dst:
        if hostile and case not in ("duplicate", "unlisted"):
            dst.addfile(*hostile)  # first: refused before anything else is written
        for m in src.getmembers():
            if case == "no-manifest" and m.name.endswith("manifest.json"):
                continue
            dst.addfile(m, src.extractfile(m))
        if case in ("duplicate", "unlisted"):
            dst.addfile(*hostile)
    code, out = cli("predict", "--bundle", archive, "hello")
    assert code == 2, out
    assert "refused" in out and why in out
    assert not escape.exists() and not (tmp_path.parent / "escaped.txt").exists()


def test_a_rebuild_is_byte_identical(exported, cli, tmp_path):
    report = write_report(tmp_path / "verify.json", exported)
    args = ["-q", "package", "--model", exported, "--verify-report", report, "--target",
            "linux-aarch64", "--out", tmp_path / "bundle", "--no-measure"]
    assert cli(*args)[0] == 0
    first = _sha(tmp_path / "bundle.tar.gz")
    code, out = cli(*args)
    assert code == 2 and "already holds results; pass --overwrite" in out
    assert cli(*args, "--overwrite")[0] == 0
    assert _sha(tmp_path / "bundle.tar.gz") == first
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


def test_predict_bad_inputs(built, cli, tmp_path):
    code, out = cli("predict", "--bundle", built)
    assert code == 2 and "give texts to classify, or --input FILE" in out
    code, out = cli("predict", "--bundle", tmp_path / "nothing.tar.gz", "hi")
    assert code == 2 and "no such file" in out
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"body": "hi"}])
    code, out = cli("predict", "--bundle", built, "--input", bad)
    assert code == 2 and "no text column" in out and "--text-column" in out
    code, out = cli("predict", "--bundle", built, "--input", bad, "--text-column", "body")
    assert code == 0 and _predictions(out)[0]["text"] == "hi"
    not_gz = tmp_path / "not.tar.gz"
    not_gz.write_bytes(b"plain bytes")
    code, out = cli("predict", "--bundle", not_gz, "hi")
    assert code == 2 and "not a complete .tar.gz" in out


def test_the_runtime_tries_the_same_text_columns_as_the_stages():
    from edgetransfer.tasks import text as data
    from edgetransfer.bundle.runtime import predict

    assert predict.TEXT_COLUMNS == data.TEXT_COLUMNS


def test_ort_format_files_are_bundled_and_run_when_asked(exported, copy_of, cli, tmp_path):
    from edgetransfer.bundle.runtime.predict import Predictor
    from edgetransfer.stages.export import _to_ort

    model = copy_of(exported, "with-ort")
    base = ["package", "--model", model, "--unverified", "--target", "linux-x86_64",
            "--out", tmp_path / "bundle", "--no-measure", "--ort-format"]
    code, out = cli(*base)
    assert code == 2 and "has no model.ort; export with --ort-format first" in out
    written = _to_ort(model / "model.onnx", model)["files"]  # what export --ort-format does
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
    import shutil

    shutil.copytree(bundle, dest)
    (dest / "model.ort").unlink()
    return dest


def test_an_archive_over_the_size_cap_is_refused(built, cli, monkeypatch):
    from edgetransfer.bundle import archive as bundle

    monkeypatch.setattr(bundle, "MAX_BYTES", 100_000)
    code, out = cli("predict", "--bundle", built.parent / "bundle.tar.gz", "hi")
    assert code == 2 and "refused: unpacks to more than 100,000 bytes" in out


def test_peak_rss_is_the_runtimes_own_not_its_parents():
    """ru_maxrss survives fork+exec: a runtime started by a large process (a pipeline holding
    a teacher) would report the parent's size. The runtime reads its own high-water mark."""
    import subprocess
    import sys

    ballast = bytearray(600 * 2**20)  # the parent grows by 600 MB before the fork
    runtime = Path(__file__).resolve().parents[1] / "edgetransfer" / "bundle" / "runtime"
    out = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(runtime)!r});"
                          " import predict; print(predict.peak_rss_mb())"],
                         capture_output=True, text=True, check=True)
    assert len(ballast) and float(out.stdout) < 300
