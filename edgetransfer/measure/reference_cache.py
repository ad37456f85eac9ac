"""The reference's predictions, kept between verify runs (`verify --reference-cache DIR`).

Between runs of one recipe's variants (another student depth, more data) only the
candidates change, yet verify scored its reference every time: the 12-layer CoNLL-2003
teacher's pass over test.txt was 12.5 of a verify's 19 minutes on 2 cores, in each lever
run of bench/levers.py. Kept here under a key of everything the predictions depend on:

- the reference and the data by content, as artifacts.fingerprint identifies an input (an
  artifact by its manifest, which holds its files' hashes; a moved folder still matches,
  an edited one does not);
- every verify setting except those named in NOT_BEARING (so a setting added later
  changes the key until someone decides it does not bear on the predictions);
- the reference's label names and precision, the versions of the packages that read and
  run it, and edgetransfer's own source (the runtime that reads the inputs and the rules
  that turn its answers into predictions; an unreleased change keeps the version number).

A file is JSON (no pickle), written whole under a temporary name and then moved into
place (a folder that cannot be written is warned about: the run goes on); one that cannot
be read back as one prediction per example, each a label id the reference has, is warned
about and computed again. Written by hand: the datasets and evaluate caches key their own
transforms and metrics, not a model's predictions over a file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from ..errors import EdgeTransferError
from ..untrusted import clip, read_json

log = logging.getLogger("edgetransfer")

FORMAT = 1
PREFIX = "reference-predictions-"  # (a kept file's name: PREFIX + key + .json)
# verify's settings that change no prediction of the reference: the candidates, the gates'
# thresholds, how latency is timed, where reports go. `reference` and `data` are keyed by
# content instead of by path. (threads: the same model's answers at another thread count;
# a sum's order may move a logit in its last bits, never seen to change a label)
NOT_BEARING = frozenset({
    "reference", "data", "candidate", "max_accuracy_drop", "atol", "min_agreement",
    "threads", "batch_sizes", "iterations", "rounds", "latency_samples", "latency",
    "baseline", "max_latency_regression", "update_baseline", "out", "junit", "summary",
    "seed", "allow_degenerate", "reference_cache"})
PACKAGES = ("torch", "transformers", "tokenizers", "onnxruntime", "numpy", "pillow")


def _source_digest() -> str:
    """edgetransfer's Python source, hashed (a few hundred small files: milliseconds)."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(f"{f.relative_to(root)}:".encode() + f.read_bytes())
    return h.hexdigest()


def key(settings: dict, model_identity: str, data_fingerprint: str,
        label_names: list[str], precision: str) -> str:
    """The hex key of a reference's predictions (the module's docstring lists what counts;
    the model's and the data's identities are artifacts.fingerprint's)."""
    from ..artifacts import versions

    h = hashlib.sha256(json.dumps({
        "format": FORMAT, "model": model_identity, "data": data_fingerprint,
        "labels": label_names, "precision": precision, "packages": versions(*PACKAGES),
        "source": _source_digest(),
        "settings": {k: v for k, v in sorted(settings.items()) if k not in NOT_BEARING},
    }, sort_keys=True, default=str).encode())
    return h.hexdigest()[:24]


def kept(folder: str | Path, hex_key: str, examples: int, labels: int, compute) -> tuple:
    """(the predictions under `hex_key` in `folder` when a run left them there (one per
    example of `examples`, each id below `labels`), else `compute()`'s, then left there;
    the file read, or None when computed)."""
    path = Path(folder) / f"{PREFIX}{hex_key}.json"
    if path.is_file():
        try:
            preds = _read(path, examples, labels)
            log.info("the reference's predictions: reusing %s", path)
            return preds, path
        except Exception as e:  # (whatever a damaged or foreign file makes of the reading)
            log.warning("%s: cannot be read back (%s); scoring the reference again", path,
                        clip(str(e), 200))
    preds = compute()
    scratch = path.with_name(f".{path.name}.{os.getpid()}.partial")
    # (a task's answers as one array stay one array, of its shape and dtype; else a list)
    stored = _encode(preds) if isinstance(preds, np.ndarray) else [_encode(p) for p in preds]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch.write_text(json.dumps({"format": FORMAT, "predictions": stored}),
                           encoding="utf-8")
        os.replace(scratch, path)
        log.info("the reference's predictions kept in %s", path)
    except OSError as e:
        with contextlib.suppress(OSError):  # (its folder may be what failed)
            scratch.unlink()
        log.warning("--reference-cache %s: cannot keep the reference's predictions there "
                    "(%s); they are used, not kept", folder, e.strerror or e)
    return preds, None


# (a bound on a file read back, per example: CoNLL-2003's 3,453 sentences are ~1 MB of
# tag ids, ~300 bytes each)
PER_EXAMPLE = 16 << 10


def _read(path: Path, examples: int, labels: int):
    try:
        record = read_json(path, limit=(1 << 20) + examples * PER_EXAMPLE)
    except EdgeTransferError as e:
        raise ValueError(str(e)) from None
    if record.get("format") != FORMAT:
        raise ValueError(f"format {record.get('format')!r}, not {FORMAT}")
    stored = record["predictions"]
    preds = _decode(stored) if isinstance(stored, dict) else [_decode(p) for p in stored]
    if len(preds) != examples:
        raise ValueError(f"{len(preds)} predictions for {examples} examples")
    _check_ids(preds, labels)
    return preds


def _check_ids(preds, labels: int) -> None:
    """Every id in [0, labels) (a head's: >= 0; its labels are the head's own): a negative
    one would index from the end of the label list. (_dtype has made them whole numbers.)"""
    for p in preds if not isinstance(preds, np.ndarray) else [preds]:
        for v in p.values() if isinstance(p, dict) else [p]:
            ids = np.asarray(v)
            if ids.size and (ids.min() < 0 or (not isinstance(p, dict) and ids.max() >= labels)):
                raise ValueError(f"a label id outside 0..{labels - 1}")


# A prediction is what a task's `shipped` answers per example: a class id, a sentence's tag
# ids with the spans that cut a word (tasks/spans.py Tags), or a dict of those per head.
def _encode(p):
    from ..tasks.spans import Tags

    if isinstance(p, Tags):
        return {"$": "tags", "ids": p.tolist(), "dtype": str(p.dtype), "cut": list(p.cut)}
    if isinstance(p, np.ndarray):
        return {"$": "array", "values": p.tolist(), "dtype": str(p.dtype)}
    if isinstance(p, (int, np.integer)):
        return int(p)
    if isinstance(p, dict):
        return {"$": "heads", "values": {k: _encode(v) for k, v in p.items()}}
    raise TypeError(f"a prediction of type {type(p).__name__}")


def _dtype(name) -> np.dtype:
    dtype = np.dtype(str(name))
    if dtype.kind not in "biu":  # (label ids: no floats, no objects from a file)
        raise ValueError(f"a stored prediction of dtype {dtype}")
    return dtype


def _decode(p):
    from ..tasks.spans import Tags

    if not isinstance(p, dict):
        if isinstance(p, int):
            return p
        raise TypeError(f"a stored prediction of type {type(p).__name__}")
    kind = p["$"]
    if kind == "tags":
        ids = np.asarray(p["ids"], dtype=_dtype(p["dtype"])).view(Tags)
        ids.cut = tuple(str(c) for c in p["cut"])
        return ids
    if kind == "array":
        return np.asarray(p["values"], dtype=_dtype(p["dtype"]))
    if kind == "heads":
        return {str(k): _decode(v) for k, v in p["values"].items()}
    raise ValueError(f"a stored prediction of kind {kind!r}")
