"""Build a distillation student: the teacher cut down to some of its layers, or another model.

Builders take flat arguments (`from_teacher_layers(teacher, keep=[0, 2, 5])`); no config
objects reach model code.
"""

from __future__ import annotations

import copy
import logging

from ..errors import ConfigError, ModelError

log = logging.getLogger(__name__)


def spread_layers(n_teacher: int, k: int) -> list[int]:
    """`k` of `n_teacher` layers spread evenly over the depth, first and last always kept.

    Layer i of the student is teacher layer round(i * (n - 1) / (k - 1)): 6 -> 3 keeps
    0, 2, 5 and 6 -> 2 keeps 0, 5. The lowest layer holds the most general features and
    the highest the task-specific ones the fine-tuned head reads; the middle is thinned
    evenly, as DistilBERT thinned BERT (every other layer).
    """
    if not 1 <= k <= n_teacher:
        raise ConfigError(f"--student-layers {k}: choose between 1 and {n_teacher} "
                          f"(the teacher's depth)")
    if k == 1:
        return [n_teacher - 1]
    return sorted({round(i * (n_teacher - 1) / (k - 1)) for i in range(k)})


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


def from_teacher_layers(teacher, keep: list[int]):
    """A copy of `teacher` with only the layers in `keep` (in order), weights included."""
    n = teacher.config.num_hidden_layers
    bad = [i for i in keep if not 0 <= i < n]
    if bad or not keep:
        raise ConfigError(f"--keep-layers {','.join(map(str, keep))}: the teacher has layers "
                          f"0..{n - 1}")
    if sorted(set(keep)) != list(keep):
        raise ConfigError(f"--keep-layers {','.join(map(str, keep))}: give distinct layers "
                          f"in increasing order")
    import torch

    student = copy.deepcopy(teacher)
    parent, attr, layers = layer_list(student)
    setattr(parent, attr, torch.nn.ModuleList([layers[i] for i in keep]))
    student.config.num_hidden_layers = len(keep)
    log.info("student: teacher layers %s (%d of %d)", keep, len(keep), n)
    return student


def layer_mapping(n_student: int, n_teacher: int, keep: list[int] | None = None):
    """(student, teacher) pairs of hidden-state indices (0 = embeddings, i = after layer i).

    A cut-down teacher maps each kept layer to itself; another model maps student layer j
    to teacher layer round(j * n_teacher / n_student), the uniform map of TinyBERT.
    """
    if keep is not None:
        return [(0, 0)] + [(j + 1, t + 1) for j, t in enumerate(keep)]
    return [(0, 0)] + [(j, round(j * n_teacher / n_student)) for j in range(1, n_student + 1)]


def check_compatible(teacher, student, teacher_tokenizer, student_tokenizer) -> None:
    """The student must read the same token ids and predict the same classes."""
    if teacher_tokenizer.get_vocab() != student_tokenizer.get_vocab():
        raise ModelError(
            "--student: its tokenizer's vocabulary differs from the teacher's, so the "
            "teacher's outputs for a text would not match the student's inputs; use a "
            "student with the teacher's tokenizer"
        )
    if student.get_input_embeddings().num_embeddings < len(teacher_tokenizer):
        raise ModelError(
            f"--student: its embedding table has {student.get_input_embeddings().num_embeddings}"
            f" rows but the tokenizer {len(teacher_tokenizer)} tokens"
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
