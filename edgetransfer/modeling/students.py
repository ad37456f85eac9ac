"""Build a distillation student: the teacher cut down to some of its layers, or another model.

Builders take flat arguments (`from_teacher_layers(teacher, keep=[0, 2, 5])`); no config
objects reach model code.
"""

from __future__ import annotations

import copy
import logging

from ..errors import ConfigError, ModelError

log = logging.getLogger(__name__)


def spread_layers(n_teacher: int, k: int, whose: str = "the teacher") -> list[int]:
    """`k` of `n_teacher` layers spread evenly over the depth, first and last always kept.

    Layer i of the student is teacher layer round(i * (n - 1) / (k - 1)): 6 -> 3 keeps
    0, 2, 5 and 6 -> 2 keeps 0, 5. The lowest layer holds the most general features and
    the highest the task-specific ones the fine-tuned head reads; the middle is thinned
    evenly, as DistilBERT thinned BERT (every other layer).
    """
    if not 1 <= k <= n_teacher:
        raise ConfigError(f"--student-layers {k}: choose between 1 and {n_teacher} "
                          f"({whose}'s depth)")
    if k == 1:
        return [n_teacher - 1]
    return sorted({round(i * (n_teacher - 1) / (k - 1)) for i in range(k)})


def check_choice(config: dict, student_layers: int | None = None,
                 keep_layers: list[int] | None = None, whose: str = "the teacher") -> None:
    """Refuse, from the config.json of the model cut (the teacher's, or --student's) alone
    (before data is read or a model loaded), a --student-layers or --keep-layers it cannot
    give; a config that does not say its depth is left to the checks on the loaded model."""
    from types import SimpleNamespace

    from . import architectures

    n = architectures.layer_count_of(config)
    if n is None:
        return
    if config.get("model_type") in architectures.CNNS:
        stages = architectures.stages(SimpleNamespace(**config))
        if student_layers:
            spread_blocks(stages, student_layers, whose)
        if keep_layers:
            check_kept_blocks(keep_layers, stages)
        return
    if student_layers:
        spread_layers(n, student_layers, whose)
    if keep_layers:
        check_kept_layers(keep_layers, n, whose)


def check_kept_layers(keep: list[int], n: int, whose: str = "the teacher") -> None:
    """--keep-layers: distinct teacher layers 0..n-1, in increasing order."""
    bad = [i for i in keep if not 0 <= i < n]
    if bad or not keep:
        raise ConfigError(f"--keep-layers {','.join(map(str, keep))}: {whose} has layers "
                          f"0..{n - 1}")
    if sorted(set(keep)) != list(keep):
        raise ConfigError(f"--keep-layers {','.join(map(str, keep))}: give distinct layers "
                          f"in increasing order")


def check_kept_blocks(keep: list[int], stages: list[int]) -> None:
    """--keep-layers of a CNN: distinct blocks, in order, every stage's first among them."""
    firsts = {stages.index(s) for s in set(stages)}
    bad = [i for i in keep if not 0 <= i < len(stages)]
    if bad or sorted(set(keep)) != list(keep):
        raise ConfigError(f"--keep-layers {','.join(map(str, keep))}: give distinct blocks "
                          f"0..{len(stages) - 1} in increasing order")
    if not firsts <= set(keep):
        raise ConfigError(f"--keep-layers {','.join(map(str, keep))}: keep the first block of "
                          f"every stage ({','.join(map(str, sorted(firsts)))}); they change "
                          f"the width and stride")


def layer_list(model):
    """(parent module, attribute name, ModuleList) of the model's transformer blocks."""
    import torch

    n = getattr(model.config, "num_hidden_layers", None)
    for name, module in model.named_modules():
        for attr, child in module.named_children():
            if isinstance(child, torch.nn.ModuleList) and len(child) == n:
                return module, attr, child
    raise ModelError("could not find the model's list of transformer layers to cut down; "
                     "give --student as a model folder instead")


def from_teacher_layers(teacher, keep: list[int], whose: str = "the teacher"):
    """A copy of `teacher` (or any model of transformer layers) with only the layers in
    `keep` (in order), weights included."""
    n = teacher.config.num_hidden_layers
    check_kept_layers(keep, n, whose)
    import torch

    student = copy.deepcopy(teacher)
    parent, attr, layers = layer_list(student)
    setattr(parent, attr, torch.nn.ModuleList([layers[i] for i in keep]))
    student.config.num_hidden_layers = len(keep)
    log.info("student: %s's layers %s (%d of %d)", whose, keep, len(keep), n)
    return student


def layer_mapping(n_student: int, n_teacher: int, keep: list[int] | None = None):
    """(student, teacher) pairs of hidden-state indices (0 = embeddings, i = after layer i).

    A cut-down teacher maps each kept layer to itself; another model maps student layer j
    to teacher layer round(j * n_teacher / n_student), the uniform map of TinyBERT.
    """
    if keep is not None:
        return [(0, 0)] + [(j + 1, t + 1) for j, t in enumerate(keep)]
    return [(0, 0)] + [(j, round(j * n_teacher / n_student)) for j in range(1, n_student + 1)]


def same_tokens(teacher_tokenizer, student_tokenizer) -> bool:
    """Whether the two read a text as the same token ids (else the teacher's outputs reach
    the student per example, or per word: distill)."""
    return teacher_tokenizer.get_vocab() == student_tokenizer.get_vocab()


def stage_ends(student_config, teacher_config) -> list[tuple[int, int]]:
    """(student, teacher) hidden-state pairs at each stage's end of two CNNs cut into the
    same stages (a Lite0-shaped student of a Lite2): index i is block i - 1's output, as
    from_teacher_blocks pairs them; the strides match stage by stage, so at one input size
    each pair's maps have one spatial size (the widths may differ: distill projects)."""
    from . import architectures

    ours, theirs = architectures.stages(student_config), architectures.stages(teacher_config)
    if ours is None or sorted(set(ours)) != sorted(set(theirs)):
        raise ConfigError("--student: a CNN teacher's student is a CNN of the same stages (an "
                          "EfficientNet-Lite), or one cut from the teacher (--student-layers)")

    def end(stages: list[int], s: int) -> int:
        return max(i for i, x in enumerate(stages) if x == s) + 1

    return [(end(ours, s), end(theirs, s)) for s in sorted(set(theirs))]


def check_compatible(teacher, student, student_tokenizer) -> None:
    """The student must have a row for each of its tokenizer's tokens (a text model) and
    predict the teacher's classes."""
    from . import architectures

    if (not architectures.is_cnn(student)
            and student.get_input_embeddings().num_embeddings < len(student_tokenizer)):
        raise ModelError(
            f"--student: its embedding table has {student.get_input_embeddings().num_embeddings}"
            f" rows but its tokenizer {len(student_tokenizer)} tokens"
        )
    t_labels = teacher.config.id2label
    s_labels = student.config.id2label
    if student.config.num_labels != teacher.config.num_labels or (
        dict(t_labels) != dict(s_labels)
    ):
        raise ModelError(
            f"--student: its classes {list(s_labels.values())} differ from the teacher's "
            f"{list(t_labels.values())}"
        )


def spread_blocks(stages: list[int], k: int, whose: str = "the teacher") -> list[int]:
    """`k` of a CNN's blocks (stage of each block in `stages`) to keep.

    Every stage keeps its first block (it changes the width and the stride, so the stages
    still fit together); the other k - stages blocks go one at a time to the stage with the
    most blocks still unkept (ties: the later, wider stage), each stage keeping its earliest
    repeats. The repeats after a stage's first block are residual refinements: the natural
    cut, as layers are for a transformer.
    """
    n_stages = len(set(stages))
    if not n_stages <= k <= len(stages):
        raise ConfigError(f"--student-layers {k}: choose between {n_stages} (one block per "
                          f"stage) and {len(stages)} ({whose}'s blocks)")
    firsts = [stages.index(s) for s in sorted(set(stages))]
    kept = {s: 1 for s in sorted(set(stages))}
    total = {s: stages.count(s) for s in kept}
    for _ in range(k - n_stages):
        s = max(kept, key=lambda s: (total[s] - kept[s], s))
        kept[s] += 1
    return sorted(i for s, first in zip(sorted(kept), firsts) for i in range(first, first +
                                                                             kept[s]))


def from_teacher_blocks(teacher, keep: list[int]):
    """A copy of an EfficientNet `teacher` with only the blocks in `keep`, weights included,
    and the (student, teacher) hidden-state pairs at each stage's end for feature-map
    transfer (index 0 is the stem, i the output of block i - 1)."""
    import math

    import torch

    from . import efficientnet_lite

    config = teacher.config
    stages = efficientnet_lite.stage_of_blocks(config)
    check_kept_blocks(keep, stages)
    if any(math.ceil(config.depth_coefficient * n) != n for n in config.num_block_repeats):
        raise ConfigError("--student-layers: the teacher's depth_coefficient rounds its block "
                          "counts, so its blocks cannot be cut by stage; distil a teacher "
                          "whose depth_coefficient is 1 (as Lite0's)")
    student = copy.deepcopy(teacher)
    old = efficientnet_lite.blocks(student)
    student.efficientnet.encoder.blocks = torch.nn.ModuleList([old[i] for i in keep])
    student.config.num_block_repeats = [sum(1 for i in keep if stages[i] == s)
                                        for s in range(len(config.num_block_repeats))]
    student.config.depthwise_padding = [keep.index(i) for i in config.depthwise_padding
                                        if i in keep]
    student.config.num_hidden_layers = sum(student.config.num_block_repeats) * 4
    mapping = [(max(j for j, i in enumerate(keep) if stages[i] == s) + 1,
                max(i for i in range(len(stages)) if stages[i] == s) + 1)
               for s in sorted(set(stages))]
    log.info("student: teacher blocks %s (%d of %d)", keep, len(keep), len(stages))
    return student, mapping
