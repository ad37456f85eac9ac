"""edgetransfer.api: a function per registered stage, taking its settings or its config,
returning its record, raising what the command would (docs/api.md)."""

from __future__ import annotations

import inspect
import json

import pytest
import yaml
from conftest import predictions, write_report

from edgetransfer import api, registry
from edgetransfer.errors import CheckFailed, ConfigError, EdgeTransferError


@pytest.mark.parametrize("stage", registry.stages(), ids=lambda s: s.name)
def test_every_stage_is_a_function_made_from_its_registration(stage):
    function = getattr(api, stage.name)
    config = stage.config_class()
    assert function.config is config
    names = list(inspect.signature(function).parameters)
    assert names[0] == "config"
    assert set(names[1:]) == set(config.model_fields) | {n for n, _ in stage.flags} \
        | ({stage.argument} if stage.argument else set())
    for name, field in config.model_fields.items():  # the --help text, once
        assert f"{name}" in function.__doc__ and (field.description or "") in function.__doc__
    assert api.STAGES == tuple(s.name for s in registry.stages())


def test_the_stages_chain_and_return_their_records(tiny_backbone, data_dir, tmp_path, cli):
    teacher = api.finetune(model=tiny_backbone, train=data_dir / "train.jsonl",
                           validation=data_dir / "validation.jsonl", out=tmp_path / "teacher",
                           epochs=4, batch_size=4, lr=2e-3, patience=0)
    assert isinstance(teacher, api.Artifact) and teacher.path == tmp_path / "teacher"
    assert teacher.manifest["kind"] == "finetuned-model"
    full = teacher.read("metrics.json")
    assert teacher.metrics["validation_accuracy"] == full["validation"]["accuracy"]

    onnx = api.export(model=teacher, out=tmp_path / "onnx", quantize="none")  # (a path as is)
    assert onnx.manifest["parents"]["model"] == str(teacher)
    assert onnx.read("export.json").task == "text-classification"

    report = api.verify(reference=teacher, candidate=onnx, data=data_dir / "test.jsonl",
                        out=tmp_path / "verify.json", iterations=20, rounds=2,
                        latency_samples=8, batch_sizes=[1])
    written = json.loads((tmp_path / "verify.json").read_text())
    assert report.passed and written["passed"]
    assert [c.name for c in report.candidates] == [c["name"] for c in written["candidates"]]

    bundle = api.package(model=onnx, verify_report=tmp_path / "verify.json",
                         out=tmp_path / "bundle", measure=False)
    assert bundle.manifest["kind"] == "bundle"
    texts = ["great lovely superb", "awful bad terrible"]
    rows = api.predict(bundle=bundle, texts=texts)
    assert [r["text"] for r in rows] == texts
    code, out = cli("predict", "--bundle", bundle, *texts)
    assert code == 0 and predictions(out) == rows  # what the command prints


def test_a_config_object_is_taken_as_the_command_takes_its_flags(exported, tmp_path):
    config = api.package.config(model=exported, out=tmp_path / "bundle", unverified=True,
                                measure=False)
    bundle = api.package(config)
    assert bundle.manifest["metrics"]["archive_bytes"] > 0
    assert bundle.read("manifest.json")["verification"] == {"verified": False}
    with pytest.raises(TypeError, match="not both"):
        api.package(config, out=tmp_path / "other")
    with pytest.raises(TypeError, match="PackageConfig"):
        api.package(api.export.config(model=str(exported), out=tmp_path / "x"))


def test_what_the_command_refuses_is_raised_naming_the_keyword(exported, tmp_path):
    with pytest.raises(ConfigError, match=r"^api\.export: quantize int9: ") as e:
        api.export(model=exported, out=tmp_path / "onnx", quantize="int9")
    assert e.value.exit_code == 2
    with pytest.raises(ConfigError, match=r"^api\.export: colour blue: Extra inputs"):
        api.export(model=exported, out=tmp_path / "onnx", colour="blue")
    with pytest.raises(EdgeTransferError, match=r"^api\.export: eval_data nope\.jsonl: no such"):
        api.export(model=exported, out=tmp_path / "onnx", eval_data="nope.jsonl")
    # a failed gate: the command's exit code, on the error
    report = write_report(tmp_path / "verify.json", exported, passed=False,
                          failures=[{"gate": "parity", "model": "onnx", "message": "off"}])
    with pytest.raises(CheckFailed) as e:
        api.package(model=exported, verify_report=report, out=tmp_path / "bundle",
                    measure=False)
    assert e.value.exit_code == 3 and not (tmp_path / "bundle").exists()


def test_a_recipe_runs_as_a_function(tiny_backbone, data_dir, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "api", "model": str(tiny_backbone), "output": str(tmp_path / "models" / "api"),
        "data": {"train": str(data_dir / "train.jsonl"),
                 "validation": str(data_dir / "validation.jsonl")},
        "finetune": {"epochs": 2, "batch_size": 4, "lr": 2e-3, "patience": 0}}))
    root = api.pipeline(recipe, "finetune.epochs=1")
    assert root.path == tmp_path / "models" / "api"
    steps = root.read("pipeline.json")["steps"]
    assert [s["status"] for s in steps.values()] == ["done"]
    assert (root.path / "teacher" / "artifact.json").is_file()
    with pytest.raises(EdgeTransferError, match="finetune.epochs"):
        api.pipeline(recipe, "finetune.epochs=-1")
