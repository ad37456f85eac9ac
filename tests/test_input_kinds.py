"""The input-kind seam (edgetransfer/inputs): a kind owns its columns, and package and
device ask the task's kind what differs by input, so a kind and a task that uses it, both
defined in this file, reach the CLI's options, package and device with no edit of
options.py, package.py or device.py."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import write_report

import edgetransfer

TOY = "toy-captions"
CAPTIONS = ["a caption to time", "another, somewhat longer caption to time the runtime on"]

# A kind of its own: the text reader in the runtime, a column of its own, its own choice of
# what the runtime is timed on. The same source serves the subprocess below (a kind
# registered before options.py is first imported, as a plugin would be) and this process.
KIND_SOURCE = '''
from edgetransfer import inputs
from edgetransfer.bundle import inputs as readers

CALLS = []


def latency_inputs(cfg, task, scratch):
    CALLS.append(("latency", task.name, scratch))
    return list(CAPTIONS)


def device_inputs(task, latency_data):
    CALLS.append(("device", task.name, latency_data))
    return list(CAPTIONS)


CAPTION_COLUMN = inputs.Column.of(
    "caption_column", str | None,
    description="Toy captions: the column holding each picture's caption [default: caption].")
KIND = inputs.InputKind(name="captions", summary="a caption per example",
                        reader=readers.TEXT, columns=(CAPTION_COLUMN, inputs.LABEL),
                        latency_inputs=latency_inputs, device_inputs=device_inputs,
                        runtime={"pairs": False})
'''


def _toy_kind_module(folder: Path, register: bool = True) -> Path:
    source = f"CAPTIONS = {CAPTIONS!r}\n" + KIND_SOURCE
    if register:
        source += "\ninputs.register(KIND)\n"
    path = folder / "toy_captions_kind.py"
    path.write_text(source)
    return path


def test_a_kind_registered_before_the_cli_adds_its_column_to_every_data_stage(tmp_path):
    _toy_kind_module(tmp_path)
    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(tmp_path)!r})
        import toy_captions_kind  # (registers its kind; options.py is not imported yet)
        light = "edgetransfer.options" not in sys.modules
        from edgetransfer import registry
        from edgetransfer.cli import main
        from edgetransfer.options import COLUMNS
        from edgetransfer.recipe import DataSection
        finetune = registry.get("finetune").config_class()
        cfg = finetune(model="m", train="t.jsonl", out="o", caption_column="caption")
        print(json.dumps({{"light": light, "columns": sorted(COLUMNS),
                          "recipe": "caption_column" in DataSection.model_fields,
                          "parsed": cfg.caption_column}}))
        for stage in ("finetune", "export", "verify"):
            try:
                main([stage, "--help"])
            except SystemExit:
                pass
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    first, help_text = proc.stdout.split("\n", 1)
    found = json.loads(first)
    assert found["light"]  # the registry of kinds imports no options, tasks or torch
    assert "caption_column" in found["columns"]  # wired from a recipe's data section too
    assert found["recipe"] and found["parsed"] == "caption"
    # the option, with its kind's help, in each stage that reads data
    assert help_text.count("--caption-column") == 3
    assert "Toy captions: the column holding each picture's caption" in " ".join(
        help_text.split())


def test_a_kind_registered_after_the_options_exist_may_not_bring_a_column():
    from edgetransfer import inputs, options  # noqa: F401  (the options made first)

    late = replace(inputs.get("text"), name="late-captions",
                   columns=(inputs.Column.of("late_caption_column", str | None),))
    with pytest.raises(ValueError, match="registered after edgetransfer.options"):
        inputs.register(late)
    assert "late-captions" not in [k.name for k in inputs.kinds()]


def test_options_package_and_device_name_no_input_kind():
    """What the test above and below show, said of the source: no column is listed by hand
    in options.py, and no input kind's name is tested in package.py or device.py."""
    root = Path(edgetransfer.__file__).parent
    assert "text_column" not in (root / "options.py").read_text()
    for name in ("stages/package.py", "stages/device.py"):
        source = (root / name).read_text()
        assert not re.search(r'[!=]= "(text|image|words)"|"image" in', source), name


@pytest.fixture()
def toy(tmp_path, monkeypatch):
    """The toy kind, and a task taking it (text classification's functions, its own name),
    registered in this process and removed after."""
    from edgetransfer import inputs, tasks

    monkeypatch.syspath_prepend(str(_toy_kind_module(tmp_path, register=False).parent))
    import toy_captions_kind as module

    module.CALLS.clear()
    # registered after options.py was imported, a kind may bring no column of its own (it
    # would be no setting: refused); the subprocess test above shows its own column reach
    # the options when it is registered first
    kind = inputs.register(replace(module.KIND, columns=inputs.get("text").columns))
    task = tasks.register(replace(tasks.get("text-classification"), name=TOY, inputs=kind,
                                  claims=lambda config: False,
                                  claims_data=lambda columns: False))
    yield task, module.CALLS
    tasks.unregister(TOY)
    inputs.unregister(kind.name)
    sys.modules.pop("toy_captions_kind", None)


def _as_toy(exported: Path, folder: Path) -> Path:
    """The exported tiny classifier, its artifact.json recording the toy task."""
    model = shutil.copytree(exported, folder)
    manifest = json.loads((model / "artifact.json").read_text())
    (model / "artifact.json").write_text(json.dumps(manifest | {"task": TOY}))
    return model


def test_package_and_device_ask_the_tasks_kind(toy, exported, cli, tmp_path, monkeypatch):
    task, calls = toy
    assert task.runtime["inputs"] == "text" and task.runtime["pairs"] is False
    model = _as_toy(exported, tmp_path / "onnx")
    report = write_report(tmp_path / "verify.json", model)
    code, out = cli("-q", "package", "--model", model, "--verify-report", report, "--target",
                    "linux-x86_64", "--out", tmp_path / "bundle", "--cold-starts", "1",
                    "--latency-requests", "5")
    assert code == 0, out
    assert [(c[0], c[1]) for c in calls] == [("latency", TOY)]
    assert not calls[0][2].exists()  # (its scratch folder, removed after)
    bundle = tmp_path / "bundle"
    spec = json.loads((bundle / "input_spec.json").read_text())
    assert spec["task"] == {"name": TOY, **task.runtime}  # the kind's reader and pairs
    assert (bundle / "tokenizer.json").is_file()  # what its reader carries
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["task"] == TOY and manifest["measurements"]["latency"]["requests"] == 5

    from edgetransfer.device import ssh

    sent = {}

    def measure(folder, manifest, pins, inputs, reader, host, **settings):
        sent.update(inputs=inputs, reader=reader)
        latency = {"p50_ms": 1.0, "p90_ms": 1.5, "p99_ms": 2.0, "requests": 5}
        return {"latency": latency, "cold_start_s": 0.5, "peak_rss_mb": 50,
                "host": {"machine": "aarch64", "python": "3.11"}}

    monkeypatch.setattr(ssh, "measure", measure)  # (no board: what device sends it)
    code, out = cli("device", "--bundle", bundle, "--device", "ssh://pi@board", "--out",
                    tmp_path / "device.json")
    assert code == 0, out
    assert sent == {"inputs": CAPTIONS, "reader": "text"}
    assert [c[0] for c in calls] == ["latency", "device"]

    # a kind whose inputs cannot travel over SSH: refused, naming it, before any connection
    tasks_module = sys.modules["edgetransfer.tasks"]
    tasks_module.unregister(TOY)
    tasks_module.register(replace(task, inputs=replace(task.inputs, device_inputs=None)))
    code, out = cli("device", "--bundle", bundle, "--device", "ssh://pi@board", "--out",
                    tmp_path / "device2.json")
    assert code == 2 and "bundles of captions inputs are not measured over SSH" in out, out
