"""The output folder of a training run: checked before slow work, resumed only as it was.

Shared by the training stages (finetune, distill) so neither imports the other.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..artifacts import OutputFolder
from ..errors import OutputError
from ..options import RUN_CONTROL
from .training import is_main_process, world_size


def output_folder(cfg, sources: dict, models, extra_inputs=()) -> OutputFolder:
    """The stage's OutputFolder, checked now (before slow work) by the first process alone.

    `sources`: the data files read; `models`: the Backbones read; neither may be written.
    """
    inputs = [Path(p) for p in [*sources.values(), *extra_inputs] if Path(p).exists()]
    inputs += [Path(m.source) for m in models if m.local]
    out = OutputFolder(cfg.out, overwrite=cfg.overwrite, resume=cfg.resume, inputs=tuple(inputs))
    will_resume = out.check() if is_main_process() else False
    if will_resume:
        check_resume_settings(out.work / "settings.json", cfg)
    return out


def run_settings(task, data, placement) -> dict:
    """What settings.json records of the task, the data and where training ran."""
    return {
        "task": task.name,
        "columns": data.columns,
        "label_names": data.label_names,
        "rows": {k: len(v) for k, v in data.splits.items()},
        "device": placement.device,
        "precision": placement.precision,
        "processes": world_size(),
    }


def check_resume_settings(path: Path, cfg) -> None:
    """A resumed run continues the same computation: same settings, same process count."""
    if not path.exists():
        return
    from ..untrusted import read_json

    before = read_json(path, error=OutputError, fix="pass --overwrite to start over")
    if before.get("processes", 1) != world_size():
        raise OutputError(
            f"--resume: the interrupted run used {before.get('processes', 1)} process(es), this "
            f"one {world_size()}: batches and steps would differ; resume with the same "
            f"number, or pass --overwrite")
    old = before.get("config", {})
    old = old if isinstance(old, dict) else {}
    new = json.loads(cfg.model_dump_json())
    changed = sorted(k for k in set(old) | set(new)
                     if k not in RUN_CONTROL and old.get(k) != new.get(k))
    if changed:
        raise OutputError(
            f"--resume: the interrupted run used other settings ({', '.join(changed)}); "
            f"rerun with the same ones, or pass --overwrite to start over"
        )
