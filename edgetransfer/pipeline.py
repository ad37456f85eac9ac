"""Run a recipe's steps in order, reusing every step whose inputs and settings are unchanged.

Each step is one stage's `run()` on a config built from the recipe section plus wiring
(the previous steps' output folders, the data files). A step's key is the sha256 of its
settings and of its inputs' fingerprints (data files by content, artifact folders by their
artifact.json, which lists every file's sha256); models/NAME/pipeline.json records each
finished step's key, so a re-run skips what would come out the same. The key holds no place:
the settings' paths into the run and to its inputs are hashed as @run/... and @ROLE, so a run
moved to another folder (a CI cache restored elsewhere), or read with its data somewhere else,
is still the run it was. An interrupted step left its `.NAME.partial` folder: the next run
resumes it (finetune, distill) or rebuilds it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from . import recipe as recipes
from . import registry
from .artifacts import MANIFEST, copy_file, fingerprint, write_json
from .errors import CheckFailed, ConfigError, EdgeTransferError, invalid_setting
from .options import COLUMNS, result_settings
from .records.references import Checkpoint, Reference
from .untrusted import clip, get_field, read_json

log = logging.getLogger(__name__)
STATE = "pipeline.json"
R = TypeVar("R", bound=Reference)
# the inputs that are plain files the user names (the rest: models, earlier steps)
FILE_ROLES = frozenset({"train", "validation", "test", "eval", "unlabeled", "calibration",
                        "latency_data", "baseline", "corpus", "corpus_unlabeled"})


@dataclass
class Planned:
    step: str  # a registered stage's name
    label: str  # the folder name under the recipe's root (teacher, onnx-int8, ...)
    config: object  # the stage's config
    inputs: dict[str, str] = field(default_factory=dict)  # role -> path
    key: str = ""
    folder: Path | None = None  # where the step's artifact lands [default: config.out]
    # where its settings are written in the recipe, for a step another stage's plan() adds
    # (distill.student_finetune) [default: the stage's own section], and where the ones the
    # pipeline wires are ({"model": "distill.student"})
    section: str | None = None
    wired_keys: dict[str, str] = field(default_factory=dict)
    # folders the step reads and adds to across runs, not its artifact (distill's teacher
    # cache): what `--reuse-from` copies the missing files of before the step runs
    shared: tuple[Path, ...] = ()
    # files the step writes next to its folder (package's archive and record)
    beside: tuple[Path, ...] = ()


TEACHER_CACHE = "teacher-cache"  # under a recipe run's root (Wiring.teacher_cache)


@dataclass
class Wiring:
    """What a stage's `plan(section, wiring)` reads: the recipe, its data files, and what
    the earlier steps will have made, by kind (records/references.py): `w.newest(Checkpoint)`,
    `w.all(OnnxModel)`. A stage asks only for the kinds its registry entry takes."""

    recipe: object
    recipe_file: Path
    root: Path
    files: dict
    model: str
    made: list[Reference] = field(default_factory=list)  # in plan order
    planning: registry.Stage | None = None  # the stage whose plan() is asking

    def all(self, kind: type[R]) -> list[R]:
        """Every `kind` the earlier steps make, in order (a Checkpoint: teachers and students)."""
        if self.planning is not None and not issubclass(kind, self.planning.takes or ()):
            # (a programming error: the entry is what refuses a recipe lacking the input)
            raise TypeError(f"stage {self.planning.name}: plan() asks for {kind.__name__}, "
                            f"which its registry entry does not take; add it to takes=")
        return [r for r in self.made if isinstance(r, kind)]

    def newest(self, kind: type[R]) -> R | None:
        return next(reversed(self.all(kind)), None)

    def model_of(self, kind: type[Checkpoint] = Checkpoint) -> str:
        """The newest `kind` of checkpoint's folder, else the recipe's model (a step on a model
        fine-tuned elsewhere)."""
        made = self.newest(kind)
        return str(made.folder) if made is not None else self.model

    @property
    def teacher_cache(self) -> Path:
        """Where a recipe's run keeps what its teacher computed, for the run's variants to
        reuse (distill's outputs, verify's predictions), unless the recipe names a place."""
        return self.root / TEACHER_CACHE

    def path(self, value: str) -> Path:
        """A path written in the recipe: relative to the recipe file's folder."""
        return recipes.resolve_path(self.recipe_file, value)

    def step_of(self, step: str, section, **where) -> dict:
        """A step of stage `step` (its module's `planned_step(section, wiring, **where)`)
        that another stage plans before its own: distill's student_finetune is a finetune
        step. Through the registry, since no stage imports another."""
        return registry.get(step).load().planned_step(section, self, **where)

    def model_path(self, value: str) -> str:
        """A model named in the recipe: a path relative to it where one is there, else a
        built-in name or hub id as written."""
        local = self.path(value)
        return str(local) if local.exists() else value

    def columns(self) -> dict:
        return {k: getattr(self.recipe.data, k) for k in COLUMNS}

    def splits(self) -> dict:
        return {k: self.files[k] for k in ("train", "validation", "test")}

    def corpus(self) -> dict:
        """The recipe's own text, what vocabulary pruning keeps by default: the training
        and unlabelled files (never the eval data), by input role."""
        return {k: v for k, v in (("corpus", self.files["train"]),
                                  ("corpus_unlabeled", self.files["unlabeled"])) if v}

    def model_config(self) -> dict | None:
        """The recipe's model's config.json, read as JSON alone (no torch: `validate` plans
        too), for checking settings against its size before any step runs (a teacher
        fine-tuned from it keeps its depth and positions); None where there is none to read
        here (a hub id, a model built on first use) or it is unreadable (the step that loads
        it says why)."""
        from .errors import EdgeTransferError
        from .modeling.backbones import BUILTIN, builtin_path

        try:
            # (an efficientnet-lite is converted to a folder on first use: that needs torch)
            folder = (builtin_path(self.model) if self.model in BUILTIN
                      and not self.model.startswith("efficientnet-lite") else Path(self.model))
            file = folder / "config.json"
            config = read_json(file) if file.is_file() else None
        except (EdgeTransferError, OSError):
            return None
        return config if isinstance(config, dict) else None

    def heads(self) -> list[str]:
        """The recipe's tasks: section as finetune's --head values (NAME=KIND:COLUMN:WEIGHT)."""
        from .tasks.joint import heads

        if not self.recipe.tasks:
            return []
        return [h.flag() for h in heads.parse_section(self.recipe.tasks,
                                                       f"{self.recipe_file}: tasks")]

    def head_files(self) -> dict[str, str]:
        """The recipe's heads' own data files, NAME:SPLIT -> path (a step's inputs)."""
        from .tasks.joint import heads

        return {f"{name}:{split}": recipes.data_path(self.recipe, self.recipe_file, file)
                for name, split, file in heads.section_files(self.recipe.tasks or {})}

    def head_data(self) -> list[str]:
        """head_files() as --head-data values (NAME:SPLIT=PATH)."""
        return [f"{key}={path}" for key, path in self.head_files().items()]

    def training_data(self) -> dict:
        """What the training steps share: the task, the labelled splits and how to read them
        (a joint model's: each head's own files too)."""
        d = self.recipe.data
        head_data = self.head_data()
        extra = {"head_data": head_data} if head_data else {}
        return extra | self.columns() | self.splits() | dict(
            task=self.recipe.task, label_names=d.label_names, train_sample=d.train_sample,
            max_length=d.max_length, image_size=d.image_size, overwrite=True)


def wiring(recipe, recipe_file: Path, root: Path) -> Wiring:
    """What the stages' `plan()` read: the recipe, its data files resolved, the model."""
    d = recipe.data
    files = {k: recipes.data_path(recipe, recipe_file, getattr(d, k))
             for k in ("train", "validation", "test", "eval", "unlabeled")}
    files["eval"] = files["eval"] or files["test"] or files["validation"]
    w = Wiring(recipe, Path(recipe_file), root, files, recipe.model)
    w.model = w.model_path(recipe.model)
    return w


def plan(recipe, recipe_file: Path, root: Path, w: Wiring | None = None) -> list[Planned]:
    """Every step the recipe asks for, with its wired config (nothing runs): each registered
    pipeline step the recipe has a section for, planned by its stage's `plan()`."""
    w = w or wiring(recipe, recipe_file, root)
    config = w.model_config() or {}
    limit = config.get("max_position_embeddings")
    if isinstance(limit, int) and not isinstance(limit, bool) and recipe.data.max_length > limit:
        raise ConfigError(f"{recipe_file}: data.max_length {recipe.data.max_length}: "
                          f"{recipe.model} takes at most {limit} tokens; lower it")
    steps: list[Planned] = []
    for stage in registry.steps():
        section = getattr(recipe, stage.name)
        if section is not None:
            steps += planned(stage.name, section, w)
    return steps


def planned(step: str, section, w: Wiring) -> list[Planned]:
    """One stage's steps for a recipe section (or a section made by a caller: search).

    Each step's settings are checked here, before the recipe's first step runs: the config's
    own bounds (a data value the recipe's data section allows may still be out of a stage's
    range) and the stage's `check_settings(cfg)`, of its settings alone; an error names
    the recipe key.
    """
    from pydantic import ValidationError

    stage = registry.get(step)
    _check_needs(stage, w)
    out = []
    with _recipe_names(stage, w.recipe_file):
        w.planning = stage
        try:
            items = list(stage.load().plan(section, w))
        finally:
            w.planning = None
    for item in items:
        # (an item may be a step of another stage, planned on its behalf: distill's
        # student_finetune is a finetune step; its settings' key says where they are written)
        own = registry.get(item.get("step", stage.name))
        keys = (item.get("section"), item.get("wired_keys") or {})
        with _recipe_names(own, w.recipe_file, *keys):
            try:
                cfg = own.config_class()(**item["config"])
            except ValidationError as e:
                raise invalid_setting(e, item["config"]) from None
            if hasattr(own.load(), "check_settings"):
                own.load().check_settings(cfg)
        out.append(Planned(own.name, item["label"], cfg, _existing(item["inputs"]),
                           folder=Path(item.get("folder") or cfg.out),
                           section=keys[0], wired_keys=keys[1],
                           shared=tuple(Path(f) for f in item.get("shared", ())),
                           beside=tuple(Path(f) for f in item.get("beside", ()))))
        w.made += _declared(own, item.get("makes", ()))
    return out


def _check_needs(stage, w: Wiring) -> None:
    """A step whose input no earlier step makes is refused before any step runs, naming
    the sections that would make it."""
    if stage.needs and not any(isinstance(r, stage.needs) for r in w.made):
        kinds = " or ".join(k.__name__ for k in stage.needs)
        sections = " or ".join(dict.fromkeys(f"`{s.name}:`" for kind in stage.needs
                                             for s in registry.makers(kind)))
        raise ConfigError(f"{w.recipe_file}: {stage.name}: no step before it makes the "
                          f"{kinds} it takes; add the section {sections}")


def _declared(stage, made) -> list[Reference]:
    """What a planned step makes, of the kinds its registry entry says it makes."""
    for r in made:
        if not isinstance(r, stage.makes or ()):
            raise TypeError(f"stage {stage.name}: plan() says a step makes "
                            f"{type(r).__name__}, which its registry entry does not make")
    return list(made)


class Steps:
    """A recipe's steps for a stage that runs other stages' steps (search), handed to it by
    its command: no module under stages/ imports the pipeline or the registry. The recipe is
    loaded and wired as `run` does; a step of any stage is planned from a recipe section's
    settings by that stage's own plan() (as the recipe's own are), and executed as `run`
    executes its steps (reused when unchanged, recorded in the recipe's pipeline.json)."""

    def __init__(self, recipe_file: Path, overrides=()):
        self.recipe_file = Path(recipe_file)
        self.recipe, _ = recipes.load(self.recipe_file, list(overrides))
        self.root = recipes.output_root(self.recipe, self.recipe_file)
        self.wiring = wiring(self.recipe, self.recipe_file, self.root)
        self.known: dict[tuple[str, str | None], str] = {}  # (fingerprints: execute's)

    def of_recipe(self, step: str) -> list[Planned]:
        """The recipe's own steps of stage `step` (none without its section), planned with
        the whole recipe: what they make is in `wiring` for the steps planned after; a step
        of that stage another stage plans (distill's student_finetune) is not among them."""
        if getattr(self.recipe, step, None) is None:
            return []
        everything = plan(self.recipe, self.recipe_file, self.root, self.wiring)
        # (of its own section: not one another stage plans, distill's student_finetune)
        return [p for p in everything if p.step == step and p.section is None]

    def from_section(self, step: str, settings: dict, *, label: str, folder: Path,
                     given: tuple[Reference, ...] = ()) -> Planned:
        """One step of stage `step` from recipe-section settings (one variant's, for a stage
        of variants), wired by the stage's own `plan()` as the recipe's section would be, into
        `folder`. `given`: what it takes beyond what the recipe's steps make (search's cut
        or distilled student: the newest Checkpoint). What it makes stays out of `wiring`:
        it is not the recipe's."""
        stage = registry.get(step)
        section = recipes.section(stage)(**settings)
        w = dataclasses.replace(self.wiring, made=[*self.wiring.made, *given])
        # (its own step: the last; a plan may put another stage's before it)
        p = planned(step, [section] if stage.variants else section, w)[-1]
        p.label, p.folder = label, Path(folder)
        p.config = p.config.model_copy(update={"out": p.folder})
        return p

    def execute(self, p: Planned, counter: str = "") -> bool:
        return execute(p, self.root, self.recipe_file, counter=counter, known=self.known)

    @staticmethod
    def call(step: str, **settings):
        """Stage `step`'s `run()` on a config of these settings (not a recipe step: search
        packages and times its candidates)."""
        stage = registry.get(step)
        return stage.load().run(stage.config_class()(**settings))


def handed(stage: registry.Stage) -> dict:
    """What a stage's entry is handed beyond its config, by the command and the API alike:
    `steps_of`, this module's Steps (recipe file, overrides -> its steps), to one that runs
    other stages' steps (search), since no module under stages/ imports the pipeline."""
    return {"steps_of": Steps} if stage.runs_steps else {}


def _existing(inputs: dict) -> dict:
    return {k: str(v) for k, v in inputs.items() if v}


@dataclass(frozen=True)
class Earlier:
    """`run --reuse-from DIR`: another run of a recipe (a variant's: another student, more
    epochs), whose finished steps this run copies where its own would come out the same,
    i.e. where DIR's pipeline.json records the step done with this run's key (its settings
    and its inputs' fingerprints: the copies of earlier steps fingerprint as the originals
    do). Copies, not links: each run may re-run its own steps; DIR is only read, and a
    symbolic link in what would be copied is refused."""

    root: Path
    state: dict

    @classmethod
    def of(cls, folder: Path, root: Path) -> Earlier:
        folder, root = folder.resolve(), root.resolve()
        if not (folder / STATE).is_file():
            raise ConfigError(f"--reuse-from {folder}: no {STATE} there; give the output "
                              f"folder of an earlier `edgetransfer run`")
        if folder == root or folder in root.parents or root in folder.parents:
            raise ConfigError(f"--reuse-from {folder}: is this run's own folder or holds it "
                              f"(or lies in it); give another run's output= folder")
        return cls(folder, _load_state(folder))

    def _source(self, path: Path, root: Path) -> Path | None:
        """`path` of this run as the earlier run has it (None: not under this run)."""
        try:
            return self.root / path.resolve().relative_to(root.resolve())
        except ValueError:
            return None

    def _unlinked(self, path: Path) -> Path:
        """`path` (in the earlier run), refused where it or a folder above it in the run is
        a symbolic link: what is copied stays inside DIR."""
        for p in (path, *path.parents):
            if p == self.root:
                return path
            if p.is_symlink():
                raise ConfigError(f"--reuse-from {self.root}: {p} is a symbolic link; a run's "
                                  f"folder holds none")
        return path

    def adopt(self, p: Planned, root: Path, prints: dict) -> bool:
        """Copy p's folder (and the files it writes beside it) from the earlier run where it
        finished p with p's key. `prints`: p's inputs' fingerprints (execute's)."""
        done = self.state["steps"].get(p.label, {})
        src = self._source(p.folder, root)
        besides = [(self._source(f, root), f) for f in p.beside]
        if (src is None or done.get("status") != "done" or not (src / MANIFEST).is_file()
                or not all(s is not None and s.is_file() for s, _ in besides)
                or not recorded_as(p, prints, root, done)):
            return False
        for path in (src, *src.rglob("*"), *(s for s, _ in besides)):
            self._unlinked(path)
        started = time.perf_counter()
        tmp = p.folder.parent / f".{p.folder.name}.copying"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            shutil.copytree(src, tmp, symlinks=True)  # (links refused above: none followed)
            for s, f in besides:
                copy_file(s, f)
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ConfigError(f"--reuse-from {self.root}: copying {src}: {e}") from None
        if p.folder.exists():  # (this run's own result of other settings: replaced, as a
            shutil.rmtree(p.folder)  # re-run of the step would replace it)
        tmp.rename(p.folder)
        state = _load_state(root)
        state["steps"][p.label] = {
            "step": p.step, "key": p.key, "status": "done", "out": str(p.folder),
            "wall_time_s": round(time.perf_counter() - started, 1), "copied_from": str(src),
            "copied_wall_time_s": done.get("wall_time_s")}  # (what it took to make there)
        write_json(root / STATE, state)
        return True

    def share(self, p: Planned, root: Path) -> None:
        """Before p runs: the files of its shared folders (distill's teacher cache) that the
        earlier run has and this one lacks, copied (each whole or not at all)."""
        for folder in p.shared:
            src = self._source(folder, root)
            if src is None or not src.is_dir():
                continue  # (a folder outside the run is shared by both already)
            self._unlinked(src)
            new = [f for f in sorted(src.iterdir()) if f.is_file() and not f.is_symlink()
                   and not f.name.startswith(".") and not (folder / f.name).exists()]
            folder.mkdir(parents=True, exist_ok=True)
            for f in new:
                copy_file(f, folder / f.name)
            if new:
                log.info("%s: %d file(s) of %s copied into %s", p.label, len(new), src, folder)


def fingerprints(p: Planned, root: Path, known: dict | None = None) -> dict[str, str]:
    """p's inputs by role -> their content identity (artifacts.fingerprint). `known`: the
    fingerprints of inputs outside the run computed for earlier steps of this invocation,
    taken as they are (no step writes outside its run, and several steps read the same data:
    an image table is hashed with every picture it names, seconds for 60,000 of them)."""
    column = getattr(p.config, "image_column", None)
    known = {} if known is None else known
    prints = {}
    for role, path in sorted(p.inputs.items()):
        if in_run(path, root):  # (an earlier step's artifact: written during this run)
            prints[role] = fingerprint(path, column)
            continue
        if (str(path), column) not in known:
            known[str(path), column] = fingerprint(path, column)
        prints[role] = known[str(path), column]
    return prints


def in_run(path: str, root: Path) -> bool:
    """Whether `path` lies in the run's folder `root` (or is it), lexically: as written."""
    here, norm = str(root), str(Path(path))  # (a folder given as DIR/ is DIR)
    return norm == here or norm.startswith(here + "/")


def step_key(p: Planned, root: Path, prints: dict[str, str] | None = None) -> str:
    """The sha256 of p's settings, their places taken out (placeless), and of its inputs'
    fingerprints (`prints`: computed already)."""
    return _key(p.step, placeless(result_settings(p.config), root, p.inputs),
                fingerprints(p, root) if prints is None else prints)


def placeless(settings: dict, root: Path, inputs: dict[str, str]) -> dict:
    """`settings` with where things lie taken out: a path under the run's folder becomes
    @run/REL, an input's path outside it @ROLE, its content being in the key by its
    fingerprint (an image table's with the pictures it lists); within a string too (verify's
    candidates are NAME=FOLDER, export's vocabulary corpus A,B)."""
    here = str(root)
    roles: dict[str, str] = {}
    for role, path in sorted(inputs.items()):  # (one file in two roles: the first names it)
        roles.setdefault(str(Path(path)), "@" + role)

    def place(path: str) -> str:
        if not path:
            return path
        norm = str(Path(path))  # (a folder given as DIR/ is DIR)
        if in_run(norm, root):
            return "@run" + norm[len(here):]
        return roles.get(norm, path)

    def swap(v: str) -> str:
        whole = place(v)
        if whole != v:
            return whole
        name, eq, rest = v.partition("=")  # (a name holds no "="; a folder may)
        if eq and place(rest) != rest:
            return name + eq + place(rest)
        return ",".join(place(x) for x in v.split(","))

    return _each_string(settings, swap)


def recorded_as(p: Planned, prints: dict[str, str], root: Path, done: dict) -> bool:
    """Whether `done` (a run's entry for p) records p's key: as keys are now, or as an older
    run wrote it (older_key)."""
    key = done.get("key")
    return isinstance(key, str) and (key == p.key or key == older_key(p, prints, root, done))


def older_key(p: Planned, prints: dict[str, str], root: Path, done: dict) -> str:
    """p's key as runs made before keys held no place (2026-12-04) recorded it: the settings'
    paths as written, under the folder that run had (`done`: its entry for p, whose `out` is
    where p's folder was: the run itself, moved since, or an earlier run --reuse-from reads).
    Such a run's steps are still reused, and their entries take the new key."""
    here, there = str(root), _root_then(p, root, done)
    return _key(p.step, _each_string(result_settings(p.config), lambda v: there if v == here
                                     else v.replace(here + "/", there + "/")), prints)


def _root_then(p: Planned, root: Path, done: dict) -> str:
    """The run's folder when it made `done`: its `out` less p's place in the run (the root
    itself where that cannot be told)."""
    out = done.get("out")
    try:
        rel = p.folder.relative_to(root).as_posix()
    except ValueError:
        return str(root)
    if not isinstance(out, str) or not Path(out).as_posix().endswith("/" + rel):
        return str(root)
    return out[:-len(rel) - 1]


def _each_string(v, change):
    """`v` (JSON: dicts, lists, scalars) with `change` applied to every string in it."""
    if isinstance(v, str):
        return change(v)
    if isinstance(v, list):
        return [_each_string(x, change) for x in v]
    if isinstance(v, dict):
        return {k: _each_string(x, change) for k, x in v.items()}
    return v


def _key(step: str, settings: dict, prints: dict[str, str]) -> str:
    doc = {"step": step, "settings": settings, "inputs": prints}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _load_state(root: Path) -> dict:
    f = root / STATE
    if not f.exists():
        return {"steps": {}}
    try:  # bounded (size, nesting), and of the shape written: {"steps": {label: {...}}}
        state = read_json(f)
        steps = get_field(state, "steps", dict, label=str(f))
        if not all(isinstance(v, dict) for v in steps.values()):
            raise ConfigError(f"{f}: a step's entry is not an object")
        return state
    except ConfigError as e:
        log.warning("%s; every step will be checked afresh", clip(e, 300))
        return {"steps": {}}


def run(recipe_file: Path, overrides: list[str] = (), *, from_step: str | None = None,
        force: bool = False, reuse_from: Path | None = None) -> Path:
    """Run the recipe; returns the artifact root (models/NAME). `reuse_from`: another run's
    folder, whose finished steps are copied where this run's would come out the same."""
    recipe, _ = recipes.load(recipe_file, overrides)
    root = recipes.output_root(recipe, recipe_file)
    steps = plan(recipe, recipe_file, root)
    if from_step and from_step not in {p.step for p in steps}:
        raise ConfigError(f"--from {from_step}: the recipe has no such step (steps: "
                          f"{', '.join(dict.fromkeys(p.step for p in steps))})")
    earlier = Earlier.of(Path(reuse_from), root) if reuse_from is not None else None
    root.mkdir(parents=True, exist_ok=True)
    _save_resolved(recipe, recipe_file, overrides, root)
    failure = None
    forced = force
    known: dict[tuple[str, str | None], str] = {}  # (fingerprints of the data: execute's)
    for i, p in enumerate(steps, 1):
        forced = forced or p.step == from_step
        try:
            execute(p, root, recipe_file, forced=forced, counter=f"{i}/{len(steps)}",
                    earlier=earlier, known=known)
        except CheckFailed as e:  # a gate: keep the evidence, report, then stop
            failure = e
            break
    from . import report

    report.write(root)
    if failure is not None:
        raise failure
    return root


def execute(p: Planned, root: Path, recipe_file: Path, *, forced: bool = False,
            counter: str = "", earlier: Earlier | None = None,
            known: dict | None = None) -> bool:
    """Run one planned step unless root/pipeline.json records it done with the same key
    (then False: reused), or `earlier` does (then False: copied from there). A failed gate
    is recorded, then raised. `known`: fingerprints of the data, shared by one invocation's
    steps (fingerprints)."""
    state = _load_state(root)
    out = p.folder
    prints = fingerprints(p, root, known)  # (once, for every key compared)
    p.key = step_key(p, root, prints)
    done = state["steps"].get(p.label, {})
    if (not forced and done.get("status") == "done" and (out / MANIFEST).exists()
            and recorded_as(p, prints, root, done)):
        if done["key"] != p.key:  # (an older run's entry: recorded as keys are now)
            done["key"] = p.key
            write_json(root / STATE, state)
        log.info("[%s] %s: unchanged, reusing %s", counter, p.label, out)
        return False
    if earlier is not None:
        if not forced and earlier.adopt(p, root, prints):
            log.info("[%s] %s: unchanged in %s, copied", counter, p.label, earlier.root)
            return False
        earlier.share(p, root)  # (keyed by content: right for a forced step too)
    partial = out.parent / f".{out.name}.partial"
    if hasattr(p.config, "resume"):
        # an interrupted step resumes from its newest complete checkpoint
        p.config = p.config.model_copy(update={"resume": partial.exists() and not forced})
    log.info("[%s] %s -> %s%s", counter, p.label, out,
             " (resuming)" if getattr(p.config, "resume", False) else "")
    state["steps"][p.label] = {"step": p.step, "key": p.key, "status": "running",
                               "started": time.time()}
    write_json(root / STATE, state)
    started = time.perf_counter()
    failure = None
    try:
        _run_step(p, recipe_file)
        status = "done"
    except CheckFailed as e:
        status, failure = "failed", e
    state = _load_state(root)  # (re-read: a step may be long; keep what others wrote)
    entry = state["steps"].setdefault(p.label, {"step": p.step, "key": p.key})
    entry.update(status=status, wall_time_s=round(time.perf_counter() - started, 1),
                 out=str(out))
    write_json(root / STATE, state)
    log.info("[%s] %s: %s in %.0f s", counter, p.label, status, entry["wall_time_s"])
    if failure is not None:
        raise failure
    return True


def _run_step(p: Planned, recipe_file: Path) -> None:
    """The stage's `run_step` where it has one (verify: its file in an artifact folder),
    else its `run`. An error about a setting names it as the recipe spells it."""
    stage = registry.get(p.step)
    module = stage.load()
    with _recipe_names(stage, recipe_file, p.section, p.wired_keys):
        getattr(module, "run_step", module.run)(p.config)


@contextlib.contextmanager
def _recipe_names(stage, recipe_file: Path, section: str | None = None,
                  wired_keys: dict | None = None):
    """An error about one of the stage's settings names it as the recipe spells it (under
    `section` where the step's settings are written there; `wired_keys`: where the wired
    ones are, for a step another stage planned)."""
    try:
        yield
    except EdgeTransferError as e:
        key = recipe_key(stage, e.setting, section, wired_keys) if e.setting else None
        if key and e.named_as is None:
            e.name_setting(f"{recipe_file}: {key}")
        remedy = recipe_key(stage, e.remedy, section, wired_keys) if e.remedy else None
        if remedy:
            e.name_remedy(f"set {remedy}: true in {recipe_file}")
        raise


def recipe_key(stage, setting: str, section: str | None = None,
               wired_keys: dict | None = None) -> str | None:
    """Where a stage's setting is written in a recipe: its section (`section`, else the
    stage's own), `wired_keys`' key for it, the data section or the top level; None for one
    the pipeline sets from an earlier step (a folder)."""
    if setting not in stage.config_class().model_fields:
        return None  # (a loader's word for a folder this step was handed, e.g. --model)
    if setting in (wired_keys or {}):
        return wired_keys[setting]
    if setting not in stage.wired:
        return f"{section or stage.name}.{setting}"
    if setting in recipes.DataSection.model_fields:
        return f"data.{setting}"
    if setting == "task" or (setting == "model" and stage.name == "finetune" and not section):
        return setting  # top-level keys (only finetune reads the recipe's model as such)
    return None


def _save_resolved(recipe, recipe_file: Path, overrides, root: Path) -> None:
    """The recipe as it ran: every default filled in, overrides applied."""
    import yaml

    doc = {"recipe": str(recipe_file), "overrides": list(overrides)} | \
        recipe.model_dump(mode="json")
    tmp = root / "recipe.resolved.yaml.tmp"
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    tmp.replace(root / "recipe.resolved.yaml")
