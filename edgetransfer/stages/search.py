"""Command `search`: the smallest, fastest student within a budget, found for the user.

Given a recipe (its teacher and data) and a budget ("latency=1ms size=5MB kept=0.97"), it
explores student depth x number format (int8 dynamic/static, int8 with 4-bit embedding
tables, int4) x vocabulary pruning; each candidate is an `export` of a distilled student,
measured on this CPU. What can be reused is: one teacher (the recipe's finetune step, as
`run` would make it), its outputs over the transfer set (distill --teacher-cache), one
distillation per depth, every finished step (pipeline.json keys: a rerun redoes nothing).

Early stopping: latency and size do not depend on the weights, so before a depth is
distilled its fastest format (pruned and not) and its smallest are exported from the
untrained cut student (the "probes"); a depth whose fastest misses the latency budget,
whose smallest misses the size budget, or (the goal being the fastest within budget) whose
fastest is slower than a candidate already within budget, is not distilled.

Why plain enumeration and not Optuna: the space is a few depths x four formats x pruning,
and its cost is the distillations, one per depth, which every format shares; a sampler
would save only exports (seconds each), and early stopping already skips the depths that
cannot win. Optuna's samplers pay off on spaces of dozens of continuous knobs.

Output (--out, default models/NAME/search): search.json (every candidate's figures, the
front, the best, the budget), search.md, search.png (the Pareto front), students/,
candidates/, and bundle/ + bundle.tar.gz for the best candidate within budget.

A search runs other stages' steps, so it is handed them: its command passes the pipeline's
`Steps` (the recipe loaded and wired, each step planned and executed as `run` does), and
this module imports neither the pipeline nor the registry, which sit above every stage
(tests/test_layers.py).
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .. import paths, platforms
from ..artifacts import write_json
from ..convert import quantize
from ..errors import BudgetMissed, CheckFailed, ConfigError, EdgeTransferError
from ..measure import floor
from ..options import MAX_THREADS, comma_list
from ..records import ExportReport
from ..search import budget as budgets
from ..search import judge, report, space
from ..untrusted import read_json

log = logging.getLogger(__name__)

HELP = """Search student depth x quantization x vocabulary pruning for the smallest, fastest
model within a budget; package the best.

\b
Example (the SST-2 recipe's teacher; every candidate's figures in search.json):
  edgetransfer search recipes/sst2-search.yaml --budget "latency=1ms size=5MB kept=0.97"

Exit codes: 0 a candidate met the budget (packaged); 7 none did (the report says which
constraint no candidate met and by how much); the recipe's own errors as `run`'s.
"""

# what a search keeps when none is asked: the fastest (an edge box's usual constraint)
PREFER = ("latency", "size", "accuracy")


class SearchConfig(BaseModel):
    """Settings of `edgetransfer search`; each description is the CLI help."""

    model_config = ConfigDict(extra="forbid")

    budget: str = Field(description="The constraints, e.g. \"latency=1ms size=5MB kept=0.97\": "
                        "batch-1 p50 on this CPU, the bundle's model + tokenizer gzipped, the "
                        "share of the teacher's task metric kept; any may be left out.")
    depths: list[int] = Field([1, 2, 3], description="Student depths (teacher layers kept) to "
                              "explore, comma-separated.")
    formats: list[str] = Field(list(space.FORMATS),
                               description="Number formats to explore: int8-dynamic, "
                               "int8-static, int8-int4emb (int8 layers, 4-bit embedding "
                               "tables), int4.")
    prune: list[bool] = Field([False, True], description="Vocabulary pruning to explore: no, "
                              "yes or both (no,yes); the corpus is the recipe's training plus "
                              "unlabelled text.")
    min_count: int = Field(1, ge=1, description="Vocabulary pruning: keep tokens the corpus "
                           "uses at least this many times.")
    prefer: Literal["latency", "size", "accuracy"] = Field(
        "latency", description="Which candidate within budget is the best: the fastest, the "
        "smallest or the most accurate.")
    early_stop: bool = Field(True, description="Skip distilling depths that cannot reach the "
                             "budget or beat a candidate already within it (probed untrained: "
                             "latency and size do not depend on the weights).")
    threads: int = Field(1, ge=1, le=MAX_THREADS, description="onnxruntime (and torch) "
                         "threads for every "
                         "latency figure.")
    device: str | None = Field(None, description="Time every candidate (and probe) on this "
                               "device over SSH, as `edgetransfer device` does: "
                               "ssh://user@host[:port] or a Host alias of your ssh config; "
                               "the metric and size stay this machine's figures [default: this "
                               "CPU].")
    remote_python: str | None = Field(None, description="--device: a Python on the device "
                                      "that already has the bundle's requirements [default: "
                                      "a venv made there].")
    target: Literal[tuple(platforms.PLATFORMS)] | None = Field(
        None, description="--device: the device's platform, the bundles' --target [default: "
        "this machine's].")
    out: Path | None = Field(None, description="Output folder [default: the recipe's "
                             "models/NAME/search].")
    package: bool = Field(True, description="Package the best candidate within budget.")

    @field_validator("depths", "formats", "prune", mode="before")
    @classmethod
    def _lists(cls, v, info):
        v = comma_list(v)
        if info.field_name == "prune" and v is not None:
            words = {"yes": True, "no": False, "true": True, "false": False}
            return [x if isinstance(x, bool) else words.get(str(x).lower(), x) for x in v]
        return v


def main(cfg: SearchConfig, recipe: list[str], steps_of) -> Path:
    """The command: RECIPE [KEY=VALUE]... then the options. `steps_of(recipe_file,
    overrides)`: a recipe's steps, planned and run as `run` does (pipeline.Steps), handed by
    the command, since a search runs other stages' steps and no stage imports the pipeline
    (tests/test_layers.py)."""
    if not recipe:
        raise ConfigError("search: give the recipe, e.g. edgetransfer search "
                          "recipes/sst2-search.yaml --budget \"latency=1ms kept=0.97\"")
    return run(cfg, Path(recipe[0]), list(recipe[1:]), steps_of=steps_of)


def run(cfg: SearchConfig, recipe_file: Path, overrides: list[str] = (), *, steps_of) -> Path:
    """The search; `steps_of(recipe_file, overrides)`: the recipe loaded and wired, whose
    steps plan and run each step (the teacher, a student per depth, a candidate's export)."""
    from ..records.references import Teacher

    started = time.perf_counter()
    budget = budgets.parse(cfg.budget)
    variants = space.variants(cfg.depths, cfg.formats, cfg.prune)
    steps = steps_of(recipe_file, overrides)
    root, w = steps.root, steps.wiring
    out = Path(cfg.out or root / "search")
    _check_data(w, variants)
    _check_options(cfg, w, out)
    root.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)

    # 1. the teacher: the recipe's finetune step (reused when done), else the recipe's model
    for p in steps.of_recipe("finetune"):
        steps.execute(p, counter="teacher")
    teacher = w.model_of(Teacher)
    reference = _teacher_figures(teacher, w, cfg, out)
    log.info("teacher %s: %s %.4f, p50 %.3f ms at batch 1", teacher, reference["metric"],
             reference["value"], reference["p50_ms"])

    state = {"budget": budget.as_dict(), "prefer": cfg.prefer, "teacher": reference,
             "recipe": str(recipe_file), "overrides": list(overrides),
             "space": {"depths": cfg.depths, "formats": cfg.formats, "prune": cfg.prune,
                       "min_count": cfg.min_count},
             "timed_on": cfg.device or "this CPU",
             "candidates": [], "probes": {}, "distilled": {}}
    by_depth: dict[int, list] = {}
    for v in variants:
        by_depth.setdefault(v.depth, []).append(v)
    for depth, group in by_depth.items():
        skip = (_probe(depth, group, teacher, steps, cfg, budget, state, out)
                if cfg.early_stop else None)
        if skip:
            log.info("%d-layer student: not distilled (%s)", depth, skip)
            state["candidates"] += [_stopped(v, skip) for v in group]
            report.write(state, out, budget)
            continue
        student, wall = _distill(depth, steps, out)
        state["distilled"][str(depth)] = {"folder": str(student), "wall_s": wall}
        for v in group:
            state["candidates"].append(_candidate(v, student, steps, cfg, reference, budget,
                                                  out))
            report.write(state, out, budget)
    state["wall_time_s"] = round(time.perf_counter() - started, 1)
    best = judge.best(state["candidates"], cfg.prefer)
    state["best"] = best["name"] if best else None
    if best and cfg.package:
        state["bundle"] = _package(best, out, cfg, steps)
    report.write(state, out, budget)
    log.info("wrote %s (%d candidates, %.0f s)", out / "search.json", len(state["candidates"]),
             state["wall_time_s"])
    if best is None:
        raise BudgetMissed(f"search: no candidate met the budget ({cfg.budget}): "
                           f"{judge.closest(state['candidates'], budget)}; see {out / 'search.md'}")
    return out


def _check_data(w, variants) -> None:
    """The recipe's data can score the candidates, and apart from the pruning corpus."""
    if not w.files["eval"]:
        raise ConfigError(f"{w.recipe_file}: data has no test or validation split to score "
                          f"candidates on")
    if any(v.prune for v in variants) and paths.find_same(w.files["eval"],
                                                          w.corpus().values()) is not None:
        raise ConfigError(f"{w.recipe_file}: the eval data is also the pruning corpus; give "
                          f"a test split")


def _check_options(cfg: SearchConfig, w, out: Path) -> None:
    """Every option that the teacher or a device decides, checked before the teacher is
    trained or timed (minutes): named as the command line spells it."""
    depth = _teacher_depth(w)
    given = ",".join(str(d) for d in cfg.depths)
    if depth is not None and depth < 2:
        raise ConfigError(f"--depths {given}: the teacher has {depth} layer; no student is "
                          f"shallower, so there is nothing to search")
    if any(d < 1 or (depth is not None and d >= depth) for d in cfg.depths):
        raise ConfigError(f"--depths {given}: " + (
            f"the teacher has {depth} layers; give "
            f"{'1' if depth == 2 else f'1..{depth - 1}'}" if depth is not None
            else "a student keeps at least 1 layer; give 1 or more"))
    if cfg.device:
        from ..device import ssh

        ssh.parse(cfg.device)  # (the address refused now, not at the first candidate)
    elif cfg.remote_python:
        raise ConfigError(f"--remote-python {cfg.remote_python}: goes with --device (a Python "
                          f"on the device); give --device, or leave it out")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file; give a folder")


def _teacher_depth(w) -> int | None:
    """The layers of the search's teacher, from config.json alone (the teacher is the
    recipe's model, fine-tuned or as it is: the same depth); None where not known here (a
    CNN's blocks, a model the teacher's own step will have to explain)."""
    from ..errors import EdgeTransferError
    from ..modeling import architectures, backbones

    config = w.model_config()
    if config is None:  # (a hub id: its config.json is fetched, not read)
        try:
            config = backbones.resolve(w.model).config
        except EdgeTransferError:
            return None
    if config.get("model_type") in architectures.CNNS:
        return None  # (a search cuts transformer layers)
    return architectures.layer_count_of(config)


def _teacher_figures(teacher: str, w, cfg, out: Path) -> dict:
    """The teacher's task metric on the eval data and its batch-1 p50 (PyTorch, as the
    speed-ups are counted), cached beside the search by the teacher's manifest."""
    from ..artifacts import fingerprint

    # the figures hold for this teacher, these eval texts and this token limit, scored as
    # its bundle would answer (measure/shipped.py, as export scores the candidates)
    key = ":".join([fingerprint(teacher), fingerprint(w.files["eval"]),
                    str(w.recipe.data.max_length), "as-bundled"])
    cache = out / "teacher.json"
    if cache.exists():
        try:  # (a damaged cache is no cache: the teacher is timed again)
            saved = read_json(cache)
        except EdgeTransferError as e:
            log.warning("%s; timing the teacher again", e)
            saved = {}
        if saved.get("key") == key and saved.get("threads") == cfg.threads:
            return saved
    from ..measure import runners

    # (the timing runs on --threads; the distillations after it need every core back)
    with runners.threads_restored():
        return _time_teacher(teacher, w, cfg, cache, key)


def _time_teacher(teacher, w, cfg, cache: Path, key: str) -> dict:
    from ..measure import latency, runners, scoring, shipped

    runner = runners.load(teacher, threads=cfg.threads, provider="CPUExecutionProvider",
                          task=w.recipe.task)
    task = runner.task
    options = _columns(w)
    ds = task.read_eval(w.files["eval"], runner.label_names, options)
    value = shipped.score(task, shipped.of_runner(runner), ds, runner.label_names,
                          w.recipe.data.max_length)
    singles = scoring.singles(task, runner.preprocessor, ds, w.recipe.data.max_length, 64)
    lat = latency.measure(runner.run, singles, warmup=10, iterations=200)
    figures = {"key": key, "folder": str(teacher), "metric": task.primary, "value": value,
               "p50_ms": lat["p50_ms"], "p90_ms": lat["p90_ms"], "threads": cfg.threads,
               "task": task.name}
    write_json(cache, figures)
    return figures


def _columns(w):
    """The recipe's column settings as the task readers take them (attributes)."""
    from types import SimpleNamespace

    return SimpleNamespace(**w.columns(), max_length=w.recipe.data.max_length)


def _probe(depth, group, teacher, steps, cfg, budget, state, out) -> str | None:
    """Why this depth cannot win (None: distil it). Exports the untrained cut student in the
    formats expected fastest (pruned and not: pruning moves latency either way by a few
    percent) and smallest, and judges the depth by the best measured of each."""
    speed = sorted(group, key=_speed_rank)
    fastest = [v for v in speed if v.format == speed[0].format]  # (with and without pruning)
    smallest = min(group, key=_size_rank)
    shape = out / "probes" / f"{depth}L"
    _cut(teacher, depth, shape)
    probes = {}
    for v in dict.fromkeys([*fastest, smallest]):
        probes[v.name] = _export(v, str(shape), out / "probes" / v.name, steps, cfg,
                                 probe=True)
    state["probes"][str(depth)] = probes
    best = judge.best(state["candidates"], "latency")
    fast_name = min(fastest, key=lambda v: probes[v.name]["p50_ms"]).name
    fast, small = probes[fast_name], min(probes.values(), key=lambda f: f["bundle_bytes"])
    small_name = next(n for n, f in probes.items() if f is small)
    if budget.latency_ms is not None and fast["p50_ms"] > budget.latency_ms:
        return (f"its fastest format, {fast_name}, takes {fast['p50_ms']:.3f} ms untrained, "
                f"over the {budget.latency_ms} ms budget")
    if budget.size_mb is not None and small["bundle_bytes"] / 1e6 > budget.size_mb:
        return (f"its smallest format, {small_name}, is {small['bundle_bytes'] / 1e6:.2f} "
                f"MB, over the {budget.size_mb} MB budget")
    if cfg.prefer == "latency" and best is not None and fast["p50_ms"] > best["p50_ms"]:
        return (f"its fastest format takes {fast['p50_ms']:.3f} ms, slower than "
                f"{best['name']} ({best['p50_ms']:.3f} ms), already within budget")
    return None


# Which format is smallest, as measured on SST-2 at 1-3 layers (bench/RESULTS.md "Search"):
# int4 then int8 with 4-bit tables the smallest; int8-static the largest (its embedding
# table stays fp32). The fastest: convert.quantize.FASTEST_FIRST.
SIZE_ORDER = ("int4", "int8-int4emb", "int8-dynamic", "int8-static")


def _speed_rank(v) -> tuple:
    # (4-bit embedding tables cost int8 latency: GatherBlockQuantized, bench/RESULTS.md)
    mode, int4_embeddings = space.FORMATS[v.format]
    return (quantize.FASTEST_FIRST.index(mode), int4_embeddings, v.prune)


def _size_rank(v) -> tuple:
    return (not v.prune, SIZE_ORDER.index(v.format))


def _cut(teacher: str, depth: int, folder: Path) -> None:
    """The untrained student of `depth` layers (the teacher's, spread), saved for probing;
    kept while the teacher is the same."""
    from .. import tasks
    from ..artifacts import fingerprint
    from ..modeling import architectures, backbones, students

    key = f"{fingerprint(teacher)}:{depth}"
    if (folder / "teacher.key").exists() and (folder / "teacher.key").read_text() == key:
        return  # (this teacher's cut, made before)
    bb = backbones.resolve(teacher)
    task = tasks.resolve(None, config=bb.config, where=teacher)
    model = backbones.load_trained(bb, task)
    keep = students.spread_layers(architectures.layer_count(model), depth)
    student = students.from_teacher_layers(model, keep)
    tmp = folder.parent / f".{folder.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    student.save_pretrained(tmp, safe_serialization=True)
    task.load_preprocessor(bb).save_pretrained(tmp)
    (tmp / "teacher.key").write_text(key)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.replace(folder)


def _distill(depth, steps, out) -> tuple[str, float]:
    """One distillation per depth of the recipe's teacher: the recipe's distill settings (or
    the defaults) with this depth, the teacher's outputs shared through the cache; reused
    when done."""
    recipe = steps.recipe
    base = recipe.distill.model_dump() if recipe.distill is not None else {}
    # (cut from the teacher: no other student, nor its own fine-tune)
    p = steps.from_section("distill", base | {
        "student_layers": depth, "keep_layers": None, "student": None,
        "student_finetune": None, "teacher_cache": str(out / "cache")},
        label=f"search-student-{depth}L", folder=out / "students" / f"{depth}L")
    began = time.perf_counter()
    steps.execute(p, counter=f"student {depth}L")
    return str(p.folder), round(time.perf_counter() - began, 1)


def _export(v, model: str, folder: Path, steps, cfg, probe: bool = False) -> dict:
    """Export `model` as variant `v` into `folder`, as a pipeline step (reused when its key,
    settings and inputs' contents, is unchanged), and read its figures."""
    steps.execute(_export_step(v, model, folder, steps, cfg, probe), counter=v.name)
    record = ExportReport.read(folder / ExportReport.FILE,
                               fix="remove the folder to export it again")
    figures = {"folder": str(folder), "size_bytes": record.size_bytes,
               "bundle_bytes": budgets.bundle_bytes(folder),
               "p50_ms": record.latency_batch1.p50_ms, "p90_ms": record.latency_batch1.p90_ms,
               "value": record.score(), "vocab": record.vocab, "timed_on": "this CPU"}
    if cfg.device:
        figures = _on_device(figures, folder, steps, cfg)
    return figures


def _export_step(v, model: str, folder: Path, steps, cfg, probe: bool = False):
    """Variant `v` of `model` as a recipe's `export:` variant would say it, planned by
    export's own plan() on a wiring whose newest checkpoint is `model` (its calibration, eval
    data, corpus, columns and token limit wired there, as for the recipe's own steps)."""
    from ..convert.vocab_pruning import RECIPE_CORPUS
    from ..records.references import Student

    section = v.export_settings() | dict(
        prune_vocab=RECIPE_CORPUS if v.prune else None, min_count=cfg.min_count,
        threads=cfg.threads,
        # the budget's kept judges accuracy; an untrained probe is timed, not judged
        max_accuracy_drop=100.0, min_agreement=1e-9 if probe else None)
    return steps.from_section("export", section, given=(Student(folder=model),),
                              folder=folder,
                              label=f"search-{folder.parent.name}-{folder.name}")


def _on_device(figures: dict, folder: Path, steps, cfg) -> dict:
    """The candidate's latency on --device: packaged (unverified: the search judges it),
    then timed there by the device stage on the eval texts; this CPU's figures kept aside."""
    bundle = folder.parent / f".{folder.name}-bundle"
    steps.call("package", model=folder, out=bundle, unverified=True, overwrite=True,
               measure=False, target=cfg.target)
    archive = bundle.parent / f"{bundle.name}.tar.gz"
    report = steps.call("device", bundle=archive, device=cfg.device,
                        remote_python=cfg.remote_python,
                        latency_data=Path(steps.wiring.files["eval"]), threads=cfg.threads,
                        out=folder / "device.json")
    shutil.rmtree(bundle, ignore_errors=True)
    archive.unlink(missing_ok=True)
    return figures | {"host_p50_ms": figures["p50_ms"], "host_p90_ms": figures["p90_ms"],
                      "p50_ms": report["latency"]["p50_ms"],
                      "p90_ms": report["latency"]["p90_ms"],
                      "timed_on": f"{cfg.device} ({report['host']['machine']})"}


def _candidate(v, student, steps, cfg, reference, budget, out) -> dict:
    entry = {"name": v.name, "depth": v.depth, "format": v.format, "prune": v.prune}
    try:
        figures = _export(v, student, out / "candidates" / v.name, steps, cfg)
    except (CheckFailed, floor.DegenerateModel) as e:
        # a parity or pruning gate, or a student at chance (measure/floor.py): recorded,
        # the search goes on
        log.warning("%s: %s", v.name, e)
        return entry | {"status": "failed", "reason": str(e)}
    entry |= figures | {"status": "evaluated"}
    entry["kept"] = round(figures["value"] / reference["value"], 4) if reference["value"] else None
    # over the PyTorch teacher on this CPU (torch does not run on the device's bundle)
    entry["speedup"] = round(reference["p50_ms"] / figures.get("host_p50_ms",
                                                               figures["p50_ms"]), 2)
    entry["misses"] = budget.misses(entry)
    entry["within_budget"] = not entry["misses"]
    log.info("%-28s %s %.4f (kept %.3f)  p50 %.3f ms  %.2f MB  %s", v.name,
             reference["metric"], figures["value"], entry["kept"], figures["p50_ms"],
             figures["bundle_bytes"] / 1e6,
             "within budget" if entry["within_budget"] else "misses " +
             ", ".join(entry["misses"]))
    return entry


def _stopped(v, reason: str) -> dict:
    return {"name": v.name, "depth": v.depth, "format": v.format, "prune": v.prune,
            "status": "stopped", "reason": reason}


def _package(best: dict, out: Path, cfg, steps) -> dict:
    bundle = out / "bundle"
    steps.call("package", model=Path(best["folder"]), out=bundle, unverified=True,
               overwrite=True, target=cfg.target)
    archive = bundle.parent / f"{bundle.name}.tar.gz"
    return {"folder": str(bundle), "archive": str(archive),
            "archive_bytes": archive.stat().st_size if archive.exists() else None}
