"""The joint model: one transformers encoder, one linear head per task, one loss.

transformers has no class for several heads on one encoder, so this is written here: a
subclass of the backbone's own PreTrainedModel (BertPreTrainedModel, MPNetPreTrainedModel,
...) made once per architecture, so that from_pretrained, save_pretrained, the base-model
prefix (weights of a bare encoder or of a single-task checkpoint load into it) and every
stage's loader work as for transformers' own classes. Its heads sit under `classifier`
(modeling/heads.py: loading, --method head and LoRA's modules_to_save treat them as the
head); a sentence head reads the first token's final state, a word head every position.
Its forward returns one output per head, by the head's name, in the config's order.

`JointModel` is what the task names as its model class: from_pretrained / from_config pick
the architecture's subclass from the config.
"""

from __future__ import annotations

import functools

from ...data.labels import IGNORE
from . import heads as joint_heads

# Task.head values (edgetransfer.tasks.task): where a head reads the encoder
SENTENCE, WORD = "sentence", "word"
# the model config's keys a fresh joint head sets (beside transformers' id2label/label2id)
HEAD_KEYS = ("num_labels", "id2label", "label2id", joint_heads.CONFIG_HEADS,
             joint_heads.CONFIG_SELECT)


def head_shapes(config) -> list[tuple[str, str, int, float]]:
    """(name, where it reads: SENTENCE or WORD, outputs, loss weight) per head."""
    from .. import get

    out = []
    for h in getattr(config, joint_heads.CONFIG_HEADS):
        out.append((h["name"], get(h["kind"]).head, len(h["labels"]), float(h["weight"])))
    return out


@functools.cache
def _output_class(names: tuple[str, ...]):
    """A transformers ModelOutput with one field per head (loss first, as the Trainer reads
    it), then the hidden states and attentions distillation transfers."""
    import dataclasses

    import torch
    from transformers.utils import ModelOutput

    fields = ([("loss", torch.Tensor | None, dataclasses.field(default=None))]
              + [(n, torch.Tensor | None, dataclasses.field(default=None)) for n in names]
              + [(n, tuple | None, dataclasses.field(default=None))
                 for n in ("hidden_states", "attentions")])
    return dataclasses.make_dataclass("JointOutput", fields, bases=(ModelOutput,))


@functools.cache
def _class_for(base_class):
    """The joint model over one transformers encoder class (BertModel, MPNetModel, ...)."""
    import torch

    pretrained = next(c for c in base_class.__mro__[1:] if c.__name__.endswith("PreTrainedModel"))

    class Joint(pretrained):
        def __init__(self, config):
            super().__init__(config)
            try:  # (a sentence head reads the first token's state, not a pooler's)
                encoder = base_class(config, add_pooling_layer=False)
            except TypeError:
                encoder = base_class(config)
            setattr(self, self.base_model_prefix, encoder)
            self.shapes = head_shapes(config)
            p = getattr(config, "classifier_dropout", None)
            self.dropout = torch.nn.Dropout(p if p is not None
                                            else getattr(config, "hidden_dropout_prob", 0.1))
            self.classifier = torch.nn.ModuleDict({
                name: torch.nn.Linear(config.hidden_size, n) for name, _, n, _ in self.shapes})
            self.post_init()

        def forward(self, input_ids=None, attention_mask=None, token_type_ids=None,
                    labels=None, output_hidden_states=None, output_attentions=None,
                    return_dict=None, **kwargs):
            """`labels`: head name -> gold ids ([batch] for a sentence head, [batch, tokens]
            for a word head; IGNORE where a row lacks that head's label)."""
            import torch.nn.functional as F

            extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
            out = getattr(self, self.base_model_prefix)(
                input_ids, attention_mask=attention_mask, output_hidden_states=output_hidden_states,
                output_attentions=output_attentions, return_dict=True, **extra)
            states = self.dropout(out.last_hidden_state)
            values, loss = {}, None
            for name, where, _, weight in self.shapes:
                values[name] = self.classifier[name](states[:, 0] if where == SENTENCE
                                                     else states)
                if labels is None or labels.get(name) is None or weight == 0:
                    continue
                gold = labels[name]
                if (gold != IGNORE).any():  # (a batch without this head's labels adds none)
                    part = F.cross_entropy(values[name].flatten(0, -2).float(),
                                           gold.flatten(), ignore_index=IGNORE)
                    loss = weight * part if loss is None else loss + weight * part
            if labels is not None and loss is None:  # (keeps the graph: no gold in the batch)
                loss = sum(v.sum() for v in values.values()) * 0.0
            return _output_class(tuple(values))(loss=loss, **values,
                                                hidden_states=out.hidden_states,
                                                attentions=out.attentions)

    Joint.__name__ = Joint.__qualname__ = f"{pretrained.__name__[:-len('PreTrainedModel')]}" \
                                          f"JointModel"
    return Joint


def _encoder_class(config):
    from transformers import MODEL_MAPPING

    try:
        return MODEL_MAPPING[type(config)]
    except KeyError:
        from ...errors import ModelError

        raise ModelError(f"a {config.model_type} model has no transformers encoder class for "
                         f"a joint model") from None


def _with_heads(config, head_fields: dict):
    for key, value in head_fields.items():
        setattr(config, key, value)
    config.architectures = [_class_for(_encoder_class(config)).__name__]
    return config


class JointModel:
    """The loader a joint task names (Task.model_class): transformers' classmethods,
    dispatched to the architecture's joint class; head fields (HEAD_KEYS) go into the
    config, as they do for transformers' Auto classes."""

    @staticmethod
    def from_pretrained(source, *args, **kwargs):
        from transformers import AutoConfig

        head_fields = {k: kwargs.pop(k) for k in HEAD_KEYS if k in kwargs}
        config = kwargs.pop("config", None) or AutoConfig.from_pretrained(
            source, trust_remote_code=kwargs.get("trust_remote_code", False))
        _with_heads(config, head_fields)
        cls = _class_for(_encoder_class(config))
        kwargs.pop("trust_remote_code", None)  # (the joint class is ours, not the hub's)
        return cls.from_pretrained(source, *args, config=config, **kwargs)

    @staticmethod
    def from_config(config, **kwargs):
        kwargs.pop("trust_remote_code", None)
        cls = _class_for(_encoder_class(config))
        _with_heads(config, {})
        return cls._from_config(config, **kwargs)
