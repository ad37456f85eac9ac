"""A joint task's outputs per example and its figures: each head judged by its own task's
functions (predictions, metrics, compare, distillation loss), on the examples that carry
that head's gold label, and one combined figure over the heads.

The combined figure is what model selection, early stopping and the gates' summary read:
the mean of the heads' primary metrics (`--select mean`), their mean weighted as the losses
are (`weighted`), or one head's (`--select HEAD`). Beside it, "exact_match": the share of
examples every head got entirely right (SNIPS's "sentence accuracy"). A head's figures are
also flat keys `HEAD_METRIC` (intent_accuracy, slots_entity_f1): what the Trainer logs and
the accuracy gates hold each to the allowed drop.
"""

from __future__ import annotations

import numpy as np

from ...data.labels import IGNORE
from .. import words
from .model import SENTENCE

COMBINED = "combined"
EXACT = "exact_match"


def figure(head_name: str, metric: str) -> str:
    """A head's metric as a flat report key."""
    return f"{head_name}_{metric}"


class Scores:
    """The joint task's functions over its heads (`heads`: joint.heads.Head, `kinds`: their
    registered tasks, `select`: the combined figure's rule)."""

    def __init__(self, heads, kinds, select: str):
        self.heads, self.kinds, self.select = list(heads), list(kinds), select

    # --- outputs to examples
    def per_example(self, values, index: dict):
        """Per-row outputs back to examples: a dict by head (or per-row dicts, the labels as
        read) -> one dict per example; one array alone (parity compares output by output)
        by its shape: [rows, positions, labels] is a word head's, [rows, labels] a sentence
        head's."""
        if not isinstance(values, (dict, np.ndarray)) and len(values) and isinstance(
                values[0], dict):  # (the rows' labels as read, a list or a datasets Column:
            #                          {head: ids} per row)
            values = {name: [row[name] for row in values] for name in values[0]}
        if isinstance(values, dict):
            parts = {name: self._one(v, index, self._where(name)) for name, v in values.items()}
            n = len(next(iter(parts.values())))
            return [{name: p[i] for name, p in parts.items()} for i in range(n)]
        values = values if isinstance(values, list) else np.asarray(values)
        ndim = np.asarray(values[0]).ndim + 1 if len(values) else 2
        return self._one(values, index, SENTENCE if ndim == 2 else "word")

    def _where(self, name: str) -> str:
        return next(t.head for h, t in zip(self.heads, self.kinds) if h.name == name)

    @staticmethod
    def _one(values, index: dict, where: str) -> list:
        if where != SENTENCE:
            return words.per_example(values, index)
        first: dict[int, object] = {}
        for row, example in enumerate(index[words.EXAMPLE]):
            first.setdefault(int(example), values[row])  # (a long sentence's first window)
        return [np.asarray(first[e]) for e in sorted(first)]

    def predictions(self, per_example) -> list[dict]:
        """Per example {head: prediction}, of per-example outputs: one dict each, or one
        list per head (verify's outputs, gathered output by output)."""
        if isinstance(per_example, dict):
            per_example = [dict(zip(per_example, v)) for v in zip(*per_example.values())]
        by_head = {h.name: t.predictions([e[h.name] for e in per_example])
                   for h, t in zip(self.heads, self.kinds)}
        return [{name: p[i] for name, p in by_head.items()} for i in range(len(per_example))]

    # --- figures
    def _labelled(self, head, labels: list) -> list[int]:
        """The examples that carry the head's gold label."""
        if self._where(head.name) == SENTENCE:
            return [i for i, y in enumerate(labels) if int(y[head.name]) != IGNORE]
        return [i for i, y in enumerate(labels) if np.any(np.asarray(y[head.name]) != IGNORE)]

    def _names(self, label_names: list[str]) -> dict[str, list[str]]:
        from .data import split_flat

        return split_flat(label_names)

    def combine(self, values: dict[str, float]) -> float:
        """The combined figure of each head's primary value (by head name; a head absent
        from `values`, unscored on this split, is left out)."""
        if self.select in values:
            return values[self.select]
        heads = [h for h in self.heads if h.name in values]
        if not heads:
            return 0.0
        if self.select == "weighted" and sum(h.weight for h in heads) > 0:
            w = np.array([h.weight for h in heads], dtype=float)
            return float(np.dot(w, [values[h.name] for h in heads]) / w.sum())
        return float(np.mean([values[h.name] for h in heads]))

    def metrics(self, labels: list, predictions: list, label_names: list[str]) -> dict:
        names = self._names(label_names)
        heads, primary = {}, {}
        for h, t in zip(self.heads, self.kinds):
            at = self._labelled(h, labels)
            if not at:  # (a split labelled for other heads only: this one is not scored)
                heads[h.name] = {"n": 0}
                continue
            gold = [self._gold(labels[i][h.name]) for i in at]
            heads[h.name] = t.metrics(gold, [predictions[i][h.name] for i in at],
                                      names[h.name])
            primary[h.name] = float(heads[h.name][t.primary])
        report = {COMBINED: round(self.combine(primary), 6),
                  EXACT: self._exact(labels, predictions), "n": len(labels)}
        for h, t in zip(self.heads, self.kinds):
            if h.name not in primary:
                continue
            report[figure(h.name, t.primary)] = primary[h.name]
            if t.secondary:
                report[figure(h.name, t.secondary)] = float(heads[h.name][t.secondary])
        return report | {"heads": heads}

    @staticmethod
    def _gold(value):
        return value if np.ndim(value) == 0 else np.asarray(value)

    def _exact(self, labels: list, predictions: list) -> float:
        """Share of the examples labelled for every head that every head got right."""
        right = n = 0
        for y, p in zip(labels, predictions):
            gold = [np.asarray(y[h.name]) for h in self.heads]
            if any(np.all(g == IGNORE) for g in gold):
                continue
            n += 1
            right += all(np.array_equal(g, np.asarray(p[h.name]))
                         for g, h in zip(gold, self.heads))
        return round(right / n, 6) if n else 0.0

    def gated(self) -> tuple[str, ...]:
        return tuple(figure(h.name, t.primary) for h, t in zip(self.heads, self.kinds))

    def compare(self, labels, reference, candidate, label_names, seed: int = 0) -> dict:
        """Each head's drop (its own task's compare: points lost with a paired bootstrap
        interval) on its labelled examples, and the combined drop: the heads' points and
        interval ends combined as the figure is (an interval about as wide or wider than
        a joint bootstrap's: it takes the heads' errors to move together)."""
        names = self._names(label_names)
        out, points, lows, highs = {}, {}, {}, {}
        flips = total = 0
        for h, t in zip(self.heads, self.kinds):
            at = self._labelled(h, labels)
            drop = t.compare([self._gold(labels[i][h.name]) for i in at],
                             [reference[i][h.name] for i in at],
                             [candidate[i][h.name] for i in at], names[h.name], seed=seed)
            out[figure(h.name, t.primary)] = drop[t.primary]
            points[h.name] = drop[t.primary]["points"]
            lows[h.name], highs[h.name] = drop[t.primary]["ci95"]
            flips += drop["flips"]
            total += drop.get("words", drop.get("n", len(at)))
            out.setdefault("heads", {})[h.name] = drop
        out[COMBINED] = {"points": round(self.combine(points), 3),
                         "ci95": [round(self.combine(lows), 3), round(self.combine(highs), 3)]}
        return out | {"n": len(labels), "flips": flips,
                      "flip_rate": round(flips / max(total, 1), 4)}

    def per_label_delta(self, reference: dict, candidate: dict) -> dict:
        return {h.name: t.per_label_delta(reference["heads"][h.name],
                                          candidate["heads"][h.name])
                for h, t in zip(self.heads, self.kinds) if t.per_label_delta is not None}

    def render(self, report: dict) -> str:
        parts = [f"combined ({self.select}) {report[COMBINED]:.4f}, exact match "
                 f"{report[EXACT]:.4f} over {report['n']} examples"]
        for h, t in zip(self.heads, self.kinds):
            rep = report["heads"][h.name]
            if not rep.get("n"):
                parts.append(f"[{h.name}: {t.name}] no example of this split has its label")
                continue
            body = (t.render(rep) if t.render is not None else
                    "  ".join(f"{k} {v:.4f}" for k, v in rep.items()
                              if isinstance(v, float)))
            parts.append(f"[{h.name}: {t.name}]\n{body}")
        return "\n\n".join(parts)

    # --- the bundle's answer
    def shipped(self, predictor, ds, batch_size: int = 1) -> list[dict]:
        """Per example {head: prediction} read from what the bundled runtime prints for the
        example's words joined as text (runtime/predict.py `_heads`): a sentence head's
        label as its id, a word head's spans as the gold words' tag ids (tasks/spans.py's
        rules, the spans that cut a word kept)."""
        from .. import spans

        joined = [(spans.join(list(ws)), list(ws)) for ws in ds["tokens"]]
        rows = predictor.predict([text for (text, _), _ in joined], batch_size=batch_size)
        out = []
        for row, ((_, starts), ws) in zip(rows, joined):
            ends = [s + len(w) for s, w in zip(starts, ws)]
            answer = {}
            for h in self.heads:
                labels = predictor.head_labels[h.name]
                if self._where(h.name) == SENTENCE:
                    answer[h.name] = labels.index(row[h.name]["label"])
                    continue
                tags, cut = spans.word_tags(row[h.name], starts, ends)
                ids = spans.tag_ids(tags, labels).view(spans.Tags)
                ids.cut = tuple(cut)
                answer[h.name] = ids
            out.append(answer)
        return out

    # --- distillation
    def distill_loss(self, student: dict, teacher: dict, labels: dict, *, alpha: float,
                     temperature: float, **extra):
        """Each head's own distillation loss (soft targets at the temperature plus its
        gold labels), weighted as the heads' losses are."""
        loss, parts = 0.0, {}
        for h, t in zip(self.heads, self.kinds):
            if h.weight == 0:
                continue
            mask = extra.get(f"teacher_mask_{h.name}")
            more = {"teacher_mask": mask} if mask is not None else {}
            part, _ = t.distill_loss(student[h.name], teacher[h.name], labels[h.name],
                                     alpha=alpha, temperature=temperature, **more)
            parts[h.name] = part
            loss = loss + h.weight * part
        return loss, parts
