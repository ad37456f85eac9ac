"""A bundle is something users receive from others: what its files say is refused, in one
line and before anything runs, where it would make pip build code, read a file outside the
bundle, or hand ssh an option. Each hostile bundle here is a copy of a real one whose
manifest the "attacker" rehashed, so the sha256 checks pass and only these rules stand."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import pytest

HASH = "0" * 64


def rehash(folder: Path) -> None:
    """The manifest an attacker would write: every file of the folder listed with its hash."""
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"] = {
        p.relative_to(folder).as_posix(): {"sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
                                          "bytes": p.stat().st_size}
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink() and p.name != "manifest.json"}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def list_as(folder: Path, name: str, content: Path) -> None:
    """List `name` in the manifest with `content`'s hash (what a link to it would pass)."""
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][name] = {"sha256": hashlib.sha256(content.read_bytes()).hexdigest(),
                               "bytes": content.stat().st_size}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def hostile(built: Path, tmp_path: Path, name: str = "hostile") -> Path:
    folder = tmp_path / name
    shutil.copytree(built, folder)
    return folder


def a_package_that_runs_code(tmp_path: Path) -> tuple[Path, Path]:
    """A local project whose setup.py writes a sentinel file when pip builds it."""
    project, sentinel = tmp_path / "evil", tmp_path / "SENTINEL"
    project.mkdir()
    (project / "setup.py").write_text(
        f"open({str(sentinel)!r}, 'w').write('ran')\n"
        "from setuptools import setup\nsetup(name='evil', version='1.0')\n")
    return project, sentinel


@pytest.mark.parametrize("line", [
    "{project}",                                   # a local folder: pip builds its setup.py
    "file://{project}",                            # the same as a URL
    "evil @ file://{project}",                     # a direct reference
    "-e {project}",                                # an editable install
    "-r other.txt",                                # another file pip would read
    "--index-url http://127.0.0.1:9/simple",       # another index
    "--extra-index-url http://127.0.0.1:9/simple",
    "onnxruntime",                                 # unpinned: pip picks, maybe an sdist
    "onnxruntime>=1.0 --hash=sha256:" + HASH,      # a range
    "onnxruntime==1.20.0",                         # pinned, but no hash
    "onnxruntime==1.20.0+local --hash=sha256:" + HASH,  # a local version
    "onnxruntime==1.20.0 --hash=md5:" + "0" * 32,  # another digest
    "onnxruntime==1.20.0 --hash=sha256:" + HASH + " --no-binary :all:",
])
def test_target_refuses_requirements_that_could_run_code(built, cli, tmp_path, line):
    project, sentinel = a_package_that_runs_code(tmp_path)
    folder = hostile(built, tmp_path)
    (folder / "requirements.txt").write_text(line.format(project=project) + "\n")
    rehash(folder)
    before = sorted(p.name for p in project.iterdir())
    code, out = cli("target", "--bundle", folder)
    assert code == 2, out
    assert "requirements.txt: line 1:" in out and "is not a pinned wheel" in out
    assert "refused before pip saw it" in out and "Traceback" not in out
    assert not sentinel.exists()
    assert sorted(p.name for p in project.iterdir()) == before  # no .egg-info written into it


def test_every_installer_refuses_the_same_lines(built, tmp_path, monkeypatch):
    """ARM emulation and the device's venv read requirements through the same parser; pip
    is never started on a hostile file."""
    from edgetransfer.device import arm_emulation
    from edgetransfer.errors import ModelError

    project, sentinel = a_package_that_runs_code(tmp_path)
    bad = tmp_path / "requirements.txt"
    bad.write_text(f"onnxruntime==1.20.0 --hash=sha256:{HASH}\n{project}\n")
    calls = []
    monkeypatch.setattr(arm_emulation, "_run", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(arm_emulation, "_cache", lambda: tmp_path)
    with pytest.raises(ModelError, match=r"line 2: .* is not a pinned wheel"):
        arm_emulation.site_packages(bad)
    assert calls == [] and not sentinel.exists()


def test_device_refuses_hostile_requirements_before_connecting(built, cli, tmp_path,
                                                               monkeypatch):
    import subprocess

    project, sentinel = a_package_that_runs_code(tmp_path)
    folder = hostile(built, tmp_path)
    (folder / "requirements.txt").write_text(f"{project}\n")
    rehash(folder)
    started = []
    real = subprocess.run
    monkeypatch.setattr(subprocess, "run", lambda cmd, *a, **k: (
        started.append(cmd), real(cmd, *a, **k))[1])
    code, out = cli("device", "--bundle", folder, "--device", "ssh://pi@127.0.0.1:1",
                    "--out", tmp_path / "device.json")
    assert code == 2 and "is not a pinned wheel" in out, out
    assert not any("ssh" in str(c[0]) for c in started)
    assert not sentinel.exists() and not (tmp_path / "device.json").exists()


def test_requirements_are_written_and_read_back(built):
    from edgetransfer.bundle import requirements

    pins = requirements.parse((built / "requirements.txt").read_text(), "requirements.txt")
    assert [p.name for p in pins] == ["onnxruntime", "tokenizers", "numpy"]
    assert all(len(h) == 64 for p in pins for h in p.hashes)
    again = requirements.parse(requirements.render(pins, "a header"), "again")
    assert again == pins


# --- paths in a bundle's metadata

@pytest.fixture()
def outside(exported, tmp_path) -> Path:
    """A model the bundle never held, beside it: a hostile spec would run it."""
    folder = tmp_path / "outside"
    folder.mkdir()
    shutil.copyfile(exported / "model.onnx", folder / "model.onnx")
    shutil.copyfile(exported / "tokenizer.json", folder / "tokenizer.json")
    (folder / "labels.json").write_text('["a", "b"]')
    return folder


@pytest.fixture()
def opened(monkeypatch):
    """Every path this process opens (Python's open, onnxruntime's session, tokenizers'
    reader) from here on."""
    import onnxruntime
    import tokenizers

    seen: list[str] = []
    active = [True]

    def hook(event, args):
        if active[0] and event == "open" and isinstance(args[0], (str, bytes, Path)):
            seen.append(str(Path(str(args[0])).resolve()))
    sys.addaudithook(hook)  # (hooks cannot be removed: `active` turns it off)
    session, from_file = onnxruntime.InferenceSession, tokenizers.Tokenizer.from_file

    def record_session(path, *a, **k):
        seen.append(str(Path(path).resolve()))
        return session(path, *a, **k)

    def record_tokenizer(path):
        seen.append(str(Path(path).resolve()))
        return from_file(path)
    monkeypatch.setattr(onnxruntime, "InferenceSession", record_session)
    monkeypatch.setattr(tokenizers.Tokenizer, "from_file", staticmethod(record_tokenizer))
    yield seen
    active[0] = False


def _spec(folder: Path, **fields) -> None:
    spec = json.loads((folder / "input_spec.json").read_text())
    (folder / "input_spec.json").write_text(json.dumps(spec | fields))


@pytest.mark.parametrize("field,name", [
    ("model", "../outside/model.onnx"),
    ("model", "{outside}/model.onnx"),
    ("tokenizer", "../outside/tokenizer.json"),
    ("labels", "{outside}/labels.json"),
    ("model_ort", "../outside/model.onnx"),
])
def test_a_spec_naming_a_file_outside_the_bundle_is_refused(built, outside, cli, tmp_path,
                                                            opened, field, name):
    folder = hostile(built, tmp_path)
    _spec(folder, **{field: name.format(outside=outside)})
    rehash(folder)
    opened.clear()
    code, out = cli("predict", "--bundle", folder, "a text")
    assert code == 2, out
    assert f"input_spec.json {field}" in out and "Traceback" not in out
    assert "absolute, '..'" in out or "not a file manifest.json lists" in out
    assert not [p for p in opened if p.startswith(str(outside.resolve()))]


def test_links_inside_a_bundle_folder_are_refused(built, outside, cli, tmp_path, opened):
    """A file, or a folder on the way to it, that is a symlink: refused wherever it points
    (an archive cannot hold one at all: tests/bundle/test_archive.py)."""
    folder = hostile(built, tmp_path, "file-link")
    (folder / "model.onnx").unlink()
    (folder / "model.onnx").symlink_to(outside / "model.onnx")
    rehash(folder)  # (the link is left out of the listing, then listed by hand)
    list_as(folder, "model.onnx", outside / "model.onnx")
    opened.clear()
    code, out = cli("predict", "--bundle", folder, "a text")
    assert code == 2 and "goes through a link (model.onnx)" in out, out
    assert not [p for p in opened if p.startswith(str(outside.resolve()))]

    via = hostile(built, tmp_path, "folder-link")
    (via / "sub").symlink_to(outside, target_is_directory=True)
    _spec(via, model="sub/model.onnx")
    rehash(via)
    list_as(via, "sub/model.onnx", outside / "model.onnx")
    opened.clear()
    code, out = cli("predict", "--bundle", via, "a text")
    assert code == 2 and "goes through a link (sub)" in out, out
    assert not [p for p in opened if p.startswith(str(outside.resolve()))]


def test_a_manifest_naming_a_model_outside_is_refused_by_target(built, outside, cli,
                                                                tmp_path):
    from edgetransfer.bundle.archive import write_archive

    folder = hostile(built, tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["model"]["file"] = str(outside / "model.onnx")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    archive = tmp_path / "hostile.tar.gz"
    write_archive(folder, archive, "bundle", exclude=("artifact.json",))
    for given in (folder, archive):
        code, out = cli("target", "--bundle", given)
        assert code == 2, out
        assert "manifest.json model file" in out and "absolute" in out
        assert "Traceback" not in out and "internal error" not in out.lower()


@pytest.mark.parametrize("change,said", [
    ({"threads": 10**9}, "threads 1000000000: give 1..256"),
    ({"threads": "4"}, "threads: expected int, found str"),
    ({"max_length": -1}, "max_length -1: give 1..65536"),
    ({"output": "no_such_output"}, "output 'no_such_output' is not one of the model's"),
    ({"inputs": "input_ids"}, "inputs: expected list, found str"),
    ({"task": {"inputs": "audio"}}, "task inputs 'audio' is not text or image"),
    ({"task": {"inputs": "text", "postprocess": "exec"}}, "postprocess 'exec' is not one"),
    ({"task": {"inputs": "text", "postprocess": []}}, "task postprocess: expected str"),
    ({"pad_id": -1}, "pad_id -1: give 0..2147483647"),
    ({"pad_type_id": 2**70}, "pad_type_id 1180591620717411303424: give 0.."),
])
def test_hostile_spec_values_are_one_line(built, cli, tmp_path, change, said):
    folder = hostile(built, tmp_path)
    _spec(folder, **change)
    rehash(folder)
    code, out = cli("predict", "--bundle", folder, "a text")
    assert code == 2 and said in out, out
    assert "Traceback" not in out


def test_deeply_nested_or_huge_json_is_refused(built, cli, tmp_path):
    from edgetransfer.bundle.runtime import predict

    folder = hostile(built, tmp_path, "nested")
    (folder / "labels.json").write_text("[" * 100_000 + "]" * 100_000)
    rehash(folder)
    code, out = cli("predict", "--bundle", folder, "a text")
    assert code == 2 and "labels.json: nested too deeply" in out, out

    big = hostile(built, tmp_path, "big")
    with open(big / "labels.json", "w") as f:
        f.write('["' + "x" * (predict.MAX_JSON_BYTES + 10) + '"]')
    rehash(big)
    code, out = cli("predict", "--bundle", big, "a text")
    assert code == 2 and "labels.json: larger than 64 MiB" in out, out


def test_the_runtime_itself_refuses_them_alone(built, outside, tmp_path):
    """`python predict.py` inside the bundle (no edgetransfer installed) keeps the rule."""
    import subprocess

    folder = hostile(built, tmp_path)
    _spec(folder, model="../outside/model.onnx")
    rehash(folder)
    proc = subprocess.run([sys.executable, "-I", str(folder / "predict.py"), "a text"],
                          capture_output=True, text=True, cwd=folder)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: input_spec.json model: unsafe file name")
    assert "Traceback" not in proc.stderr


# --- hosts handed to ssh

@pytest.mark.parametrize("device", [
    "-oProxyCommand=touch {sentinel}",
    "ssh://-oProxyCommand=touch@host",
    "pi@-oProxyCommand=x",
    "ssh://pi@host:99999",
    "pi@host extra",
])
def test_a_host_that_is_an_option_is_refused_before_ssh_runs(built, cli, tmp_path,
                                                             monkeypatch, device):
    import subprocess

    sentinel = tmp_path / "SENTINEL"
    started = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, *a, **k: started.append(cmd))
    code, out = cli("device", "--bundle", built, "--device",
                    device.format(sentinel=sentinel), "--out", tmp_path / "d.json")
    assert code == 2 and "--device" in out and "give ssh://user@host[:port]" in out, out
    if "-o" in device:
        assert "may not start with '-'" in out
    assert started == [] and not sentinel.exists()


def test_ssh_gets_double_dash_before_the_host(monkeypatch):
    import subprocess

    from edgetransfer.device import ssh

    seen = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, *a, **k: seen.append(cmd))
    ssh._ssh(ssh.parse("ssh://pi@board.local:2222"), "true")
    cmd = seen[0]
    assert cmd[cmd.index("--") + 1:] == ["pi@board.local", "true"]
    assert cmd.index("-p") < cmd.index("--")


def test_an_image_list_naming_a_path_out_of_its_folder_is_refused(tmp_path):
    from edgetransfer.bundle.runtime.predict import BundleError, read_images

    listing = tmp_path / "list" / "images.txt"
    listing.parent.mkdir()
    listing.write_text("a.png\n../outside.png\n")
    with pytest.raises(BundleError, match=r"images.txt: row 2: '../outside.png' leaves the "
                                          r"file's folder"):
        read_images(listing)
    listing.write_text(f"{tmp_path / 'x.png'}\n")
    with pytest.raises(BundleError, match="row 1: .* leaves the file's folder"):
        read_images(listing)
    listing.write_text(f"sub/a.png\n{listing.parent / 'b.png'}\n")  # inside: relative or not
    assert read_images(listing) == [str(listing.parent / "sub/a.png"),
                                    str(listing.parent / "b.png")]


@pytest.mark.parametrize("printed,what", [
    (b"Welcome to the board!\n", "the timing"),
    (b'{"p50_ms": "fast"}\n', "the timing"),
    (b"[" * 5000 + b"\n", "the timing"),
    (b"", "the timing"),
    (b"nan\n", "a cold start"),
])
def test_what_the_device_prints_is_read_as_untrusted(printed, what):
    import subprocess

    from edgetransfer.device import ssh
    from edgetransfer.errors import EnvironmentProblem

    proc = subprocess.CompletedProcess([], 0, stdout=printed, stderr=b"")
    parse = ssh._figures if what == "the timing" else ssh._seconds
    with pytest.raises(EnvironmentProblem, match=rf"pi@board: {what} it printed is not what "
                                                 r"predict.py gives"):
        ssh._answer(ssh.parse("pi@board"), proc, what, parse)


def test_a_tar_header_that_claims_gigabytes_is_refused_while_read(tmp_path, monkeypatch):
    """tarfile reads a pax header whole before any member size is known: the stream itself
    is cut off at the archive limit (set small here; 2 GiB in use)."""
    import gzip
    import io
    import tarfile

    from edgetransfer.bundle import archive
    from edgetransfer.errors import ModelError

    path = tmp_path / "bomb.tar.gz"
    with gzip.open(path, "wb", compresslevel=1) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("bundle/x")
        info.pax_headers = {"comment": "a" * (8 * 2**20)}
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    monkeypatch.setattr(archive, "MAX_BYTES", 2**20)
    monkeypatch.setattr(archive, "HEADER_MARGIN", 2**20)
    with pytest.raises(ModelError, match=r"bomb.tar.gz: refused: unpacks to more than "
                                         r"1,048,576 bytes"):
        archive.extract(path, tmp_path / "out")
    assert not any((tmp_path / "out").iterdir())


def test_device_runs_only_this_versions_runtime(built, cli, tmp_path, monkeypatch):
    """A bundle's predict.py is its builder's code: `device` runs it on the user's board only
    when it is byte for byte this edgetransfer's runtime."""
    import subprocess

    folder = hostile(built, tmp_path)
    with open(folder / "predict.py", "a") as f:
        f.write("\nimport os; os.system('touch /tmp/pwned')\n")
    rehash(folder)
    started = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, *a, **k: started.append(cmd))
    code, out = cli("device", "--bundle", folder, "--device", "ssh://pi@127.0.0.1:1",
                    "--out", tmp_path / "d.json")
    assert code == 2 and "its predict.py is not this edgetransfer's runtime" in out, out
    assert started == []


def test_damaged_files_a_spec_names_are_one_line(built, cli, tmp_path):
    folder = hostile(built, tmp_path, "labels")
    (folder / "labels.json").write_text('["only one"]')
    rehash(folder)
    code, out = cli("predict", "--bundle", folder, "a text")
    assert code == 2 and "labels.json: 1 labels for the model's 2 outputs" in out, out

    folder = hostile(built, tmp_path, "tokenizer")
    (folder / "tokenizer.json").write_text('{"model": 1}')
    rehash(folder)
    code, out = cli("predict", "--bundle", folder, "a text")
    assert code == 2 and "tokenizer.json: not a tokenizer the tokenizers library reads" in out


def test_hostile_input_files_are_one_line(built, cli, tmp_path):
    """predict's --input: a CSV field past the csv module's limit, a 5000-digit number."""
    big = tmp_path / "big.csv"
    big.write_text("text\n" + "x" * 200_000 + "\n")
    code, out = cli("predict", "--bundle", built, "--input", big)
    assert code == 2 and "big.csv: line" in out and "field larger than field limit" in out
    digits = tmp_path / "digits.jsonl"
    digits.write_text('{"text": "a", "n": ' + "9" * 5000 + "}\n")
    code, out = cli("predict", "--bundle", built, "--input", digits)
    assert code == 2 and "digits.jsonl: line 1: not JSON" in out, out


def test_a_manifest_target_of_another_type_is_one_line(built, cli, tmp_path):
    folder = hostile(built, tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps(manifest | {"target": []}))
    code, out = cli("target", "--bundle", folder)
    assert code == 2 and "manifest.json target '[]' is not one of" in out, out


def test_an_image_of_another_format_is_not_decoded(tmp_path):
    """An EPS file named .png would reach Ghostscript through Pillow: only the listed
    formats are ever opened."""
    from edgetransfer.bundle.runtime import pixels

    eps = tmp_path / "photo.png"
    eps.write_text("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    with pytest.raises(pixels.ImageProblem, match="photo.png: not an image of the formats "
                                                  "read here"):
        pixels.open_image(str(eps))


def test_a_config_that_would_allocate_without_bound_is_refused(tmp_path):
    from edgetransfer.errors import ModelError
    from edgetransfer.modeling import architectures, backbones

    for change, said in (({"depth_coefficient": 1e300}, r"depth_coefficient is 1e\+300"),
                         ({"depth_coefficient": float("inf")}, "depth_coefficient is inf"),
                         ({"num_block_repeats": [10**9]}, "num_block_repeats is")):
        config = {"model_type": "efficientnet", "num_block_repeats": [1, 2]} | change
        with pytest.raises(ModelError, match=said):
            backbones.check_config(config, tmp_path / "config.json")
        assert architectures.layer_count_of(config) is None  # (named when it is loaded)
