"""A fixed-shape model (an accelerator's: `export --for nnapi|coreml|qnn`) behind the
interface of a dynamic one.

NPU execution providers take only fixed input shapes, so such a model is exported for batch
1 and one sequence length (the bucket), and its attention mask enters as an additive float
bias (`attention_bias`: 0 where a token is real, MASKED where it is padding), computed here
before the model, because the Where/GatherND/Expand a mask becomes inside the graph are
what NNAPI and CoreML refuse. `FixedShapes` wraps the onnxruntime session: it takes the
tokenizer's feeds at any batch size and padded length, runs each row padded to the bucket,
and gives the outputs back at the length it was given, so the gates, the scorers and the
bundle's runtime use it as they use any session. A longer input is refused (the runtime
truncates or windows to the bucket before it gets here).

Shipped in the bundle beside predict.py; numpy only (no torch, no edgetransfer).
"""

from __future__ import annotations

# The embedding lookups of a graph whose accelerator refuses them (CoreML: Gather), as a
# model of their own beside it, run on the CPU before it (convert/npu_graph.py).
FRONT = "embeddings.onnx"
BIAS_INPUT = "attention_bias"
MASK_INPUT = "attention_mask"
# What a padded key position adds to its attention scores: exp(-10000) is exactly 0 in fp32
# and fp16, so padding gets no weight (as the float minimum the exporter uses gives), and
# the value fits in fp16, an NPU's precision, where the float32 minimum overflows to -inf
# (and -inf minus -inf is NaN in a softmax over an all-padding row).
MASKED = -10000.0


class ShapeProblem(ValueError):
    """An input the fixed-shape model cannot take (longer than its bucket)."""


class _Input:
    """An input as onnxruntime's NodeArg describes it (name, type, shape)."""

    def __init__(self, name: str, type_: str, shape):
        self.name, self.type, self.shape = name, type_, shape


def fixed(session) -> bool:
    """Whether a session's model is an accelerator's fixed-shape export: every input
    dimension a number, batch 1, and its inputs a tokenizer's (the mask as its bias), an
    image's, or looked-up embeddings with the bias. (Any other fixed-shape model is left
    as it is.)"""
    inputs = session.get_inputs()
    names = {i.name for i in inputs}
    return (bool(inputs) and all(isinstance(d, int) for i in inputs for d in (i.shape or [None]))
            and all(i.shape[0] == 1 for i in inputs)
            and bool(names & {BIAS_INPUT, "input_ids", "pixel_values"}))


def sequence_length(session) -> int | None:
    """The bucket a fixed-shape text model takes (None: not a text model)."""
    for i in session.get_inputs():
        if i.name == "input_ids":
            return int(i.shape[1])
    return None


class FixedShapes:
    """An onnxruntime session of a fixed-shape model, taking dynamic feeds (see above)."""

    def __init__(self, session, front=None):
        import numpy as np

        self.np = np
        self.session, self.front = session, front
        # (with a front, the token inputs are the front's; its outputs feed the model)
        given = [*(front.get_inputs() if front else []), *session.get_inputs()]
        made = {o.name for o in front.get_outputs()} if front else set()
        self.length = sequence_length(front) if front else sequence_length(session)
        self.shapes = {i.name: list(i.shape) for i in given if i.name not in made}
        # the model's inputs as a dynamic model's would be (the bias as the tokenizer's mask)
        self._inputs = [_Input(MASK_INPUT, "tensor(int64)", ["batch_size", "sequence_length"])
                        if i.name == BIAS_INPUT else
                        _Input(i.name, i.type, ["batch_size", *(
                            ["sequence_length"] if self.length else i.shape[1:])])
                        for i in given if i.name not in made]

    def get_inputs(self):
        return self._inputs

    def get_outputs(self):
        return self.session.get_outputs()

    def get_providers(self):
        return self.session.get_providers()

    def run(self, names, feeds: dict):
        """Each row on its own, padded to the bucket; outputs stacked, at the given length."""
        np = self.np
        names = names or [o.name for o in self.session.get_outputs()]
        rows = len(next(iter(feeds.values())))
        given = feeds["input_ids"].shape[1] if "input_ids" in feeds else None
        outs = [self.session.run(names, self._looked_up(self.model_feeds(
            {k: v[i:i + 1] for k, v in feeds.items()}))) for i in range(rows)]
        return [np.concatenate([self._back(o[k], given) for o in outs]) for k in
                range(len(names))]

    def model_feeds(self, feeds: dict) -> dict:
        """One row's dynamic feeds as the model takes them: padded to the bucket, the mask
        as the additive bias (also the calibration feeds of its quantizer)."""
        np = self.np
        if self.length is None:
            return {k: v for k, v in feeds.items() if k in self.shapes}
        given = feeds["input_ids"].shape[1]
        mask = feeds.get(MASK_INPUT, np.ones_like(feeds["input_ids"]))
        if given > self.length:
            if mask[:, self.length:].any():
                raise ShapeProblem(f"an input of {int(mask.sum())} tokens is longer than "
                                   f"the model's fixed {self.length}; truncate or window it "
                                   f"to {self.length} tokens")
            feeds = {k: v[:, :self.length] for k, v in feeds.items()}
            mask, given = mask[:, :self.length], self.length
        pad = [(0, 0), (0, self.length - given)]
        out = {}
        for name, shape in self.shapes.items():
            if name == BIAS_INPUT:
                bias = (1.0 - np.pad(mask, pad).astype(np.float32)) * MASKED
                out[name] = bias.reshape(shape).astype(np.float32)
            else:
                out[name] = np.pad(feeds[name], pad).astype(feeds[name].dtype)
        return out

    def _looked_up(self, feeds: dict) -> dict:
        """The model's own feeds: the front's lookups in place of the token ids it reads."""
        if self.front is None:
            return feeds
        names = [i.name for i in self.front.get_inputs()]
        made = dict(zip([o.name for o in self.front.get_outputs()],
                        self.front.run(None, {n: feeds[n] for n in names})))
        return made | {k: v for k, v in feeds.items() if k not in names}

    def _back(self, value, given: int | None):
        """One row's output at the length the caller gave (a per-token output is cut back
        from the bucket, or padded where the caller's padding was longer)."""
        np = self.np
        if given is None or value.ndim < 3 or value.shape[1] != self.length:
            return value
        if given <= self.length:
            return value[:, :given]
        return np.pad(value, [(0, 0), (0, given - self.length)] + [(0, 0)] * (value.ndim - 2))


def wrap(session, front=None):
    """The session as the callers of a dynamic model use it: a fixed-shape model's behind
    FixedShapes (with `front`, the session of its embeddings.onnx), any other as it is."""
    return FixedShapes(session, front) if fixed(session) else session


def needs_front(session) -> bool:
    """Whether the model takes looked-up embeddings (an input no tokenizer gives: its
    embeddings.onnx makes them)."""
    return fixed(session) and not any(i.name == "input_ids" or i.name == "pixel_values"
                                      for i in session.get_inputs())
