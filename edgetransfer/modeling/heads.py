"""The modules of a task head, by name: the one list every stage and method reads.

transformers names a head's modules by architecture: `classifier` (BERT, RoBERTa, ELECTRA,
token classifiers), `score` (decoder models), `pre_classifier` (DistilBERT) and BERT's
`pooler`, which only feeds the head (a sentence-embedding checkpoint never trained it for
classification, so it is trained with the head). Loading checks, `--method head`, LoRA's
modules_to_save and a new head's initialisation all ask this module.
"""

from __future__ import annotations

# The modules that output the task's logits: re-initialised by --new-head.
OUTPUT_MODULES = ("classifier", "score")
# Every module that belongs to the head, outputs first.
HEAD_MODULES = OUTPUT_MODULES + ("pre_classifier", "pooler")


def is_head_key(name: str) -> bool:
    """A parameter or state-dict key inside the head (at the top, or a base model's pooler:
    `bert.pooler.dense.weight`)."""
    parts = name.split(".")
    return parts[0] in HEAD_MODULES or "pooler" in parts[:-1]


def head_modules(model) -> set[str]:
    """Names of the model's head modules, as peft's modules_to_save takes them (a head of
    several, a ModuleDict, by each of its modules: peft wraps modules, not containers)."""
    import torch

    children = dict(model.named_children())
    heads = set()
    for n in HEAD_MODULES:
        if isinstance(children.get(n), torch.nn.ModuleDict):
            heads |= {f"{n}.{k}" for k in children[n]}
        elif n in children:
            heads.add(n)
    if any(n.split(".")[-1] == "pooler" for n, _ in model.named_modules()):
        heads.add("pooler")
    return heads
