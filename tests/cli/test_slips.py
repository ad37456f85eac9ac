"""The slips a newcomer met between the README, --help and behaviour (issue 27), each held
by a test: --top-k on a bundle that prints no ranked labels, an image file given to a text
bundle, an x86 target called Raspberry Pi OS, `target` missing package's tuning warning, the
archive's folder, and a mistyped path found only after torch had loaded."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import predictions, sha_of


def _respec(bundle: Path, dst: Path, **task) -> Path:
    """A copy of `bundle` whose input_spec.json task says `task`, its manifest updated (so
    it passes the checksum check): a bundle of another kind without training one."""
    shutil.copytree(bundle, dst)
    spec_file = dst / "input_spec.json"
    spec = json.loads(spec_file.read_text())
    spec["task"] |= task
    spec_file.write_text(json.dumps(spec))
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["files"]["input_spec.json"] = {"sha256": sha_of(spec_file),
                                            "bytes": spec_file.stat().st_size}
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst


@pytest.mark.parametrize("postprocess, name", [("entities", "token-classification"),
                                               ("values", "text-regression")])
def test_top_k_is_refused_where_the_bundle_prints_no_ranked_labels(built, cli, tmp_path,
                                                                   postprocess, name):
    bundle = _respec(built, tmp_path / "bundle", postprocess=postprocess, name=name)
    said = (f"--top-k 2: this bundle ({name}) prints {postprocess}, not a ranked list of "
            f"labels; leave --top-k out")
    code, out = cli("predict", "--bundle", bundle, "--top-k", "2", "EU rejects German call")
    assert code == 2 and said in out and "Traceback" not in out
    run = subprocess.run([sys.executable, bundle / "predict.py", "--top-k", "2", "EU rejects"],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 2 and said in run.stderr and run.stdout == ""


def test_top_k_still_cuts_a_classifiers_scores(built, cli):
    code, out = cli("predict", "--bundle", built, "--top-k", "1", "a fine film")
    assert code == 0 and len(predictions(out)[0]["scores"]) == 1


def test_an_image_file_given_to_a_text_bundle_is_refused_in_one_line(built, cli, tmp_path):
    from PIL import Image

    photo = tmp_path / "photo.png"
    Image.new("RGB", (8, 8)).save(photo)
    renamed = tmp_path / "scan.txt"  # (judged by its bytes, not its name)
    Image.new("RGB", (8, 8)).save(renamed, format="JPEG")
    for image in (photo, renamed):
        code, out = cli("predict", "--bundle", built, "a fine film", str(image))
        assert code == 2 and out.count("\n") == 1, out
        assert f"give texts: '{image}' is an image file, and this bundle takes text" in out
        run = subprocess.run([sys.executable, built / "predict.py", str(image)],
                             capture_output=True, text=True, check=False)
        assert run.returncode == 2 and "is an image file" in run.stderr and run.stdout == ""
    # a text file's name, or a name that is no file, is still a text
    notes = tmp_path / "notes.md"
    notes.write_text("BM is not a bitmap\n")
    code, out = cli("predict", "--bundle", built, str(notes), "photo.png")
    assert code == 0 and [r["text"] for r in predictions(out)] == [str(notes), "photo.png"]


def test_an_x86_target_is_not_called_raspberry_pi_os():
    from edgetransfer.device import target_check

    assert target_check.system("linux-x86_64", "3.11") == "Debian bookworm"
    assert target_check.system("linux-aarch64", "3.11") == "Raspberry Pi OS / Debian bookworm"
    assert target_check.system("linux-aarch64", "3.12") == "Ubuntu 24.04"
    assert not any("Raspberry" in release for release, _ in target_check.SYSTEMS.values())


def test_target_gives_the_tuning_warning_package_gives(built, cli, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(built, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["model"] |= {"precision": "int8", "quantization": {
        "mode": "int8-dynamic", "target": "x86-avx512-vnni"}}
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    code, out = cli("target", "--bundle", bundle, "--target", "linux-aarch64",
                    "--target-python", "3.11", "--target-cpu", "cortex-a76", "--json")
    assert code == 0, out
    assert ("warning: model.onnx is int8 tuned for --target x86-avx512-vnni (export.json) and "
            "packaged for linux-aarch64") in out and "--target arm64" in out
    result = json.loads(out[out.index("{"):])
    assert result["system"] == "Raspberry Pi OS / Debian bookworm"
    assert [r["status"] for r in result["rows"] if r["check"] == "tuning"] == ["warn"]
    # the bundle as built (fp32) has nothing to say about tuning
    code, out = cli("target", "--bundle", built, "--target", "linux-x86_64",
                    "--target-python", "3.11", "--json")
    assert code == 0 and "warning" not in out
    result = json.loads(out[out.index("{"):])
    assert result["system"] == "Debian bookworm"
    assert not any(r["check"] == "tuning" for r in result["rows"])


def test_the_archive_unpacks_to_a_folder_named_as_out(exported, cli, tmp_path):
    out = tmp_path / "pi5"
    code, text = cli("-q", "package", "--model", exported, "--unverified", "--target",
                     "linux-x86_64", "--out", out, "--no-measure", "--no-check-target")
    assert code == 0, text
    with tarfile.open(tmp_path / "pi5.tar.gz") as tar:
        names = tar.getnames()
    assert {n.split("/")[0] for n in names} == {"pi5"} and "pi5/predict.py" in names


# every option naming data or a checkpoint, per command: (arguments, the line it must print)
MISTYPED = [
    (["finetune", "--train", "nope.jsonl", "--out", "o"], "--train nope.jsonl: no such file"),
    (["finetune", "--train", "README.md", "--validation", "data/nope.csv", "--out", "o"],
     "--validation data/nope.csv: no such file"),
    (["finetune", "--model", "models/nope/teacher", "--train", "README.md", "--out", "o"],
     "--model models/nope/teacher: no such folder"),
    (["distill", "--teacher", "./nope", "--train", "README.md", "--out", "o"],
     "--teacher ./nope: no such folder"),
    (["distill", "--teacher", "README.md", "--train", "README.md", "--unlabeled", "u.tsv",
      "--out", "o"], "--unlabeled u.tsv: no such file"),
    (["export", "--model", "README.md", "--eval-data", "nope.jsonl", "--out", "o"],
     "--eval-data nope.jsonl: no such file"),
    (["export", "--model", "README.md", "--calibration-data", "nope.parquet", "--out", "o"],
     "--calibration-data nope.parquet: no such file"),
    (["export", "--model", "README.md", "--prune-vocab", "README.md,nope.tsv", "--eval-data",
      "README.md", "--out", "o"], "--prune-vocab nope.tsv: no such file"),
    (["verify", "--reference", "README.md", "--candidate", "README.md", "--data", "nope.tsv"],
     "--data nope.tsv: no such file"),
]


def test_a_mistyped_path_is_refused_before_torch_loads(tmp_path):
    """One process runs every case and reports, per case, its exit code, what it printed and
    whether torch (seconds to load) was imported by then."""
    script = f"""
import contextlib, io, json, sys
from edgetransfer.cli import main
results = []
for args in {json.dumps([a for a, _ in MISTYPED])}:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            main(args)
            code = 0
        except SystemExit as e:
            code = e.code
    results.append([code, err.getvalue(), "torch" in sys.modules])
print(json.dumps(results))
"""
    (tmp_path / "README.md").write_text("not a model, not data; only there\n")
    (tmp_path / "data").mkdir()
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=tmp_path, check=True)
    for (args, said), (code, err, torch) in zip(MISTYPED, json.loads(run.stdout), strict=True):
        assert code == 2 and said in err and err.count("\n") == 1, (args, err)
        assert not torch, f"{args}: torch was loaded before the path was checked"
