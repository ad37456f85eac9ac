"""`edgetransfer run` end to end on a tiny random model: every artifact, the report, skip on
re-run, --from, resume after a killed step; `validate` and every recipe in recipes/."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import make_classifier, make_rows, write_jsonl

ROOT = Path(__file__).resolve().parents[1]


def _recipe(tmp_path: Path, backbone: Path, data: Path, **changes) -> Path:
    doc = {
        "name": "smoke",
        "model": str(backbone),
        "output": str(tmp_path / "models" / "smoke"),
        "data": {"train": str(data / "train.jsonl"), "validation": str(data / "validation.jsonl"),
                 "test": str(data / "test.jsonl")},
        "finetune": {"method": "full", "epochs": 3, "batch_size": 4, "lr": 2e-3, "patience": 0},
        "distill": {"student_layers": 1, "epochs": 2, "batch_size": 4, "lr": 2e-3,
                    "patience": 0},
        "export": [{"name": "int8", "quantize": "int8-dynamic", "max_accuracy_drop": 100,
                    "min_agreement": 0.5},
                   {"name": "fp32", "quantize": "none"}],
        "verify": {"max_accuracy_drop": 100, "min_agreement": 0.5, "iterations": 20,
                   "rounds": 2, "latency_samples": 8, "batch_sizes": [1, 4]},
        "package": {"variant": "fp32", "measure": False, "target": "linux-x86_64"},
    }
    for key, value in changes.items():
        doc[key] = value
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


STEP_FOLDERS = ["teacher", "student", "onnx-int8", "onnx-fp32", "verify", "bundle"]


def test_smoke_pipeline_end_to_end_then_skips_unchanged_steps(cli, tiny_backbone, data_dir,
                                                               tmp_path, monkeypatch):
    recipe = _recipe(tmp_path, tiny_backbone, data_dir)
    code, out = cli("run", recipe)
    assert code == 0, out
    root = tmp_path / "models" / "smoke"
    for folder in STEP_FOLDERS:
        manifest = json.loads((root / folder / "artifact.json").read_text())
        assert manifest["files"], folder
    assert (root / "bundle.tar.gz").is_file()
    for name in ("report.md", "report.json", "report.png", "recipe.resolved.yaml",
                 "pipeline.json"):
        assert (root / name).is_file(), name
    assert not list(root.glob(".*.partial"))
    rep = json.loads((root / "report.json").read_text())
    assert [m["name"] for m in rep["models"]] == ["teacher", "student", "onnx-int8",
                                                   "onnx-fp32"]
    assert all(m["p50_ms"] > 0 and 0 <= m["accuracy"] <= 1 for m in rep["models"])
    assert "| teacher | pytorch |" in (root / "report.md").read_text()
    resolved = yaml.safe_load((root / "recipe.resolved.yaml").read_text())
    assert resolved["finetune"]["warmup_ratio"] == 0.06  # defaults are filled in
    state = json.loads((root / "pipeline.json").read_text())
    assert all(s["status"] == "done" for s in state["steps"].values())

    before = {f: (root / f / "artifact.json").read_bytes() for f in STEP_FOLDERS}
    from edgetransfer import pipeline

    hashed = []  # (each data file is fingerprinted once for all the steps that read it)
    monkeypatch.setattr(pipeline, "fingerprint",
                        lambda path, *a, f=pipeline.fingerprint: hashed.append(str(path))
                        or f(path, *a))
    code, out = cli("run", recipe)
    assert code == 0, out
    assert out.count("unchanged, reusing") == len(STEP_FOLDERS)
    assert {f: (root / f / "artifact.json").read_bytes() for f in STEP_FOLDERS} == before
    data = [h for h in hashed if h.startswith(str(data_dir))]
    assert sorted(set(data)) == sorted(data) and str(data_dir / "train.jsonl") in data

    # a changed setting re-runs that step and what depends on it, nothing before it
    code, out = cli("run", recipe, "export.1.opset=17")
    assert code == 0, out
    assert "teacher: unchanged" in out and "student: unchanged" in out
    assert "onnx-int8: unchanged" in out and "onnx-fp32: unchanged" not in out
    assert (root / "teacher" / "artifact.json").read_bytes() == before["teacher"]
    assert (root / "onnx-fp32" / "artifact.json").read_bytes() != before["onnx-fp32"]
    assert json.loads((root / "onnx-fp32" / "export.json").read_text())["opset"] == 17


def test_from_step_reruns_that_step_and_later(cli, tiny_backbone, data_dir, tmp_path):
    recipe = _recipe(tmp_path, tiny_backbone, data_dir, distill=None, package=None,
                     export=[{"name": "fp32", "quantize": "none"}], verify=None)
    assert cli("-q", "run", recipe)[0] == 0
    root = tmp_path / "models" / "smoke"
    before = {f: (root / f / "artifact.json").read_bytes() for f in ("teacher", "onnx-fp32")}
    code, out = cli("run", recipe, "--from", "export")
    assert code == 0, out
    assert (root / "teacher" / "artifact.json").read_bytes() == before["teacher"]
    assert (root / "onnx-fp32" / "artifact.json").read_bytes() != before["onnx-fp32"]
    code, out = cli("run", recipe, "--from", "distill")
    assert code == 2 and "--from distill: the recipe has no such step" in out


def test_resume_after_the_finetune_step_is_killed(tiny_backbone, data_dir, tmp_path):
    """kill -9 a real `edgetransfer run` once finetune has a complete checkpoint; the next
    run resumes that step from it and finishes the pipeline."""
    recipe = _recipe(tmp_path, tiny_backbone, data_dir, distill=None, package=None,
                     verify=None, export=None,
                     finetune={"method": "full", "epochs": 4, "batch_size": 4, "lr": 2e-3,
                               "patience": 0, "eval_steps": 5})
    root = tmp_path / "models" / "smoke"
    partial = root / ".teacher.partial"
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "edgetransfer", "run", str(recipe)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            done = [c for c in partial.glob("checkpoints/checkpoint-*")
                    if (c / "checkpoint.complete").exists()]
            if len(done) >= 1 or proc.poll() is not None:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (root / "teacher").exists()  # nothing under the final name
    state = json.loads((root / "pipeline.json").read_text())
    assert state["steps"]["teacher"]["status"] == "running"
    result = subprocess.run([sys.executable, "-m", "edgetransfer", "run", str(recipe)],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "teacher -> " in result.stderr and "(resuming)" in result.stderr
    assert "resuming from" in result.stderr  # the Trainer continued from the checkpoint
    metrics = json.loads((root / "teacher" / "metrics.json").read_text())
    assert metrics["training"]["resumed_from"].startswith("checkpoint-")
    assert (root / "teacher" / "artifact.json").is_file()
    assert json.loads((root / "pipeline.json").read_text())["steps"]["teacher"]["status"] == \
        "done"


def test_validate_checks_without_torch_and_finds_missing_data(tiny_backbone, data_dir,
                                                              tmp_path):
    recipe = _recipe(tmp_path, tiny_backbone, data_dir)
    probe = ("import sys; from edgetransfer.cli import main\n"
             "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\n"
             "else:\n    code = 0\n"
             "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH'); sys.exit(code)")
    ok = subprocess.run([sys.executable, "-c", probe, "validate", str(recipe)],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "NO-TORCH" in ok.stdout and "valid recipe 'smoke'" in ok.stdout
    bad = subprocess.run([sys.executable, "-c", probe, "validate", str(recipe),
                          f"data.test={tmp_path / 'nope.jsonl'}"], capture_output=True,
                         text=True)
    assert bad.returncode == 2
    assert "nope.jsonl does not exist" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("recipe", sorted((ROOT / "recipes").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_recipe_validates(recipe):
    from edgetransfer import pipeline
    from edgetransfer import recipe as recipes

    loaded, _ = recipes.load(recipe)
    steps = pipeline.plan(loaded, recipe, recipes.output_root(loaded, recipe))
    assert steps and loaded.name == recipe.stem
    if recipe.name == "quickstart.yaml":  # the offline one: its data ships with the project
        for p in steps:
            for role in ("train", "validation", "test", "eval"):
                if role in p.inputs:
                    assert Path(p.inputs[role]).is_file(), p.inputs[role]


@pytest.mark.parametrize("text,words", [
    ("name: x\ndata: {train: a.jsonl}\nfinetune: {epoch: 2}\n",
     "unknown key finetune.epoch; did you mean 'epochs'?"),
    ("name: x\ndata: {train: a.jsonl, vaildation: b.jsonl}\nfinetune: {}\n",
     "unknown key data.vaildation; did you mean 'validation'?"),
    ("name: x\ndata: {train: a.jsonl}\nfinetun: {}\n", "unknown key finetun; did you mean "
     "'finetune'?"),
    ("name: x\ndata: {train: a.jsonl}\nfinetune: {epochs: many}\n",
     "finetune.epochs: Input should be a valid number"),
    ("name: x\ndata: {train: a.jsonl}\nfinetune: {lr: 1e-4x}\n", "finetune.lr:"),
    ("name: x\ndata: {train: a.jsonl}\nfinetune: !!python/object/apply:os.system "
     "['touch PWNED']\n", "Python tags are refused and nothing was run"),
    ("name: x\ndata: {train: a.jsonl}\n", "no steps"),
    ("- just\n- a list\n", "a recipe is a mapping"),
    ("name: x\ndata: {train: a.jsonl}\nfinetune: {}\n  bad: indent\n", "not valid YAML"),
    ("name: x\ndata: {train: a.jsonl}\nexport: [{quantize: fp16}]\n"
     "package: {variant: int8, target: linux-x86_64}\n",
     "package.variant 'int8' is not an export variant"),
    ("name: x\ndata: {train: a.jsonl}\nfinetune: {}\npackage: {target: linux-x86_64}\n",
     "package: no step before it makes the OnnxModel it takes; add the section `export:`"),
    ("name: x\ndata: {train: a.jsonl}\nfinetune: {}\nverify: {}\n",
     "verify: no step before it makes the Student or OnnxModel it takes; add the section "
     "`distill:` or `export:`"),
])
def test_bad_recipes_get_one_line_errors(cli, tmp_path, text, words, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "r.yaml"
    path.write_text(text, encoding="utf-8")
    code, out = cli("validate", path)
    assert code == 2, out
    assert words in out and "Traceback" not in out
    assert not (tmp_path / "PWNED").exists()


def test_yaml_11_strings_are_coerced_and_overrides_parsed(tmp_path):
    from edgetransfer import recipe as recipes

    path = tmp_path / "r.yaml"
    path.write_text("name: x\ndata: {train: a.jsonl}\nfinetune: {lr: 1e-4, epochs: 2}\n")
    loaded, _ = recipes.load(path, ["finetune.batch_size=8", "data.label_names=neg,pos",
                                    "finetune.lora_targets=query,value"])
    assert loaded.finetune.lr == 1e-4 and isinstance(loaded.finetune.lr, float)
    assert loaded.finetune.batch_size == 8
    assert loaded.data.label_names == ["neg", "pos"]
    assert loaded.finetune.lora_targets == ["query", "value"]
    with pytest.raises(Exception, match="write KEY=VALUE"):
        recipes.load(path, ["finetune.batch_size"])


def test_train_sample_is_seeded_and_checks_every_row(tmp_path):
    from edgetransfer.tasks import text_classification as data

    f = write_jsonl(tmp_path / "train.jsonl", make_rows(50, seed=1))
    a = data.load(str(f), train_sample=20, seed=3, validation_fraction=0.2)
    b = data.load(str(f), train_sample=20, seed=3, validation_fraction=0.2)
    assert len(a.splits["train"]) + len(a.splits["validation"]) == 20
    assert a.splits["train"]["text"] == b.splits["train"]["text"]


def test_a_step_error_names_the_recipe_key_not_the_flag(cli, tiny_backbone, data_dir,
                                                        tmp_path):
    """The library says --keep-layers; under `edgetransfer run` the user typed a key."""
    teacher = make_classifier(tiny_backbone, tmp_path / "teacher", seed=0)
    recipe = _recipe(tmp_path, teacher, data_dir, finetune=None, export=None,
                     verify=None, package=None,
                     distill={"keep_layers": "0,9", "epochs": 1, "batch_size": 4})
    code, out = cli("run", recipe)
    assert code == 2
    assert f"error: {recipe}: distill.keep_layers 0,9: the teacher has layers 0..1" in out
    assert "--keep-layers" not in out


def test_a_recipe_names_its_task(tmp_path, tiny_backbone, data_dir, cli):
    recipe = _recipe(tmp_path, tiny_backbone, data_dir, task="text-classification")
    code, out = cli("validate", recipe)
    assert code == 0, out
    bad = _recipe(tmp_path, tiny_backbone, data_dir, task="text-clasification")
    code, out = cli("validate", bad)
    assert code == 2 and "task: text-clasification: no such task; the tasks are" in out


def test_a_student_finetuned_first_is_its_own_step_and_the_student_starts_from_it(
        cli, tiny_backbone, data_dir, tmp_path):
    """distill.student_finetune: the student's model fine-tuned on the labelled rows as a
    finetune step of its own (student-init/), then cut and distilled into; each step reused
    on a re-run; refused without a student, and a typo in it named with its whole key."""
    recipe = _recipe(tmp_path, tiny_backbone, data_dir, export=None, verify=None,
                     package=None,
                     distill={"student": str(tiny_backbone), "student_layers": 1, "epochs": 1,
                              "batch_size": 4, "patience": 0,
                              "student_finetune": {"epochs": 1, "batch_size": 4, "lr": 2e-3,
                                                   "patience": 0}})
    code, out = cli("run", recipe)
    assert code == 0, out
    root = tmp_path / "models" / "smoke"
    state = json.loads((root / "pipeline.json").read_text())["steps"]
    assert list(state) == ["teacher", "student-init", "student"]
    assert state["student-init"]["step"] == "finetune"
    init = json.loads((root / "student-init" / "settings.json").read_text())
    assert init["config"]["model"] == str(tiny_backbone) and init["config"]["epochs"] == 1
    student = json.loads((root / "student" / "settings.json").read_text())
    assert student["config"]["student"] == str(root / "student-init")
    assert student["config"]["teacher"] == str(root / "teacher")
    assert student["keep_layers"] == [1]  # (the fine-tuned 2-layer model, cut to 1)
    code, out = cli("run", recipe)
    assert code == 0 and out.count("unchanged, reusing") == 3, out
    # search runs the recipe's own finetune step alone (the teacher), and an error about
    # the student-init step's settings names them where the recipe writes them
    from edgetransfer import pipeline, registry

    steps = pipeline.Steps(recipe)
    assert [p.label for p in steps.of_recipe("finetune")] == ["teacher"]
    init = next(p for p in pipeline.plan(steps.recipe, recipe, steps.root)
                if p.label == "student-init")
    keys = (init.section, init.wired_keys)
    assert keys == ("distill.student_finetune", {"model": "distill.student"})
    finetune = registry.get("finetune")
    assert pipeline.recipe_key(finetune, "model", *keys) == "distill.student"
    assert pipeline.recipe_key(finetune, "lr", *keys) == "distill.student_finetune.lr"
    assert pipeline.recipe_key(finetune, "model") == "model"

    doc = yaml.safe_load(recipe.read_text())
    doc["distill"]["student_finetune"]["lrr"] = 1e-3
    recipe.write_text(yaml.safe_dump(doc))
    code, out = cli("validate", recipe)
    assert code == 2 and "distill.student_finetune.lrr" in out and "lr" in out
    del doc["distill"]["student_finetune"]["lrr"], doc["distill"]["student"]
    recipe.write_text(yaml.safe_dump(doc))
    code, out = cli("validate", recipe)
    assert code == 2 and "distill.student_finetune: fine-tunes distill.student" in out


def test_a_recipe_may_give_the_image_student_its_own_side(tmp_path):
    """distill.image_size: the student's side; the teacher's steps keep data.image_size."""
    from edgetransfer import pipeline
    from edgetransfer import recipe as recipes

    path = tmp_path / "pics.yaml"
    path.write_text(yaml.safe_dump({
        "name": "pics", "task": "image-classification", "model": "efficientnet-lite2",
        "data": {"train": "train", "test": "test", "image_size": 96},
        "finetune": {"epochs": 1}, "distill": {"student": "efficientnet-lite0",
                                                "image_size": 64}}))
    loaded, _ = recipes.load(path)
    steps = {p.label: p for p in pipeline.plan(loaded, path, tmp_path / "out")}
    assert steps["teacher"].config.image_size == 96
    assert steps["student"].config.image_size == 64
    assert steps["student"].config.teacher_cache is None  # (images cannot key the cache)
    loaded.distill.image_size = None
    steps = {p.label: p for p in pipeline.plan(loaded, path, tmp_path / "out")}
    assert steps["student"].config.image_size == 96
    path.write_text(path.read_text().replace("image_size: 64", "image_size: 4"))
    from edgetransfer.errors import ConfigError

    with pytest.raises(ConfigError, match="distill.image_size"):
        recipes.load(path)


def test_a_rerun_with_another_student_reads_the_teachers_outputs_from_the_runs_cache(
        cli, tiny_backbone, data_dir, tmp_path):
    """distill keeps the teacher's outputs in teacher-cache/ under the recipe's folder: a
    changed student setting re-runs the distillation on them without the teacher's pass;
    where the cache is is no part of the step's key."""
    recipe = _recipe(tmp_path, tiny_backbone, data_dir, export=None, verify=None,
                     package=None)
    code, out = cli("run", recipe)
    assert code == 0, out
    root = tmp_path / "models" / "smoke"
    cached = sorted(p.name for p in (root / "teacher-cache").iterdir())
    assert cached and all(n.startswith("teacher-logits-") and n.endswith(".npz")
                          for n in cached)
    assert "teacher outputs: reusing" not in out
    code, out = cli("run", recipe, "distill.epochs=1")
    assert code == 0, out
    assert "teacher: unchanged" in out and "student: unchanged" not in out
    assert "teacher outputs: reusing" in out
    assert sorted(p.name for p in (root / "teacher-cache").iterdir()) == cached
    code, out = cli("run", recipe, "distill.epochs=1",
                    f"distill.teacher_cache={tmp_path / 'elsewhere'}")
    assert code == 0 and "student: unchanged" in out, out


def test_a_variant_into_another_folder_copies_the_steps_it_shares_with_an_earlier_run(
        cli, tiny_backbone, data_dir, tmp_path):
    """run --reuse-from: the teacher (same key) is copied from the earlier run, the teacher
    cache's files with it (the changed student reads them), the earlier run is only read,
    and the variant's folder then stands on its own."""
    recipe = _recipe(tmp_path, tiny_backbone, data_dir, export=None, verify=None,
                     package=None)
    code, out = cli("run", recipe)
    assert code == 0, out
    first = tmp_path / "models" / "smoke"

    def files(root):
        return {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    before = files(first)
    # the same settings: every step copied, the student's too (its settings name the
    # teacher's folder under each run, read as the earlier run's)
    same = tmp_path / "same"
    code, out = cli("run", recipe, f"output={same}", "--reuse-from", first)
    assert code == 0, out
    assert f"teacher: unchanged in {first}, copied" in out
    assert f"student: unchanged in {first}, copied" in out
    # another student: the teacher copied, the student distilled on the teacher's outputs
    second = tmp_path / "variant"
    code, out = cli("run", recipe, f"output={second}", "distill.epochs=1",
                    "--reuse-from", first)
    assert code == 0, out
    assert f"teacher: unchanged in {first}, copied" in out
    assert "teacher outputs: reusing" in out and "student: unchanged" not in out
    state = json.loads((second / "pipeline.json").read_text())
    assert state["steps"]["teacher"]["copied_from"] == str(first / "teacher")
    assert state["steps"]["student"]["status"] == "done"
    assert "copied_from" not in state["steps"]["student"]
    assert files(second / "teacher") == files(first / "teacher")
    assert files(first) == before  # (read, never written)
    code, out = cli("run", recipe, f"output={second}", "distill.epochs=1")
    assert code == 0, out
    assert "teacher: unchanged, reusing" in out and "student: unchanged, reusing" in out
    # a link in what would be copied is refused: what is copied stays inside the earlier run
    cache, moved = first / "teacher-cache", tmp_path / "cache-elsewhere"
    cache.rename(moved)
    cache.symlink_to(moved)
    code, out = cli("run", recipe, f"output={tmp_path / 'third'}", "distill.temperature=3",
                    "--reuse-from", first)
    assert code == 2 and f"{cache} is a symbolic link" in out, out
    assert "Traceback" not in out


def test_a_variant_run_reads_the_teachers_predictions_verify_kept(cli, tiny_backbone,
                                                                  data_dir, tmp_path):
    """verify keeps the teacher's predictions on the eval data in the run's teacher-cache/:
    a variant's run (--reuse-from, another student) verifies its student without scoring
    the teacher again, with the same figure for it."""
    recipe = _recipe(tmp_path, tiny_backbone, data_dir, package=None,
                     export=[{"name": "fp32", "quantize": "none"}])
    code, out = cli("run", recipe)
    assert code == 0, out
    first = tmp_path / "models" / "smoke"
    # (a folder of verify's own: a variant's verify brings none of distill's files along)
    assert len(list((first / "teacher-cache/verify").glob("reference-predictions-*"))) == 1
    assert "the reference's predictions: reusing" not in out
    variant = tmp_path / "variant"
    code, out = cli("run", recipe, f"output={variant}", "distill.epochs=1",
                    "--reuse-from", first)
    assert code == 0, out
    assert "the reference's predictions: reusing" in out
    assert "teacher: scored" not in out and "student: scored" in out
    reports = [json.loads((r / "verify/verify.json").read_text()) for r in (first, variant)]
    assert reports[0]["reference"]["metrics"] == reports[1]["reference"]["metrics"]


def test_a_whole_run_reused_copies_every_step_and_the_files_beside_the_bundle(
        cli, tiny_backbone, data_dir, tmp_path):
    """Every step copied, package's archive and record (next to its folder) with it; the
    report counts the copying, not the hours the earlier run spent."""
    recipe = _recipe(tmp_path, tiny_backbone, data_dir)
    code, out = cli("run", recipe)
    assert code == 0, out
    first, again = tmp_path / "models" / "smoke", tmp_path / "again"
    code, out = cli("run", recipe, f"output={again}", "--reuse-from", first)
    assert code == 0, out
    state = json.loads((again / "pipeline.json").read_text())["steps"]
    assert all("copied_from" in state[label] for label in STEP_FOLDERS), state
    for name in ("bundle.tar.gz", "bundle.json"):
        assert (again / name).read_bytes() == (first / name).read_bytes()
    earlier = json.loads((first / "pipeline.json").read_text())["steps"]
    assert state["teacher"]["copied_wall_time_s"] == earlier["teacher"]["wall_time_s"]


def test_a_run_moved_with_its_data_to_other_folders_is_the_run_it_was(
        cli, tiny_backbone, data_dir, tmp_path):
    """A step's key holds no place: the run's folder moved (a CI cache restored elsewhere) and
    its data files read from another folder, every step is reused where it lies now; data
    of other content is still a new key."""
    import shutil

    recipe = _recipe(tmp_path, tiny_backbone, data_dir, package=None,
                     export=[{"name": "fp32", "quantize": "none"}])
    code, out = cli("run", recipe)
    assert code == 0, out
    first = tmp_path / "models" / "smoke"
    keys = {k: v["key"] for k, v in json.loads((first / "pipeline.json").read_text())
            ["steps"].items()}
    moved, data = tmp_path / "restored" / "smoke", tmp_path / "data-elsewhere"
    moved.parent.mkdir()
    first.rename(moved)
    shutil.copytree(data_dir, data)
    recipe = _recipe(tmp_path, tiny_backbone, data, package=None,
                     export=[{"name": "fp32", "quantize": "none"}], output=str(moved))
    code, out = cli("run", recipe)
    assert code == 0, out
    assert out.count("unchanged, reusing") == 4, out  # teacher, student, onnx-fp32, verify
    assert "onnx-fp32: unchanged, reusing" in out and "verify: unchanged, reusing" in out
    state = json.loads((moved / "pipeline.json").read_text())["steps"]
    assert {k: v["key"] for k, v in state.items()} == keys
    # the data's content is what counts: another test file re-runs what reads it
    write_jsonl(data / "test.jsonl", make_rows(24, seed=4))
    code, out = cli("run", recipe)
    assert code == 0, out
    assert "teacher: unchanged" not in out


def test_a_run_recorded_with_the_older_keys_is_reused_and_takes_the_new_ones(
        cli, tiny_backbone, data_dir, tmp_path):
    """Runs made before keys held no place recorded the settings' paths as written: their
    steps are still reused (copied too, by --reuse-from; and where the run has moved since),
    not retrained, and a re-run records them under the new key."""
    import hashlib

    from edgetransfer import pipeline
    from edgetransfer import recipe as recipes
    from edgetransfer.options import result_settings

    recipe = _recipe(tmp_path, tiny_backbone, data_dir, export=None, verify=None,
                     package=None)
    code, out = cli("run", recipe)
    assert code == 0, out
    first = tmp_path / "models" / "smoke"
    state_file = first / "pipeline.json"
    state = json.loads(state_file.read_text())
    new_keys = {k: v["key"] for k, v in state["steps"].items()}
    loaded, _ = recipes.load(recipe, [])
    for p in pipeline.plan(loaded, recipe, first):  # (the key as it was: paths as written)
        doc = {"step": p.step, "settings": result_settings(p.config),
               "inputs": pipeline.fingerprints(p, first)}
        state["steps"][p.label]["key"] = hashlib.sha256(
            json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()
    assert all(state["steps"][k]["key"] != v for k, v in new_keys.items())
    state_file.write_text(json.dumps(state))
    older = state_file.read_bytes()

    variant = tmp_path / "variant"
    code, out = cli("run", recipe, f"output={variant}", "--reuse-from", first)
    assert code == 0, out
    assert f"teacher: unchanged in {first}, copied" in out
    assert f"student: unchanged in {first}, copied" in out
    assert state_file.read_bytes() == older  # (read, never written)

    # moved since (a CI cache restored elsewhere), then run where it lies now
    moved = tmp_path / "restored" / "smoke"
    moved.parent.mkdir()
    first.rename(moved)
    code, out = cli("run", recipe, f"output={moved}")
    assert code == 0, out
    assert out.count("unchanged, reusing") == 2, out
    state = json.loads((moved / "pipeline.json").read_text())["steps"]
    assert {k: v["key"] for k, v in state.items()} == new_keys


def test_a_key_takes_out_the_places_of_the_run_and_of_inputs_whose_content_it_holds(
        tmp_path):
    """placeless: the run's folder as @run (not a folder whose name starts with it), an
    input's path as its role (a folder given with a trailing slash too, each item of a comma
    list, NAME=PATH with "=" in the run's name); an image table too, whose fingerprint holds
    the pictures it lists: other pictures are another key, the same ones elsewhere are not."""
    import shutil

    from edgetransfer.artifacts import fingerprint, sha256
    from edgetransfer.pipeline import placeless

    root = tmp_path / "runs" / "layers=2"
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.tsv").write_text("sentence\tlabel\ngood\t1\n")
    (data / "images.csv").write_text("image,label\na.png,cat\n")
    (data / "pictures").mkdir()
    inputs = {"train": str(data / "train.tsv"), "unlabeled": str(data / "train.tsv"),
              "test": str(data / "images.csv"), "latency_data": str(data / "pictures"),
              "teacher": str(root / "teacher")}
    settings = {
        "train": str(data / "train.tsv"), "unlabeled": str(data / "train.tsv"),
        "teacher": str(root / "teacher"), "other": f"{root}2/teacher",
        "candidate": [f"student={root}/student", f"x={data / 'train.tsv'}"],
        "prune_vocab": f"{data / 'train.tsv'},{data / 'train.tsv'}",
        "latency_data": f"{data / 'pictures'}/", "test": str(data / "images.csv"),
        "lr": 0.1, "name": "a=b"}
    assert placeless(settings, root, inputs) == {
        "train": "@train", "unlabeled": "@train", "teacher": "@run/teacher",
        "other": f"{root}2/teacher",
        "candidate": ["student=@run/student", "x=@train"],
        "prune_vocab": "@train,@train", "latency_data": "@latency_data",
        "test": "@test", "lr": 0.1, "name": "a=b"}
    (data / "a.png").write_bytes(b"one picture")
    table = fingerprint(str(data / "images.csv"))
    shutil.copytree(data, tmp_path / "elsewhere")
    assert fingerprint(str(tmp_path / "elsewhere" / "images.csv")) == table
    (data / "a.png").write_bytes(b"another picture")
    assert fingerprint(str(data / "images.csv")) != table
    text = fingerprint(str(data / "train.tsv"))  # (a text table: its own bytes alone)
    (data / "a.png").write_bytes(b"a third")
    assert fingerprint(str(data / "train.tsv")) == text
    table = fingerprint(str(data / "images.csv"))  # (the pictures it names, nothing else there:
    (data / "run" / "teacher").mkdir(parents=True)  # a run written beside them is none)
    (data / "run" / "teacher" / "model.safetensors").write_bytes(b"weights")
    (data / "b.png").write_bytes(b"a picture no row names")
    assert fingerprint(str(data / "images.csv")) == table
    (data / "images.csv").write_text("image,label\na.png,cat\nb.png,dog\n")
    assert fingerprint(str(data / "images.csv")) != table
    # a text table with a path column that names no picture: its own bytes, refused by no one
    (data / "notes.jsonl").write_text('{"text": "good", "label": 1, "path": ""}\n'
                                      '{"text": "bad", "label": 0, "path": "../elsewhere"}\n')
    assert fingerprint(str(data / "notes.jsonl")) == sha256(data / "notes.jsonl")


def test_reuse_from_a_folder_that_is_no_run_is_refused_before_anything_is_made(
        cli, tiny_backbone, data_dir, tmp_path):
    recipe = _recipe(tmp_path, tiny_backbone, data_dir, export=None, verify=None,
                     package=None)
    (tmp_path / "empty").mkdir()
    code, out = cli("run", recipe, "--reuse-from", tmp_path / "empty")
    assert code == 2
    assert f"--reuse-from {tmp_path / 'empty'}: no pipeline.json there" in out
    assert "Traceback" not in out and not (tmp_path / "models").exists()
    root = tmp_path / "models" / "smoke"
    root.mkdir(parents=True)
    (root / "pipeline.json").write_text('{"steps": {}}')
    code, out = cli("run", recipe, "--reuse-from", root)
    assert code == 2 and "is this run's own folder" in out


def test_the_teacher_cache_is_under_the_run_unless_the_recipe_or_an_override_names_one(
        tmp_path, monkeypatch):
    """distill.teacher_cache: written in the recipe, relative to it; as an override,
    relative to where the command runs (as output); unset, teacher-cache/ under the run."""
    from edgetransfer import pipeline
    from edgetransfer import recipe as recipes

    folder = tmp_path / "recipes"
    folder.mkdir()
    path = folder / "r.yaml"
    path.write_text(yaml.safe_dump({
        "name": "r", "task": "text-classification", "model": "minilm-l6",
        "data": {"train": "train.jsonl"}, "finetune": {"epochs": 1},
        "distill": {"student_layers": 2, "teacher_cache": "cache"}}))

    def cache(*overrides):
        loaded, _ = recipes.load(path, list(overrides))
        steps = {p.label: p for p in pipeline.plan(loaded, path, tmp_path / "out")}
        return Path(steps["student"].config.teacher_cache)

    assert cache() == folder / "cache"
    monkeypatch.chdir(tmp_path)
    assert cache("distill.teacher_cache=here") == tmp_path / "here"
    assert cache("distill.teacher_cache=") == tmp_path / "out" / "teacher-cache"
