"""What a task is: one frozen description of plain functions, keyed by one string.

Every stage asks the task what to do where tasks differ (which head, how rows are read and
checked, how inputs are encoded, what the predictions and metrics are, which loss distils,
what parity compares, which graph rewrites are safe, what the bundled runtime does after
the model) and never tests the task's name. No class hierarchy: a new task is a module that
builds one `Task` and registers it (edgetransfer.tasks.register), after optimum's task
strings and peft's one-call registration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..convert import quantize
from ..inputs.kind import InputKind

# The index column naming each encoded row's example, for tasks whose examples may span
# several rows (a long sentence's windows); absent, row i is example i.
EXAMPLE = "example"


@dataclass
class TaskData:
    """A task's labelled splits, read and checked, with model-ready columns.

    `splits`: split name -> datasets.Dataset holding the task's input columns and "label";
    `label_names`: the head's outputs in order (class names; one name for a regression);
    `columns`: role -> the column it was read from (recorded in settings.json).
    """

    splits: dict[str, Any]
    label_names: list[str]
    columns: dict[str, str | None]
    sources: dict[str, str]
    notes: list[str] = field(default_factory=list)
    checks: list = field(default_factory=list)  # what the reader leaves for `prepare` to
    #                                              check once the preprocessor is known
    options: Any = None  # the settings the splits were read with: a later read in the same
    #                      run (read_unlabeled) follows them (the image pixel limit)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


@dataclass(frozen=True)
class Task:
    # --- identity
    name: str  # "text-classification": recipes' `task:`, `--task`, every manifest
    summary: str  # one line, for --help and the bundle's README
    # --- the model
    # its model: the name of a transformers Auto class ("AutoModelForSequenceClassification"),
    # or a class of the task's own with transformers' from_pretrained (a PreTrainedModel
    # subclass: several heads on one encoder), loaded by modeling/backbones.py either way
    model_class: str | type
    optimum_task: str  # optimum's export task string
    peft_task_type: str | None  # a peft.TaskType member name; None: peft's generic model
    claims: Callable[[dict], bool]  # config.json (as a dict) holds this task's head
    head_config: Callable[[list[str]], dict]  # config fields of a fresh head over these labels
    # --- the data
    read: Callable[..., TaskData]  # (DataOptions, model_labels) -> checked, encoded splits
    read_eval: Callable[..., Any]  # (spec, label_names or None, options) -> one Dataset
    claims_data: Callable[[list[str]], bool]  # a data file with these columns is this task's
    load_preprocessor: Callable[..., Any]  # (Backbone, trust_remote_code) -> tokenizer, ...
    prepare: Callable[..., tuple]  # (TaskData, preprocessor, DataOptions) ->
    #                                  (model-ready splits, text.Truncation-like record)
    encode: Callable[..., dict]  # (preprocessor, rows: dict of columns, max_length) -> numpy
    #                               feeds both runtimes take (runners pass only the model's
    #                               inputs; the rest is `index_columns`)
    per_example: Callable[[Any, dict], Any]  # (an output over encoded rows [rows, ...], the
    #                                          rows' index columns) -> one output per example
    #                                          (a sentence's words' for a token task)
    index_columns: tuple[str, ...]  # columns of encoded rows that map them back to examples
    collator: Callable[[Any], Any]  # (preprocessor) -> the Trainer's data collator
    read_unlabeled: Callable[..., Any] | None  # (spec, column, preprocessor, max_length,
    #                                             TaskData) -> Dataset of rows without a gold
    #                                             label (distill --unlabeled); None: refused
    # --- outputs and how they are judged
    predictions: Callable[[Any], Any]  # per-example logits -> per-example predictions
    metrics: Callable[..., dict]  # (labels, predictions, label_names) -> JSON-ready report
    render: Callable[[dict], str] | None  # a report as the text table printed after training
    primary: str  # the report's key that early stopping, model selection and gates use
    greater_is_better: bool
    compare: Callable[..., dict]  # (labels, ref_pred, cand_pred, label_names, seed) ->
    #                                {primary: {"points", "ci95"}, ..., "flips", "flip_rate"}
    drop: Callable[[float, float], float]  # (reference, candidate) -> how much worse, in
    #                                         the gate's units (accuracy: points)
    per_label_delta: Callable[[dict, dict], dict] | None  # (ref report, cand report)
    distill_loss: Callable[..., tuple]  # (student_logits, teacher_logits, labels, *, alpha,
    #                                      temperature) -> (loss, parts); a task of several
    #                                      outputs gets each by name (`values`), and its
    #                                      labels by the model's label argument
    #                                      ({"labels": ..., "x_labels": ...})
    agreement: Callable[[Any, Any], float] | None  # parity: share of outputs whose
    #                                                prediction agrees; None: atol alone
    tolerances: dict | None  # precision -> (atol, least agreement); None: parity's defaults
    probe_rows: tuple[dict, ...]  # inputs of mixed shapes the parity gate always checks
    rewrites: frozenset[str]  # graph rewrites export may apply (convert.rewrites names)
    runtime: dict  # input_spec.json "task": what the bundled runtime does after the model
    #                (its input kind's fields are added: `__post_init__`)
    # what an example's input is (edgetransfer/inputs: text, text-pair, words, image): its
    # columns and options, the runtime's reader of it, what package and device time the
    # runtime on
    inputs: InputKind
    secondary: str | None = None  # the report's second figure beside `primary` (reports)
    # the evidence a trained model's floor is judged on (measure/floor.py): (labels,
    # predictions, label_names) -> floor.Evidence, over the validation split; None: not judged
    floor: Callable[..., Any] | None = None
    # the learning rates where the task's models want other than the stages' defaults:
    # finetune's by --method (finetune.DEFAULT_LR), "distill" for distill's
    learning_rates: dict[str, float] = field(default_factory=dict)
    # export's quantizations that suit the task's models, the first the default "int8":
    # dynamic int8 for transformers (their work is MatMuls, which it covers without
    # calibration); CNNs need static (dynamic int8 leaves convolutions in float: wrong and
    # slower than fp32 on EfficientNet-Lite0, bench/RESULTS.md)
    quantize_modes: tuple[str, ...] = quantize.QUANTIZED
    variable_length: bool = True  # rows differ in length (texts): the Trainer groups batches
    #                               by length to pad less; images are all one size
    # the model's outputs by name (a transformers ModelOutput's fields, the ONNX graph's
    # outputs), in the order the model returns them; the first (the primary head) is what
    # `predictions`, the metrics, the gates' figure and the runtime's postprocess read; every
    # one is exported and quantized, taken to examples by `per_example` (one output at a
    # time), compared by parity (`output_parity`), distilled (`distill_loss` gets each) and
    # printed by the bundled runtime (input_spec.json "also")
    outputs: tuple[str, ...] = ("logits",)
    # (the bundle runtime's Predictor, eval rows with gold labels, batch size) -> per-example
    # predictions as `predictions` gives them, read from what the runtime prints for the
    # input a user gives it (raw text, image files): the one figure export, verify and
    # package report (measure/shipped.py); None: the task's gold-encoded rows are scored
    shipped: Callable[..., list] | None = None
    # (the model's transformers config) -> an optimum OnnxConfig whose `outputs` name every
    # output above: export traces the loaded model through it (a model of the task's own
    # class, whose outputs optimum's config for `optimum_task` would not list); None:
    # optimum's own config for `optimum_task`
    onnx_config: Callable[[Any], Any] | None = None
    # parity of the outputs after the first: output name -> (agreement, tolerances), as
    # `agreement` and `tolerances` say them for the first (a regression head beside a
    # classifier: (None, its atol per precision)); an output not named: the first's
    output_parity: dict[str, tuple] = field(default_factory=dict)
    # where the task's model can serve as one head of a joint model (tasks/joint): "sentence"
    # (one output per example, read from the first token's state) or "word" (one per word,
    # from every position); None: it cannot be a head
    head: str | None = None
    # `per_example`'s inverse: (one output per example, the index columns of rows another
    # tokenizer made from the same examples) -> one output per row, of the row's length (a
    # word's entry at its first sub-token, zeros elsewhere): a teacher's outputs put onto a
    # student's rows when the two tokenize differently (distill); None: they must not
    to_rows: Callable[[Any, dict], Any] | None = None
    # distill: (the teacher's preprocessor, as its checkpoint carries it; DataOptions) ->
    # (the student's, {what differs: {"teacher": ..., "student": ...}} for settings.json)
    # where a student reads its inputs otherwise than its teacher (an image at the data's
    # --image-size, the teacher at the side it was fine-tuned at); None: as the teacher does
    student_preprocessor: Callable[[Any, Any], tuple | None] | None = None
    # (a loaded model, the preprocessor that feeds it, the stage's options) -> why the model
    # cannot read what the preprocessor makes (an image side too small for a CNN's strided
    # convolutions), in one line naming the setting and its fix, or None; finetune and
    # distill ask before training. None: nothing to check
    reads: Callable[[Any, Any, Any], str | None] | None = None
    # every output is a head the task scores (a joint model): `output`, `per_example`,
    # `predictions` and the metrics see all of them, a dict by name, not the first alone
    joint: bool = False
    # the metric report's keys the accuracy gates hold to the allowed drop, each on its own
    # (a joint model: each head's primary metric); empty: the primary alone
    gated: tuple[str, ...] = ()

    def __post_init__(self):
        # what the runtime reads (input_spec.json "task" "inputs", "pairs") is the input
        # kind's to say, once; the task's own `runtime` says what follows the model
        kind = self.inputs.spec_task()
        object.__setattr__(self, "runtime", kind | {k: v for k, v in self.runtime.items()
                                                    if k not in kind})

    def parity_of(self, name: str | None = None) -> tuple:
        """(agreement, tolerances) that parity judges the output `name` by (default: the
        first)."""
        if name is None or name == self.outputs[0] or name not in self.output_parity:
            return self.agreement, self.tolerances
        return self.output_parity[name]

    def values(self, named: dict):
        """What the task's functions that see every output (`distill_loss`) take of outputs
        by name: the one output's value where the task has one (every built-in task), else
        the dict {output name: value} in `outputs` order."""
        if len(self.outputs) == 1:
            return named[self.outputs[0]]
        return {name: named[name] for name in self.outputs}

    @property
    def gates(self) -> tuple[str, ...]:
        """The report keys the accuracy gates check: the primary, then `gated`."""
        return tuple(dict.fromkeys((self.primary, *self.gated)))

    @property
    def scored_outputs(self) -> tuple[str, ...]:
        """The outputs the task scores: every one where it is joint, else the first."""
        return self.outputs if self.joint else self.outputs[:1]

    def scored(self, named: dict):
        """What the task scores of outputs by name: every one where it is joint (a dict),
        else the first's value."""
        if self.joint:
            return {name: named[name] for name in self.scored_outputs}
        return named[self.outputs[0]]

    def teacher_column(self, name: str) -> str:
        """Distillation's column of the teacher's output `name` (cached per transfer row):
        `teacher_logits` for the first (the task collators' name for it), `teacher_<name>`
        for the others."""
        return "teacher_logits" if name == self.outputs[0] else f"teacher_{name}"

    def output(self, out, name: str | None = None):
        """One named output of a model's forward (a transformers ModelOutput or a dict of
        arrays: runners, ONNX sessions); no name: what the task scores (`scored`)."""
        if name is None and self.joint:
            return {n: self.output(out, n) for n in self.outputs}
        name = name or self.outputs[0]
        if isinstance(out, dict):  # (a ModelOutput is an OrderedDict too)
            return out[name]
        return getattr(out, name)
