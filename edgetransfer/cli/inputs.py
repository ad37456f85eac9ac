"""The files and folders a command names to read, checked before its stage starts: the
stages load torch (seconds) before they reach their own checks, and a mistyped path should
not cost that wait.

Only what can only be a local path is checked here (a hub dataset or model id is the
stage's to fetch); the stages still check everything themselves, for recipes and the
Python API. Path-typed options (bundles, records) are the stages' own first check already.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError, ModelError

# Options naming data: a local CSV/TSV/JSONL/Parquet/CoNLL file or image folder, or a hub
# dataset id (data.splits.is_local tells them apart, as the readers do)
DATA = ("train", "validation", "test", "eval_data", "calibration_data", "unlabeled", "data")
# Options naming comma-separated data files (--prune-vocab's corpus)
DATA_LISTS = ("prune_vocab",)
# Options naming a checkpoint: a local folder, a built-in name or a hub id
# (modeling.backbones.is_path tells a path from a hub id, as resolve does)
MODELS = ("model", "teacher", "student")


def check(cfg) -> None:
    """Refuse (one line, exit 2) a data file or checkpoint folder that does not exist."""
    from ..data.splits import is_local
    from ..modeling.backbones import BUILTIN, is_path

    values = cfg.model_dump()
    for name in DATA + DATA_LISTS:
        value = values.get(name)
        if not isinstance(value, str):
            continue
        specs = [v.strip() for v in value.split(",")] if name in DATA_LISTS else [value]
        for spec in specs:
            if spec and is_local(spec) and not Path(spec).exists():
                raise DataError(f"{_flag(name)} {spec}: no such file; check the path")
    for name in MODELS:
        value = values.get(name)
        if (isinstance(value, str) and value not in BUILTIN and is_path(value)
                and not Path(value).exists()):
            raise ModelError(f"{_flag(name)} {value}: no such folder; give a local HF folder, "
                             f"a hub id, or one of {sorted(BUILTIN)}")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")
