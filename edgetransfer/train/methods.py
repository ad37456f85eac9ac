"""Which weights a fine-tuning run updates: full, LoRA (peft) or the head only, plus frozen layers.

LoRA runs are merged back into a plain checkpoint, so later stages never need peft; the merge
is checked (merged outputs must equal the adapter model's outputs) because a merge that
silently changes outputs is a known peft pain, e.g. with a classifier in modules_to_save.
"""

from __future__ import annotations

import logging
import re

from ..errors import CheckFailed, ConfigError
from ..modeling import architectures, heads

log = logging.getLogger(__name__)

METHODS = ("full", "lora", "head")
# Matches the block index in module names: bert "encoder.layer.3.", llama "layers.3.", gpt2 "h.3."
LAYER_INDEX = re.compile(r"\.(?:layer|layers|h|block|blocks)\.(\d+)\.")


def layer_of(name: str) -> int | None:
    m = LAYER_INDEX.search("." + name + ".")
    return int(m.group(1)) if m else None


def block_linear_names(model) -> list[str]:
    """Short names of the Linear modules inside the blocks (LoRA candidates); a CNN without
    any: its pointwise (1x1, ungrouped) convolutions, which peft's LoRA adapts like Linear
    layers. Depthwise convolutions are left out (peft takes a grouped convolution only at a
    rank divisible by its groups, and cannot merge it), and so are neutral squeeze-excites."""
    import torch

    names, convs = set(), set()
    for full, module in model.named_modules():
        if layer_of(full) is None:
            continue
        if isinstance(module, torch.nn.Linear):
            names.add(full.split(".")[-1] if not full.endswith(".dense")
                      else ".".join(full.split(".")[-2:]))
        elif (isinstance(module, torch.nn.Conv2d) and module.groups == 1
              and module.kernel_size == (1, 1) and ".squeeze_excite." not in f".{full}."):
            convs.add(full.split(".")[-1])
    return sorted(names or convs)


def keep_batchnorm_frozen(model) -> int:
    """Put BatchNorm layers whose weights are all frozen in eval mode for good.

    Frozen features must stay the features the weights were trained with: in train mode a
    BatchNorm normalises by each batch's statistics and drifts its running ones, so a "frozen"
    block would still change. The Trainer calls model.train() every step, so the modules'
    class is swapped for one whose train() keeps eval (state_dict keys are unchanged).
    Returns how many were kept frozen.
    """
    import torch

    n = 0
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d) and not any(
                p.requires_grad for p in module.parameters()):
            module.__class__ = _frozen_class(type(module))
            module.eval()
            n += 1
    return n


_FROZEN: dict = {}


def _frozen_class(cls):
    if getattr(cls, "_keeps_eval", False):
        return cls
    if cls not in _FROZEN:
        def train(self, mode: bool = True):
            return super(frozen, self).train(False)

        frozen = type(f"Frozen{cls.__name__}", (cls,), {"train": train, "_keeps_eval": True})
        _FROZEN[cls] = frozen
    return _FROZEN[cls]


def all_linear_names(model) -> list[str]:
    import torch

    return sorted({n.split(".")[-1] for n, m in model.named_modules()
                   if isinstance(m, torch.nn.Linear)})


def freeze_lower(model, n_layers: int) -> None:
    """Freeze the embeddings and the lowest `n_layers` blocks."""
    if n_layers <= 0:
        return
    total = architectures.layer_count(model)
    if total is not None and n_layers > total:
        raise ConfigError(f"--freeze-layers {n_layers}: the model has only {total} layers")
    frozen = 0
    for name, p in model.named_parameters():
        layer = layer_of(name)
        if "embeddings" in name or (layer is not None and layer < n_layers):
            p.requires_grad_(False)
            frozen += p.numel()
    log.info("froze the embeddings and layers 0..%d (%.1fM parameters)", n_layers - 1, frozen / 1e6)
    if keep_batchnorm_frozen(model):
        log.info("their BatchNorm layers stay in eval mode (frozen statistics)")


def apply(model, method: str, new_modules: list[str], *, peft_task_type: str,
          freeze_layers: int = 0, lora_r: int = 8, lora_alpha: int = 16,
          lora_dropout: float = 0.1, lora_targets: list[str] | None = None):
    """Return the model to train, with only the chosen parameters trainable."""
    if method not in METHODS:
        raise ConfigError(f"--method {method}: use one of {', '.join(METHODS)}")
    architectures.keep_fixed(model)
    if method == "head":
        if freeze_layers:
            raise ConfigError("--freeze-layers has no effect with --method head (all is frozen)")
        for name, p in model.named_parameters():
            p.requires_grad_(any(name.startswith(m + ".") for m in new_modules)
                             or heads.is_head_key(name))
        keep_batchnorm_frozen(model)
    elif method == "full":
        freeze_lower(model, freeze_layers)
    else:
        model = _lora(model, new_modules, peft_task_type, freeze_layers, lora_r, lora_alpha,
                      lora_dropout, lora_targets)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    log.info("method %s: %.2fM of %.2fM parameters trainable (%.2f%%)",
             method, trainable / 1e6, total / 1e6, 100 * trainable / total)
    return model


def _lora(model, new_modules, peft_task_type, freeze_layers, r, alpha, dropout, targets):
    from peft import LoraConfig, TaskType, get_peft_model

    candidates = block_linear_names(model)
    if targets:
        known = all_linear_names(model) + candidates
        wrong = [t for t in targets if t not in known]
        if wrong:
            raise ConfigError(
                f"--lora-targets {','.join(wrong)}: no such Linear module; the model's are "
                f"{', '.join(candidates)}"
            )
    else:
        # every Linear in the blocks: LoRA on attention and FFN together tracks full
        # fine-tuning more closely than attention alone (QLoRA, Dettmers et al. 2023).
        targets = candidates
    if not targets:
        raise ConfigError("--method lora: found no Linear modules in the model's blocks")
    total = architectures.layer_count(model)
    layers = list(range(freeze_layers, total)) if freeze_layers and total else None
    # new modules (the head) are trained whole and saved with the adapter
    to_save = sorted({m.split(".")[-1] if m.split(".")[-1] in heads.OUTPUT_MODULES
                      else m for m in new_modules} | heads.head_modules(model))
    config = LoraConfig(
        task_type=getattr(TaskType, peft_task_type) if peft_task_type else None, r=r,
        lora_alpha=alpha, lora_dropout=dropout,
        target_modules=targets, layers_to_transform=layers, modules_to_save=to_save,
    )
    log.info("LoRA r=%d alpha=%d on %s; trained whole: %s", r, alpha, ", ".join(targets),
             ", ".join(to_save))
    peft_model = get_peft_model(model, config)
    keep_batchnorm_frozen(peft_model)  # (a CNN's BatchNorm is frozen with its blocks)
    return peft_model


def merge_checked(peft_model, batch: dict, tolerance: float, outputs: tuple[str, ...]):
    """Merge LoRA into the base weights; fail if the merged outputs differ from the adapter's.

    `outputs`: the model's outputs by name (the task's), each compared. Returns the plain
    merged model and the largest absolute difference over them.
    """
    import torch

    peft_model.eval()
    with torch.inference_mode():
        out = peft_model(**batch)
        before = [out[name].float() for name in outputs]
    merged = peft_model.merge_and_unload()
    merged.eval()
    with torch.inference_mode():
        out = merged(**batch)
        after = [out[name].float() for name in outputs]
    diff = max(float((b - a).abs().max()) for b, a in zip(before, after))
    if not diff <= tolerance:  # also catches NaN
        raise CheckFailed(
            f"LoRA merge check failed: the merged model's outputs ({', '.join(outputs)}) differ "
            f"from the adapter model's by {diff:.2e}"
            f" (tolerance {tolerance:.0e}); the adapter is kept, the merged model is not written"
        )
    log.info("LoRA merge check: max |output difference| %.2e (tolerance %.0e)", diff, tolerance)
    return merged, diff
