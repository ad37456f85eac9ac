"""Task `multi-task`: several tasks on one encoder, one head each (tasks/joint).

A joint task is not one registered Task but one composed per set of heads: `compose(heads)`
builds a Task from the registered tasks the heads name (a sentence head: text
classification; a word head: token classification; any task whose `Task.head` says where
it reads the encoder), each head judged by its own task's functions (scores.py). It is
named on the command line (`--task multi-task --head NAME=KIND[:COLUMN[:WEIGHT]]`), in a
recipe's `tasks:` section, and afterwards by the trained model's config.json (its
`task_heads`), which every later stage reads back (`of_config`).

Inputs are words (the words input kind: a sentence as its list of words; the bundled
runtime splits raw text into words itself), so a word head's tags line up with them.
"""

from __future__ import annotations

import dataclasses

from ...errors import ConfigError
from . import heads as joint_heads
from .heads import CONFIG_HEADS, CONFIG_SELECT, NAME, Head

__all__ = ["NAME", "Head", "claims", "compose", "of_config"]


def claims(config: dict) -> bool:
    """A trained joint model's config.json (its heads recorded)."""
    return CONFIG_HEADS in config


def of_config(config: dict, where: str = "config.json"):
    """The joint task a trained model's config.json describes."""
    heads = joint_heads.of_config(config, where)
    select = config.get(CONFIG_SELECT)
    return compose(heads, select if isinstance(select, str) else None, where=where)


def _kinds(heads: list[Head]):
    from .. import get

    kinds = [get(h.kind) for h in heads]
    for h, t in zip(heads, kinds):
        if not t.greater_is_better:
            raise ConfigError(f"head {h.name}: the task {t.name} scores lower-is-better, "
                              f"which a combined figure cannot average with the others yet")
    return kinds


def compose(heads: list[Head], select: str | None = None, where: str = "--head"):
    """The Task of a joint model over `heads` (labels filled once the data is read)."""
    from ...data import labels as class_labels
    from ...inputs import words as words_inputs
    from ...measure import parity
    from .. import token_classification as tc
    from . import data as joint_data
    from .model import JointModel
    from .scores import COMBINED, EXACT, Scores

    heads = joint_heads.check_heads(list(heads), where)
    select = joint_heads.check_select(select, heads, f"{where}: --select")
    kinds = _kinds(heads)
    scores = Scores(heads, kinds, select)
    outputs = tuple(h.name for h in heads)

    def head_config(label_names: list[str]) -> dict:
        per_head = joint_data.split_flat(label_names)
        labelled = [dataclasses.replace(h, labels=tuple(per_head[h.name])) for h in heads]
        return class_labels.head_config(label_names) | {
            CONFIG_HEADS: [h.record() for h in labelled], CONFIG_SELECT: select}

    def teacher_columns():
        return {h.name: task.teacher_column(h.name) for h in heads}

    def onnx_config(config):
        return _onnx_config(config, scores)

    # a tagger's Task with what is the heads': the words and their encoding are the tagger's
    task = dataclasses.replace(
        tc.TASK,
        name=NAME,
        summary="several tasks on one encoder, one head each (an intent and its slots)",
        model_class=JointModel,
        optimum_task="feature-extraction",
        peft_task_type=None,
        claims=claims,
        head_config=head_config,
        read=lambda opts, model_labels=None: joint_data.load(
            opts, heads, model_labels, joint_data.sources_of(getattr(opts, "head_data", None),
                                                             heads)),
        read_eval=lambda spec, label_names, opts=None: joint_data.read_eval(
            spec, label_names, heads, opts),
        claims_data=lambda columns: False,
        prepare=lambda td, tok, opts: joint_data.prepare(td, tok, opts, heads),
        collator=lambda tok: joint_data.Collator(tok, heads, teacher_columns()),
        read_unlabeled=None,
        per_example=scores.per_example,
        to_rows=None,  # (a sentence head's outputs are no words': one tokenizer for both)
        predictions=scores.predictions,
        metrics=scores.metrics,
        render=scores.render,
        primary=COMBINED,
        greater_is_better=True,
        compare=scores.compare,
        drop=tc.drop,  # (points of each head's primary metric, all greater-is-better)
        per_label_delta=scores.per_label_delta,
        distill_loss=scores.distill_loss,
        agreement=parity.top1_agreement,
        tolerances=None,
        probe_rows=tc.PROBE_ROWS,
        rewrites=frozenset(),
        runtime={"postprocess": "heads",
                 "heads": [{"name": h.name, "postprocess": t.runtime["postprocess"]}
                           for h, t in zip(heads, kinds)]},
        inputs=words_inputs.WORDS,
        secondary=EXACT,
        floor=None,
        shipped=scores.shipped,
        learning_rates={},
        outputs=outputs,
        onnx_config=onnx_config,
        output_parity={},
        head=None,
        joint=True,
        gated=scores.gated(),
    )  # (the tokenizer, the words' encoding and index columns: the tagger's, as given)
    return task


def _onnx_config(config, scores):
    """optimum's OnnxConfig of the encoder's architecture, its outputs the heads: a
    sentence head's [batch, labels], a word head's [batch, sequence, labels]."""
    from optimum.exporters.tasks import TasksManager

    from .model import SENTENCE

    base = TasksManager.get_exporter_config_constructor(
        "onnx", model_type=config.model_type, task="feature-extraction",
        library_name="transformers")
    made = base(config)

    class JointOnnxConfig(type(made)):
        @property
        def outputs(self):
            return {h.name: ({0: "batch_size"} if t.head == SENTENCE
                             else {0: "batch_size", 1: "sequence_length"})
                    for h, t in zip(scores.heads, scores.kinds)}

    return JointOnnxConfig(config, task="feature-extraction")
