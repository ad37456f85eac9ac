"""What differs by network architecture (not by task), asked in one place: the stages and the
training code call these functions and never test a model type themselves.

A transformer needs none of it (every function falls through to the generic behaviour); a
CNN of transformers' EfficientNet family brings its own module (efficientnet_lite) for how
its blocks are counted and cut, its fresh initialisation, the weights that must stay frozen,
and the form it is exported in. A new architecture is one module and one entry in CNNS.
"""

from __future__ import annotations

import importlib
from pathlib import Path

# config.model_type -> the module of this package that knows that architecture
CNNS = {"efficientnet": "efficientnet_lite"}


def _module(model_or_config):
    config = getattr(model_or_config, "config", model_or_config)
    name = CNNS.get(getattr(config, "model_type", None))
    return importlib.import_module(f"{__package__}.{name}") if name else None


def is_cnn(model_or_config) -> bool:
    return _module(model_or_config) is not None


def layer_count(model) -> int | None:
    """The repeated blocks: transformer layers, or a CNN's blocks."""
    arch = _module(model)
    return len(arch.blocks(model)) if arch else getattr(model.config, "num_hidden_layers", None)


def layer_count_of(config: dict) -> int | None:
    """`layer_count` from a checkpoint's config.json alone (nothing loaded); None where the
    config does not say."""
    from types import SimpleNamespace

    from ..errors import ModelError
    from .backbones import check_config

    try:  # (a config out of its bounds, 1e300 blocks say, is the loading step's to name)
        check_config(config, Path("config.json"))
        blocks = stages(SimpleNamespace(**config))
    except (AttributeError, TypeError, ValueError, ModelError):  # (a CNN's lacking its shape)
        return None
    n = len(blocks) if blocks is not None else config.get("num_hidden_layers")
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else None


def stages(config) -> list[int] | None:
    """A CNN's stage of each block (where a student may be cut); None for a transformer."""
    arch = _module(config)
    return arch.stage_of_blocks(config) if arch else None


def initialise(model) -> None:
    """Fresh weights the architecture trains from (a model built from its config alone);
    transformers' own init stands for the others."""
    arch = _module(model)
    if arch:
        arch.initialise(model)


def keep_fixed(model) -> int:
    """Freeze the weights the architecture needs unchanged while training (a Lite model's
    neutral squeeze-excites); how many modules were frozen."""
    arch = _module(model)
    return arch.freeze_neutral(model) if arch else 0


def export_form(model):
    """The in-memory form to export (a copy where that helps int8), or `model` itself."""
    arch = _module(model)
    return arch.export_form(model) if arch else model
