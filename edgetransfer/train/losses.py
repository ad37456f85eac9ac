"""Distillation losses, all in one place so stages cannot drift apart.

- soft targets: KL(teacher || student) on logits softened by temperature T, scaled by T^2
  so its gradients keep their size as T changes (Hinton et al. 2015);
- hard labels: cross-entropy on the gold labels, mixed in with weight 1 - alpha; rows
  without a gold label (teacher-labelled unlabelled text, label -100) only take the soft loss;
- hidden states: MSE between mapped layers' hidden states, through a learned projection
  when the widths differ (TinyBERT, Jiao et al. 2020); across tokenizers, whose positions
  do not line up, of each row's first-token and mean states;
- attention: KL between the teacher's and the student's attention distributions of
  mapped layers, averaged over heads (MiniLM uses the last layer's, Wang et al. 2020).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.labels import IGNORE  # a row without a gold label: no hard-label loss


def soft_target_loss(student_logits, teacher_logits, temperature: float) -> torch.Tensor:
    t = temperature
    return F.kl_div(
        F.log_softmax(student_logits / t, dim=-1),
        F.log_softmax(teacher_logits / t, dim=-1),
        reduction="batchmean",
        log_target=True,
    ) * (t * t)


def hard_label_loss(student_logits, labels) -> torch.Tensor:
    if (labels != IGNORE).sum() == 0:
        return student_logits.sum() * 0.0  # keeps the graph; no gold label in this batch
    return F.cross_entropy(student_logits, labels, ignore_index=IGNORE)


def hidden_state_loss(student_hidden, teacher_hidden, mapping, attention_mask, projection=None):
    """Mean MSE over mapped layer pairs, counting real tokens only (padding is excluded).

    `mapping` holds (student index, teacher index) pairs into the tuples of hidden states
    (index 0 is the embedding output).
    """
    mask = attention_mask.unsqueeze(-1).to(student_hidden[0].dtype)
    tokens = mask.sum().clamp(min=1)
    total = 0.0
    for s, t in mapping:
        h = student_hidden[s]
        if projection is not None:
            h = projection(h)
        diff = (h - teacher_hidden[t].to(h.dtype)) ** 2 * mask
        total = total + diff.sum() / (tokens * h.shape[-1])
    return total / len(mapping)


def pooled_states(states, mask) -> torch.Tensor:
    """Each row's first-token state ([CLS], <s>: what a classifier head reads) and its mean
    state over the row's real tokens (what a sentence-embedding teacher such as
    all-mpnet-base-v2 was trained to make), side by side: (batch, 2 x width). The first
    real token, on either padding side (a left-padding tokenizer's rows start with pads)."""
    first = states[torch.arange(states.shape[0], device=states.device), mask.argmax(1)]
    return torch.cat([first, _mean_over(states, mask)], dim=-1)


def pooled_state_loss(student_hidden, teacher_pooled, mapping, student_mask,
                      projection=None) -> torch.Tensor:
    """Hidden-state transfer between models that tokenize differently, whose token positions
    do not line up: per mapped layer pair, MSE of the first token's state plus MSE of the
    mean state (`pooled_states`), the student's over its own tokens. `teacher_pooled`: the
    teacher's pooled states at the mapped layers, (batch, pairs, 2 x width), computed once
    over its own tokens (distill caches them with its logits)."""
    total = 0.0
    for k, (s, _) in enumerate(mapping):
        h = student_hidden[s] if projection is None else projection(student_hidden[s])
        g = teacher_pooled[:, k].to(h.dtype)
        # (x 2: the sum of the two halves' MSEs, each over batch x width)
        total = total + 2 * F.mse_loss(pooled_states(h, student_mask), g)
    return total / len(mapping)


def _mean_over(states, mask) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(states.dtype)
    return (states * m).sum(1) / m.sum(1).clamp(min=1)


def attention_loss(student_attn, teacher_attn, mapping, attention_mask) -> torch.Tensor:
    """KL between attention distributions of mapped layers (heads averaged, real queries only).

    Averaging over heads lets students with another head count learn from the teacher.
    """
    query_mask = attention_mask.to(student_attn[0].dtype)
    total = 0.0
    for s, t in mapping:
        ps = student_attn[s].mean(dim=1).clamp_min(1e-8)  # (batch, query, key)
        pt = teacher_attn[t].mean(dim=1).to(ps.dtype).clamp_min(1e-8)
        kl = (pt * (pt.log() - ps.log())).sum(-1)  # per query
        total = total + (kl * query_mask).sum() / query_mask.sum().clamp(min=1)
    return total / len(mapping)


def combine(student_logits, labels, teacher_logits, *, alpha: float, temperature: float):
    """alpha * soft-target loss + (1 - alpha) * hard-label loss, and the parts for logging."""
    parts = {}
    loss = 0.0
    if alpha > 0:
        parts["soft"] = soft_target_loss(student_logits, teacher_logits, temperature)
        loss = loss + alpha * parts["soft"]
    if alpha < 1:
        parts["hard"] = hard_label_loss(student_logits, labels)
        loss = loss + (1 - alpha) * parts["hard"]
    return loss, parts


def feature_map_loss(student_maps, teacher_maps, mapping, projections=None) -> torch.Tensor:
    """Mean MSE between mapped feature maps of a CNN, the FitNets hint loss (Romero et al.
    2015): a block-cut student keeps each stage's width and stride, so none needs its
    regressor; a separate student of other widths gives one 1x1 convolution per pair
    (`projections`, in `mapping`'s order). A teacher reading pictures at another side than
    the student's has maps of other sides: its map is average-pooled to the student's (area
    interpolation, which also widens a smaller one)."""
    total = 0.0
    for k, (s, t) in enumerate(mapping):
        h = student_maps[s] if projections is None else projections[k](student_maps[s])
        theirs = teacher_maps[t].to(h.dtype)
        if theirs.shape[-2:] != h.shape[-2:]:
            theirs = F.interpolate(theirs, size=h.shape[-2:], mode="area")
        total = total + F.mse_loss(h, theirs)
    return total / len(mapping)
