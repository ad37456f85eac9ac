"""Rows taken in order of length for passes that only read the model (evaluation, the
teacher's outputs), and their results put back at each row's place.

A batch pads to its longest row. Taken in the set's order, nearly every batch of 64 holds one
of the set's long rows: SST-2's dev rows run 1 to 52 words (mean 9.5), so a 12-layer teacher
spent 6 to 8 minutes on each evaluation of 6,735 rows, most of it on padding. Training keeps
the Trainer's own `group_by_length` (shuffled within groups); this is for the passes whose
order does not matter to the result.
"""

from __future__ import annotations


def length_order(dataset) -> list[int] | None:
    """Row indices from the shortest row to the longest (stable: ties keep the set's order);
    None where rows carry no token ids (images: one size) and the set's order is as good."""
    if "input_ids" not in dataset.column_names:
        return None
    lengths = [len(ids) for ids in dataset["input_ids"]]
    return sorted(range(len(lengths)), key=lengths.__getitem__)


def in_row_order(values, order: list[int] | None):
    """`values` computed over rows taken in `order` (an array per output, rows first; a
    tuple of them for several outputs or labels, a dict by head for a joint model's), put
    back in the set's order."""
    if order is None or values is None:
        return values
    if isinstance(values, dict):
        return {k: in_row_order(v, order) for k, v in values.items()}
    if isinstance(values, (tuple, list)):
        return type(values)(in_row_order(v, order) for v in values)
    import numpy as np

    back = np.empty(len(order), dtype=np.int64)
    back[np.asarray(order)] = np.arange(len(order))
    return values[back]


class OrderSampler:
    """A sampler (for the Trainer's evaluation DataLoader) that yields a fixed order."""

    def __init__(self, order: list[int]):
        self.order = order

    def __iter__(self):
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)
