#!/usr/bin/env python3
"""Run this bundle's model on texts (or images), using onnxruntime, numpy and tokenizers
(or Pillow) only.

In the unpacked bundle, after installing requirements.txt (PIP_INSTALL: wheels only, each
checked against its sha256, nothing else resolved):

    python predict.py "turn the kitchen lights off"
    python predict.py --input texts.jsonl      # or .csv, .tsv, .txt (one text a line)
    python predict.py --benchmark 200 --input texts.jsonl   # timing JSON instead
    python predict.py photo.jpg scan.png       # an image bundle: image files (or folders)

A file with a second text column (sentence2 beside sentence1, ...: see PAIR_COLUMNS, or
--text-pair-column) gives text pairs. One JSON object a line per text; what it holds is
input_spec.json's "task" "postprocess" (POSTPROCESS below): a classifier gives {"text",
"label", "score", "scores"}, the scores being the softmax of the model's logits; a model
with further outputs (input_spec.json "also": another head on the encoder) adds "outputs":
{name: value} to each row, as the model gives them (Predictor.further). The model
is model.ort where the bundle has one (onnxruntime's own format: faster to load, and what
its minimal builds read), else model.onnx. An image bundle (input_spec.json "task" "inputs":
"image") reads PNG/JPEG/... files with Pillow and prepares them as its "image" entry says
(pixels.py, shipped beside this file) and prints {"image", "label", "score", "scores"}.
On start every file manifest.json lists is checked (size and sha256), so a bundle changed
or damaged on its way to the device is refused.

Exit codes: 0 done; 2 a damaged bundle or an unusable input (one line on stderr); 1 a bug.

This is edgetransfer/bundle/runtime/predict.py, copied unchanged into each bundle; `edgetransfer
predict` imports the same file, and export and verify score every model through its Predictor
(Predictor.around), so what is measured on the build machine is what runs on the device.
Keep it to the standard library, numpy, tokenizers (or Pillow) and onnxruntime; heavy
imports stay inside Predictor so the checksum check can be imported alone.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import sys
import time
from pathlib import Path, PurePosixPath

FORMAT = 1  # the bundle layout this runtime reads (manifest.json "format")
MANIFEST = "manifest.json"
SPEC = "input_spec.json"
# Text columns tried in order when none is named, and the known pairs of columns (tried
# first, in this order): edgetransfer.tasks.text's (a test keeps them equal).
TEXT_COLUMNS = ("text", "sentence", "sentence1", "question", "question1", "premise")
PAIR_COLUMNS = {"sentence1": "sentence2", "question": "sentence", "question1": "question2",
                "premise": "hypothesis", "text": "text_pair"}
DTYPES = {"tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(float)": "float32"}
IMAGE_INPUT = ("pixel_values", "float32")  # an image model's one input
# the tokenizers Encoding attribute that feeds each model input
ENCODING_FIELDS = {"input_ids": "ids", "attention_mask": "attention_mask",
                   "token_type_ids": "type_ids"}
# How a bundle's requirements are installed, everywhere (this runtime's hint, the bundle's
# README, device venvs, ARM emulation): prebuilt wheels only (no setup.py runs), each checked
# against a sha256 requirements.txt lists, and nothing resolved beyond its pinned lines. The
# index is the installer's own: requirements.txt may name none (edgetransfer.bundle.requirements).
PIP_FLAGS = ("--only-binary=:all:", "--no-deps", "--require-hashes")
PIP_INSTALL = ("pip", "install", *PIP_FLAGS)
# A bundle's JSON files are small (labels, settings); a larger one is not a bundle's. The
# manifest of a big vocabulary's tokenizer lists ~30k labels at most.
MAX_JSON_BYTES = 64 * 2**20
MAX_FILES = 1000  # a bundle holds about ten files; thousands means it is not one


class BundleError(Exception):
    """A damaged bundle or an unusable input: one line for the user, exit 2."""

    exit_code = 2


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def safe_relative(name: str) -> PurePosixPath:
    """`name` as a relative path that stays inside its folder; BundleError otherwise."""
    path = PurePosixPath(name)
    if (not path.parts or "\x00" in name or "\\" in name or path.is_absolute()
            or any(part == ".." for part in path.parts)):
        raise BundleError(f"unsafe file name {name!r} (absolute, '..' or a backslash)")
    return path


def beside(folder: Path, name: str) -> Path:
    """`name`, read from a data file in `folder` (relative to it, or absolute), as a path
    inside `folder`; BundleError when it leaves it. Lexical: the data names a file, the
    user's own links on their disk are theirs."""
    base = os.path.abspath(folder)
    path = os.path.normpath(os.path.join(base, name)) if "\x00" not in name else base
    # (strings, not Path.parents: a table may name 60,000 pictures, each checked here)
    if path == base or not path.startswith(base.rstrip(os.sep) + os.sep):
        raise BundleError(f"{name[:80]!r} leaves the file's folder")
    return Path(path)


def read_json(path: Path):
    """A bundle's JSON file, bounded: at most MAX_JSON_BYTES, nesting Python's parser takes."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_JSON_BYTES + 1)
    except FileNotFoundError:
        raise BundleError(f"{path}: missing; the bundle is incomplete") from None
    except IsADirectoryError:
        raise BundleError(f"{path}: is a folder, not a JSON file") from None
    if len(raw) > MAX_JSON_BYTES:
        raise BundleError(f"{path}: larger than {MAX_JSON_BYTES // 2**20} MiB; not a bundle's "
                          f"JSON file")
    try:
        return json.loads(raw.decode("utf-8"))
    except ValueError as e:  # (also JSONDecodeError, UnicodeDecodeError, a 5000-digit int)
        raise BundleError(f"{path}: not valid JSON ({str(e)[:120]})") from None
    except RecursionError:
        raise BundleError(f"{path}: nested too deeply to be a bundle's JSON file") from None


def inside(folder: Path, name: str, field: str) -> Path:
    """`name`, a file name read from the bundle's metadata (`field` says where), as a path
    that stays inside `folder`: relative, no `..`, and no link on the way out (a file or a
    folder that is a symlink is refused, wherever it points). BundleError otherwise."""
    if not isinstance(name, str) or not name:
        raise BundleError(f"{field}: {str(name)[:80]!r} is not a file name")
    try:
        relative = safe_relative(name)
    except BundleError as e:
        raise BundleError(f"{field}: {e}; a bundle names only its own files") from None
    path, step = Path(folder), Path(folder)
    for part in relative.parts:
        step = step / part
        if step.is_symlink():
            raise BundleError(f"{field}: {name!r} goes through a link ({step.relative_to(folder)})"
                              f"; a bundle holds regular files only")
    if path.resolve() not in (path / relative).resolve().parents:
        raise BundleError(f"{field}: {name!r} leaves the bundle's folder")
    return path / relative


def member(folder: Path, manifest: dict, name, field: str) -> Path:
    """A file the bundle's metadata names: inside the folder (`inside`) and listed in
    manifest.json (so its sha256 was checked); BundleError otherwise."""
    path = inside(folder, name, field)
    if name not in manifest["files"]:
        raise BundleError(f"{field}: {name!r} is not a file manifest.json lists; a bundle "
                          f"reads only its own, checked files")
    return path


def check_files(folder: Path) -> dict:
    """Check every file manifest.json lists (size, sha256); return the manifest.

    Files the manifest does not list are left alone here (a user's inputs may sit beside
    the bundle); `edgetransfer predict` refuses them in an archive.
    """
    folder = Path(folder)
    manifest = read_json(inside(folder, MANIFEST, "bundle"))
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{folder / MANIFEST}: not a bundle manifest of format {FORMAT} "
                          f"(made by another edgetransfer version?)")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise BundleError(f"{folder / MANIFEST}: lists no files")
    if len(files) > MAX_FILES:
        raise BundleError(f"{folder / MANIFEST}: lists more than {MAX_FILES} files; not a "
                          f"bundle")
    for name, entry in sorted(files.items()):
        path = inside(folder, name, f"{MANIFEST} files")
        if not isinstance(entry, dict):
            raise BundleError(f"{folder / MANIFEST}: files: {name!r} has no size and sha256")
        if not path.is_file():
            raise BundleError(f"bundle {folder}: {name} is missing (or not a regular file); "
                              f"copy the whole bundle again")
        if path.stat().st_size != entry.get("bytes") or sha256(path) != entry.get("sha256"):
            raise BundleError(f"bundle {folder}: {name} fails its sha256 check (changed or "
                              f"damaged after packaging); copy the bundle again")
    return manifest


def read_texts(path, text_column: str | None = None,
               text_pair_column: str | None = None) -> list:
    """The inputs of a .jsonl, .csv, .tsv or .txt file, in file order: texts, or (text,
    pair) tuples where the file has a pair column (named, or PAIR_COLUMNS' match)."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise BundleError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise BundleError(f"{path}: is a folder; give a .jsonl, .csv, .tsv or .txt file") from None
    except UnicodeDecodeError as e:
        raise BundleError(f"{path}: byte offset {e.start} is not UTF-8") from None
    if suffix == ".txt":
        rows = [(n, {"text": line}) for n, line in enumerate(raw.splitlines(), 1)
                if line.strip()]
        text_column = "text"
    elif suffix in (".jsonl", ".ndjson", ".json"):
        rows = []
        # split on newlines only: U+2028 inside a JSON string is not a line break
        for n, line in enumerate(raw.split("\n"), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise BundleError(f"{path}: line {n}: not JSON ({e.msg})") from None
            except ValueError as e:  # (an integer of more than 4300 digits)
                raise BundleError(f"{path}: line {n}: not JSON ({str(e)[:80]})") from None
            except RecursionError:
                raise BundleError(f"{path}: line {n}: nested too deeply to be a row") from None
            if not isinstance(row, dict):
                raise BundleError(f"{path}: line {n}: expected a JSON object")
            rows.append((n, row))
    elif suffix in (".csv", ".tsv", ".tab"):
        tab = suffix != ".csv"
        # GLUE's TSV is unquoted: a stray '"' must not swallow the lines after it
        reader = csv.DictReader(io.StringIO(raw, newline=""), delimiter="\t" if tab else ",",
                                quoting=csv.QUOTE_NONE if tab else csv.QUOTE_MINIMAL)
        try:
            rows = [(reader.line_num, row) for row in reader]
        except csv.Error as e:  # (a field over the csv module's 131,072 characters)
            raise BundleError(f"{path}: line {reader.line_num}: {e}") from None
    else:
        raise BundleError(f"{path}: unknown file type {suffix or '(none)'!r}; use .jsonl, "
                          f".csv, .tsv or .txt")
    if not rows:
        raise BundleError(f"{path}: holds no texts")
    first = rows[0][1]
    if text_column is None and text_pair_column is None:
        # a known pair of columns wins over a lone text column, as in training
        text_column, text_pair_column = next(
            ((a, b) for a, b in PAIR_COLUMNS.items() if a in first and b in first),
            (None, None))
    column = text_column or next((c for c in TEXT_COLUMNS if c in first), None)
    if column is None:
        raise BundleError(f"{path}: no text column (tried {', '.join(TEXT_COLUMNS)}); name "
                          f"it with --text-column")
    pair = text_pair_column
    if pair is None and PAIR_COLUMNS.get(column) in rows[0][1]:
        pair = PAIR_COLUMNS[column]
    texts = []
    for n, row in rows:
        values = [row.get(c) for c in (column, pair) if c]
        for c, value in zip((column, pair), values):
            if not isinstance(value, str) or not value.strip():
                raise BundleError(f"{path}: line {n}: {c!r} is missing or empty")
        texts.append(tuple(values) if pair else values[0])
    return texts


def _softmax_label(predictor, inputs, top_k):
    """`{"text", "label", "score", "scores": {label: probability}}` (an image bundle:
    "image", its path): the probabilities are the softmax of the model's logits (in float64)
    and "label" is the most probable one."""
    np = predictor.np
    labels = predictor.labels
    for text, p in zip(inputs, softmax(np, predictor.logits(inputs))):
        order = np.argsort(-p, kind="stable")[:top_k]
        yield input_row(text, predictor.kind) | {
            "label": labels[order[0]], "score": float(p[order[0]]),
            "scores": {labels[i]: float(p[i]) for i in order}}


def _values(predictor, inputs, top_k):
    """`{"text", "value", "values": {name: value}}`: the model's outputs as they are (a
    regression), each by its name; "value" when there is one output."""
    labels = predictor.labels
    for text, row in zip(inputs, predictor.logits(inputs).astype("float64")):
        values = {labels[i]: float(v) for i, v in enumerate(row.reshape(-1))}
        yield input_row(text) | ({"value": next(iter(values.values()))} if len(values) == 1
                            else {}) | {"values": values}


def _entities(predictor, inputs, top_k):
    """`{"text", "entities": [{"type", "text", "start", "end", "score"}]}`: words are the
    tokenizer's (its pre-tokenizer splits at spaces and punctuation); a word's tag is the
    most probable one at its first sub-token; tags are read as IOB2, repaired as conlleval
    does (an I-X that does not continue an X entity starts one; a B-X always does); an
    entity's score is the mean probability of its words' tags; `start`/`end` are character
    offsets into the text, so `text[start:end]` is exactly the entity's text. Texts longer
    than the model's limit run in overlapping windows, each word scored once
    (plan_windows)."""
    for text in inputs:
        _single(text)
        spans, probs = predictor.word_probabilities(text)
        yield {"text": text, "entities": _spans(text, spans, probs, predictor.labels)}


def _single(text) -> None:
    if isinstance(text, tuple):
        raise BundleError("this bundle tags single texts; the input has text pairs (a "
                          "second text column): name one column with --text-column")


def _spans(text: str, spans: list, probs, labels: list) -> list[dict]:
    """The entities of one text's words (`_entities` says how)."""
    best = probs.argmax(-1) if len(spans) else []
    tags = [labels[i] for i in best]
    entities = []
    for kind, first, last in entity_spans(tags):
        start, end = spans[first][0], spans[last][1]
        score = float(sum(probs[w, best[w]] for w in range(first, last + 1))
                      / (last - first + 1))
        entities.append({"type": kind, "text": text[start:end], "start": start,
                         "end": end, "score": round(score, 6)})
    return entities


def _heads(predictor, inputs, top_k):
    """`{"text", HEAD: ..., ...}`, one key per head of the model (input_spec.json task
    "heads", in order), all from one model run per window: a head with a label per text as
    `{"label", "score"}` (the softmax of its output on the text's first window), a head
    with a tag per word as a list of entity spans `[{"type", "text", "start", "end",
    "score"}]` (read as for a tagger: the tokenizer's words, first sub-token, IOB2 with the
    conlleval repair, `text[start:end]` exactly the span's text). labels.json holds every
    head's labels in output order, each as "HEAD:label"."""
    for text in inputs:
        _single(text)
        spans, outputs = predictor.word_outputs(text)
        row = {"text": text}
        for head in predictor.spec["task"]["heads"]:
            name, labels = head["name"], predictor.head_labels[head["name"]]
            probs = outputs[name]
            if head["postprocess"] == "entities":
                row[name] = _spans(text, spans, probs, labels)
            elif len(spans):
                best = int(probs.argmax())
                row[name] = {"label": labels[best], "score": round(float(probs[best]), 6)}
            else:  # (no words: nothing to label)
                row[name] = None
        yield row


def softmax(np, logits):
    """Probabilities over the last axis, in float64 (max subtracted: no overflow)."""
    z = logits.astype(np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def entity_spans(tags: list[str]) -> list[tuple[str, int, int]]:
    """(type, first word, last word) of each entity in a tag sequence, read as IOB2 with the
    conlleval repair: B-X starts an entity; I-X continues an open X entity, else starts one;
    O and anything else ends it. (Evaluation uses seqeval; this runtime ships alone.)"""
    spans, kind, first = [], None, 0
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, _, this = tag.partition("-")
        continues = prefix == "I" and this == kind
        if kind is not None and not continues:
            spans.append((kind, first, i - 1))
            kind = None
        if prefix in ("B", "I") and this and not continues:
            kind, first = this, i
    return spans


def plan_windows(lengths: list[int], budget: int) -> list[tuple[int, int, int, int]]:
    """Windows over a sentence's words, given each word's sub-token count: tuples (first
    word, end word, first scored word, end scored word), each window at most `budget`
    sub-tokens. Windows overlap by a quarter of a window, so every scored word has context
    on both sides; the scored ranges tile the sentence, so each word is scored exactly once.
    A word longer than the budget gets a window of its own (its tail cut by truncation).
    edgetransfer's training and evaluation window sentences with this same function."""
    n = len(lengths)
    if sum(lengths) <= budget:
        return [(0, n, 0, n)]
    windows, start, own = [], 0, 0
    while own < n:
        end, used = start, 0
        while end < n and used + lengths[end] <= budget:
            used, end = used + lengths[end], end + 1
        end = max(end, start + 1)
        if end <= own:  # the context left of `own` fills the window: drop it
            start = own
            continue
        if end >= n:
            windows.append((start, n, own, n))
            break
        context = (end - start) // 4
        own_end = max(own + 1, end - context)
        windows.append((start, end, own, own_end))
        own, start = own_end, max(start + 1, own_end - context)
    return windows


def input_row(text, kind: str = "text") -> dict:
    """A text, a (text, pair) tuple or an image path, as the row it came from (and is
    printed with)."""
    if kind == "image":
        return {"image": str(text)}
    return {"text": text[0], "text_pair": text[1]} if isinstance(text, tuple) else {"text": text}


def _beside(name: str):
    """NAME.py, beside this file (in a bundle, or this package), loaded from its path:
    `python -I predict.py` does not put the script's folder on sys.path."""
    module = sys.modules.get(f"_edgetransfer_{name}")
    if module is None:
        import importlib.util

        spec = importlib.util.spec_from_file_location(
            f"_edgetransfer_{name}", Path(__file__).resolve().with_name(f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return module


def _pixels():
    return _beside("pixels")


CPU = "CPUExecutionProvider"
QNN = "QNNExecutionProvider"
# Options a provider runs an NPU bundle's model with: CoreML's MLProgram format (the one
# export --for coreml checks coverage for; its NeuralNetwork format takes far fewer ops)
PROVIDER_OPTIONS = {"CoreMLExecutionProvider": {"ModelFormat": "MLProgram"}}


def choose_provider(ort, wanted: list, options) -> str:
    """The first of input_spec.json's "providers" this onnxruntime has (QNN: its plugin,
    onnxruntime-qnn, registered and added to `options`), else the CPU, said in one line."""
    available = set(ort.get_available_providers())
    chosen = CPU
    for provider in wanted:
        if provider == QNN and QNN not in available:
            if _qnn_plugin(ort, options):
                chosen = QNN
                break
        elif provider in available:
            chosen = provider
            break
    if wanted and chosen != wanted[0]:
        print(f"predict.py: {wanted[0]} is not available in this onnxruntime; running on "
              f"{chosen}", file=sys.stderr)
    return chosen


def qnn_devices(ort):
    """(QNN's devices, the onnxruntime_qnn module): QNN is a plugin provider, registered
    here once (the old providers=["QNNExecutionProvider"] form gives a CPU-only session
    without a word); None where onnxruntime-qnn is not installed."""
    try:
        import onnxruntime_qnn
    except ImportError:
        return None
    if not any(d.ep_name == QNN for d in ort.get_ep_devices()):
        ort.register_execution_provider_library(QNN, onnxruntime_qnn.get_library_path())
    return [d for d in ort.get_ep_devices() if d.ep_name == QNN], onnxruntime_qnn


def _qnn_plugin(ort, options) -> bool:
    """QNN added to `options` on its HTP backend; False where it is not installed."""
    found = qnn_devices(ort)
    if not found or not found[0]:
        return False
    devices, lib = found
    options.add_provider_for_devices(devices, {"backend_path": lib.get_qnn_htp_path()})
    return True


# The first bytes of the image files an image bundle reads (pixels.FORMATS; BMP is checked
# by its size field too, "BM" alone being text): a text bundle given such a file's name
# would classify the name
IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"II*\x00",
               b"MM\x00*")


def image_file(arg) -> bool:
    """Whether an argument names an image file, by its first bytes (never a pipe or a
    device: only a regular file is opened)."""
    if not isinstance(arg, str) or not 0 < len(arg) < 4096 or "\n" in arg:
        return False
    try:
        if not os.path.isfile(arg):
            return False
        with open(arg, "rb") as f:
            head = f.read(16)
        size = os.path.getsize(arg)
    except (OSError, ValueError):
        return False
    return (head.startswith(IMAGE_MAGIC) or head[:4] == b"RIFF" and head[8:12] == b"WEBP"
            or head[:2] == b"BM" and int.from_bytes(head[2:6], "little") == size)


def inputs_for(kind: str, given: list, input_file=None, column: str | None = None,
               pair_column: str | None = None) -> list:
    """What to predict: the arguments, then --input's rows. An image bundle takes paths (a
    folder: every image under it); a text bundle texts (and pairs, from a file), never an
    image file's name."""
    if kind == "image":
        found = [p for a in given for p in (read_images(a) if Path(a).is_dir() else [a])]
        found += read_images(input_file, column) if input_file else []
    else:
        image = next((a for a in given if image_file(a)), None)
        if image is not None:
            raise BundleError(f"give texts: {image[:200]!r} is an image file, and this bundle "
                              f"takes text (it would classify the file's name); an image "
                              f"bundle takes image files")
        found = list(given) + (read_texts(input_file, column, pair_column) if input_file
                               else [])
    if not found:
        raise BundleError(f"give {'images' if kind == 'image' else 'texts'} to classify, or "
                          f"--input FILE")
    return found


def read_images(path, column: str | None = None) -> list[str]:
    """Image paths from --input: a folder (every image under it, sorted), a .txt (one path a
    line) or a .jsonl/.csv/.tsv with an image column; paths are relative to the file and
    stay inside its folder."""
    path = Path(path)
    if path.is_dir():
        found = [str(p) for p in _pixels().list_images(path)]
        if not found:
            raise BundleError(f"{path}: holds no images")
        return found
    if path.suffix.lower() == ".txt":
        names = read_texts(path)
    elif column:
        names = read_texts(path, column)
    else:  # the first of the image columns the file has
        tried = _pixels().IMAGE_COLUMNS
        for candidate in tried:
            try:
                names = read_texts(path, candidate)
                break
            except BundleError as e:
                if "is missing or empty" not in str(e):
                    raise
        else:
            raise BundleError(f"{path}: no image column (tried {', '.join(tried)}); name it "
                              f"with --text-column")
    found = []
    for n, name in enumerate(names, 1):  # (a list may come from someone else: it names
        try:                             # images beside it, never a path out of its folder)
            found.append(str(beside(path.parent, name)))
        except BundleError as e:
            raise BundleError(f"{path}: row {n}: {e}; list images in the file's folder, or "
                              f"give their folder") from None
    return found


def _tokenizer(Tokenizer, path: Path):
    try:
        return Tokenizer.from_file(str(path))
    except Exception as e:  # noqa: BLE001  (tokenizers raises a bare Exception)
        raise BundleError(f"{path.name}: not a tokenizer the tokenizers library reads ("
                          f"{' '.join(str(e).split())[:160]})") from None


def _manifest(folder: Path) -> dict:
    manifest = read_json(inside(folder, MANIFEST, "bundle"))
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise BundleError(f"{folder / MANIFEST}: lists no files")
    return manifest


# input_spec.json's fields: (type, a bound where one makes sense), checked before any is used,
# so a hand-edited or hostile spec is one line, not a traceback deep in onnxruntime
SPEC_FIELDS = {"model": str, "labels": str, "output": str, "inputs": list, "threads": int}
TEXT_FIELDS = {"tokenizer": str, "max_length": int, "pad_token": str, "pad_id": int,
               "pad_type_id": int}
MAX_THREADS = 256  # more than any board has cores
MAX_TOKENS = 1 << 16  # far above any encoder's positions
MAX_SIDE = 4096  # px: a model input side; EfficientNet-Lite's largest is 280
MAX_ID = 2**31 - 1  # a token id onnxruntime's int32/int64 inputs both hold


def read_spec(folder: Path, manifest: dict) -> dict:
    """input_spec.json, its fields' types and ranges checked."""
    return check_spec(read_json(member(folder, manifest, SPEC, "bundle")))


def check_spec(spec) -> dict:
    """An input spec (input_spec.json's object), its fields' types and ranges checked; its
    "task" given the defaults of format-1 bundles."""
    if not isinstance(spec, dict):
        raise BundleError(f"{SPEC}: not a JSON object")
    task = spec.get("task") or {"postprocess": "softmax-label"}  # (format-1 bundles)
    if not isinstance(task, dict):
        raise BundleError(f"{SPEC}: task: not a JSON object")
    spec["task"] = task = {"inputs": "text", **task}
    if task["inputs"] not in ("text", "image"):
        raise BundleError(f"{SPEC}: task inputs {str(task['inputs'])[:40]!r} is not text or "
                          f"image")
    fields = SPEC_FIELDS | (TEXT_FIELDS if task["inputs"] == "text" else {"image": dict})
    for name, kind in fields.items():
        value = spec.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise BundleError(f"{SPEC}: {name}: expected {kind.__name__}, found "
                              f"{type(value).__name__}")
    if not 1 <= spec["threads"] <= MAX_THREADS:
        raise BundleError(f"{SPEC}: threads {spec['threads']}: give 1..{MAX_THREADS}")
    if task["inputs"] == "text" and not 1 <= spec["max_length"] <= MAX_TOKENS:
        raise BundleError(f"{SPEC}: max_length {spec['max_length']}: give 1..{MAX_TOKENS}")
    if not all(isinstance(i, dict) and isinstance(i.get("name"), str)
               and isinstance(i.get("type"), str) for i in spec["inputs"]):
        raise BundleError(f"{SPEC}: inputs: expected a list of {{name, type}}")
    if not isinstance(task.get("postprocess"), str):
        raise BundleError(f"{SPEC}: task postprocess: expected str")
    also = spec.get("also", [])
    if not (isinstance(also, list) and all(isinstance(n, str) for n in also)
            and spec["output"] not in also):
        raise BundleError(f"{SPEC}: also: expected a list of output names besides "
                          f"{spec['output'][:80]!r}")
    if task["postprocess"] == "heads":
        _check_heads(task, spec, also)
    elif also and task["postprocess"] not in ONE_RUN:
        raise BundleError(f"{SPEC}: also: further outputs print beside "
                          f"{', '.join(ONE_RUN)} only, not {task['postprocess'][:40]!r}")
    providers = spec.get("providers", [CPU])
    if not (isinstance(providers, list) and 0 < len(providers) <= 8
            and all(isinstance(p, str) and p.endswith("ExecutionProvider") for p in providers)):
        raise BundleError(f"{SPEC}: providers: expected a list of onnxruntime execution "
                          f"provider names")
    if not isinstance(spec.get("fixed_shapes", False), bool):
        raise BundleError(f"{SPEC}: fixed_shapes: expected true or false")
    if spec.get("embeddings") is not None and not spec.get("fixed_shapes"):
        raise BundleError(f"{SPEC}: embeddings: only a fixed-shape model takes them")
    if not isinstance(spec.get("embeddings", ""), str):
        raise BundleError(f"{SPEC}: embeddings: expected the file name of the lookups' model")
    if task["inputs"] == "text":
        for name in ("pad_id", "pad_type_id"):
            if not 0 <= spec[name] <= MAX_ID:
                raise BundleError(f"{SPEC}: {name} {spec[name]}: give 0..{MAX_ID}")
    else:
        _check_image(spec["image"])
    return spec


def _check_heads(task: dict, spec: dict, also: list) -> None:
    """A joint model's heads: each a name and a postprocess of HEAD_POSTPROCESS, named by
    the spec's outputs in order ("output" the first, "also" the others)."""
    heads = task.get("heads")
    if not (isinstance(heads, list) and 1 <= len(heads) <= MAX_HEADS and all(
            isinstance(h, dict) and isinstance(h.get("name"), str)
            and h.get("postprocess") in HEAD_POSTPROCESS for h in heads)):
        raise BundleError(f"{SPEC}: task heads: expected 1..{MAX_HEADS} of {{name, "
                          f"postprocess}} with postprocess {' or '.join(HEAD_POSTPROCESS)}")
    if [h["name"] for h in heads] != [spec["output"], *also]:
        raise BundleError(f"{SPEC}: task heads: their names must be the outputs in order "
                          f"(output, then also)")


def _check_image(image: dict) -> None:
    """input_spec.json's "image" entry, as pixels.pixel_values reads it."""
    def number(x) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool) and abs(x) < 1e6

    size = image.get("size")
    if not (isinstance(size, list) and len(size) == 2
            and all(isinstance(x, int) and 1 <= x <= MAX_SIDE for x in size)):
        raise BundleError(f"{SPEC}: image size: expected [height, width] of 1..{MAX_SIDE} px")
    for name in ("mean", "std"):
        value = image.get(name)
        if not (isinstance(value, list) and len(value) == 3 and all(map(number, value))
                and (name == "mean" or all(v != 0 for v in value))):
            raise BundleError(f"{SPEC}: image {name}: expected 3 numbers (std not 0)")
    if not number(image.get("rescale")) or not isinstance(image.get("resample"), int):
        raise BundleError(f"{SPEC}: image rescale and resample: expected numbers")


# input_spec.json "task" "postprocess" -> what a row of outputs becomes
POSTPROCESS = {"softmax-label": _softmax_label, "values": _values, "entities": _entities,
               "heads": _heads}
# what a joint model's head may be (task "heads": each one's postprocess), and how many
HEAD_POSTPROCESS = ("softmax-label", "entities")
MAX_HEADS = 16
HEAD_SEP = ":"  # labels.json of a joint model: "HEAD:label"
# the postprocesses whose rows hold a ranked list of labels, which --top-k cuts (the others
# refuse it rather than ignore it)
RANKED = ("softmax-label",)
# the postprocesses that run the model once per batch of inputs, a row per input: a model's
# further outputs (input_spec.json "also") are printed beside their rows
ONE_RUN = ("softmax-label", "values")


def head_labels(labels: list, task: dict, where: str) -> dict | None:
    """A joint model's labels by head (labels.json's "HEAD:label"); None for one head."""
    if task.get("postprocess") != "heads":
        return None
    out: dict = {h["name"]: [] for h in task["heads"]}
    for name in labels:
        head, _, label = name.partition(HEAD_SEP)
        if head not in out or not label:
            raise BundleError(f"{where}: label {name[:80]!r} names no head of the model "
                              f"(HEAD{HEAD_SEP}label)")
        out[head].append(label)
    empty = next((h for h, v in out.items() if not v), None)
    if empty is not None:
        raise BundleError(f"{where}: no labels for the head {empty[:40]!r}")
    return out


class Predictor:
    """A model with the runtime's reading around it: the tokenizer (or pixels.py) that turns
    inputs into feeds, input_spec.json's postprocess that turns the model's output into what
    is printed, and the labels of its outputs.

    `Predictor(folder)` runs a bundle's onnxruntime session. `Predictor.around(model, spec,
    labels, folder)` puts the same reading around any model, a callable from numpy feeds (by
    input name) to named outputs: how edgetransfer scores a model as its bundle answers
    (edgetransfer/measure/shipped.py), with this code."""

    def __init__(self, folder, threads: int | None = None, check: bool = True,
                 max_image_pixels: int | None = None):
        folder = Path(folder)
        # (check=False: the caller has just checked every file, as edgetransfer predict does)
        manifest = check_files(folder) if check else _manifest(folder)
        self._read(folder, manifest, read_spec(folder, manifest), None, max_image_pixels)
        self._open(threads)

    @classmethod
    def around(cls, model, spec: dict, labels: list, folder,
               max_image_pixels: int | None = None) -> Predictor:
        """The runtime around `model` (feeds -> {output name: array}); `spec` as
        input_spec.json holds it, its files (the tokenizer) named inside `folder`."""
        self = cls.__new__(cls)
        self._read(Path(folder), None, check_spec(json.loads(json.dumps(spec))), list(labels),
                   max_image_pixels)
        self.session = self.model_file = None
        self.model = model
        self.inputs = [(i["name"], DTYPES.get(i["type"])) for i in self.spec["inputs"]]
        return self

    def _read(self, folder: Path, manifest: dict | None, spec: dict, labels,
              max_image_pixels: int | None) -> None:
        """The spec, the labels and the input reader (tokenizer or image settings)."""
        self.folder, self.manifest, self.spec = folder, manifest, spec
        self.labels = read_json(self.file("labels")) if labels is None else labels
        if (not isinstance(self.labels, list) or not self.labels
                or not all(isinstance(x, str) for x in self.labels)):
            raise BundleError(f"{spec['labels']}: not a list of label names")
        task = spec["task"]
        self.kind = task["inputs"]
        self.head_labels = head_labels(self.labels, task, spec["labels"])
        try:  # (every package the bundle needs, said in one message)
            import numpy as np
            import onnxruntime  # noqa: F401  (_open's session)

            if self.kind == "image":
                import PIL  # noqa: F401  (pixels.py reads images with it)
            else:
                from tokenizers import Tokenizer
        except ImportError as e:
            raise BundleError(f"{e.name} is not installed; run: {' '.join(PIP_INSTALL)} -r "
                              f"{self.folder / 'requirements.txt'}") from None
        self.np = np
        if self.kind == "image":
            self.image = spec["image"]
            # the most pixels an image may have (refused from its header, before decoding):
            # --max-image-pixels, else the bundle's, else the runtime's own (pixels.py)
            limit = self.image.get("max_pixels", _pixels().MAX_IMAGE_PIXELS)
            if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
                raise BundleError(f"{SPEC}: image max_pixels {str(limit)[:40]!r} is not a "
                                  f"positive whole number")
            self.max_pixels = max_image_pixels or limit
            self.tokenizer = None
        else:
            tokenizer = _tokenizer(Tokenizer, self.file("tokenizer"))
            # tokenizer.json may carry the exporter's fixed-length padding: set both
            tokenizer.enable_truncation(spec["max_length"])
            tokenizer.enable_padding(pad_id=spec["pad_id"], pad_type_id=spec["pad_type_id"],
                                     pad_token=spec["pad_token"])
            self.tokenizer = tokenizer
        self._words = None  # (word_probabilities' tokenizer, made when first needed)
        if task.get("postprocess") not in POSTPROCESS:
            raise BundleError(f"{SPEC}: postprocess {task.get('postprocess')!r} is not one this "
                              f"runtime knows ({', '.join(POSTPROCESS)}); use the predict.py "
                              f"of the edgetransfer that built the bundle")
        self.postprocess = POSTPROCESS[task["postprocess"]]

    def _open(self, threads: int | None) -> None:
        """The bundle's onnxruntime session, checked against input_spec.json."""
        import onnxruntime as ort

        spec = self.spec
        options = self._options(ort, threads)
        ort_model = spec.get("model_ort")
        # (a copy without its model.ort runs model.onnx)
        field = "model_ort" if ort_model and self.file("model_ort").is_file() else "model"
        self.model_file, path = spec[field], self.file(field)
        self.provider = choose_provider(ort, spec.get("providers", [CPU]), options)
        providers = [(p, PROVIDER_OPTIONS.get(p, {})) for p in dict.fromkeys([self.provider,
                                                                             CPU])]
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=None if self.provider == QNN else providers)
            # (an accelerator's fixed-shape model: its embedding lookups run first, on the CPU)
            front = (ort.InferenceSession(str(self.file("embeddings")),
                                          self._options(ort, threads), providers=[CPU])
                     if spec.get("embeddings") else None)
        except Exception as e:  # noqa: BLE001  (onnxruntime's own words are the finding)
            raise BundleError(f"{self.model_file}: onnxruntime cannot load it ("
                              f"{' '.join(str(e).split())[:200]})") from None
        # (an accelerator's fixed-shape model takes the tokenizer's feeds through its
        # adapter, fixed_shapes.py beside this file: padded to its bucket one row at a time,
        # the mask as its bias)
        session = (_beside("fixed_shapes").wrap(self.session, front)
                   if spec.get("fixed_shapes") else self.session)
        names = [spec["output"], *spec.get("also", [])]
        self.model = lambda feeds: dict(zip(names, session.run(names, feeds)))
        self.inputs = [(i.name, DTYPES.get(i.type)) for i in session.get_inputs()]
        expected = [(i["name"], DTYPES.get(i["type"])) for i in spec["inputs"]]
        usable = (self.inputs == [IMAGE_INPUT] if self.kind == "image" else
                  all(n in ENCODING_FIELDS and t is not None for n, t in self.inputs))
        if self.inputs != expected or not usable:
            raise BundleError(f"{spec['model']}: inputs {self.inputs} do not match "
                              f"{SPEC} {expected}")
        outputs = {o.name: o.shape for o in session.get_outputs()}
        for name in names:
            if name not in outputs:
                raise BundleError(f"{SPEC}: output {name[:80]!r} is not one of the "
                                  f"model's ({', '.join(outputs)})")
        counts = ({spec["output"]: len(self.labels)} if self.head_labels is None
                  else {h: len(v) for h, v in self.head_labels.items()})
        for name, count in counts.items():
            width = (outputs[name] or [None])[-1]
            if isinstance(width, int) and width != count:
                raise BundleError(f"{spec['labels']}: {count} labels for the model's "
                                  f"{width} outputs of {name[:80]!r}")

    def _options(self, ort, threads: int | None):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or self.spec["threads"]
        options.inter_op_num_threads = 1
        return options

    def file(self, field: str) -> Path:
        """The bundle file input_spec.json's `field` names (checked: inside, and listed in
        the manifest where there is one)."""
        if self.manifest is None:
            return inside(self.folder, self.spec[field], f"{SPEC} {field}")
        return member(self.folder, self.manifest, self.spec[field], f"{SPEC} {field}")

    def _output(self, feeds: dict):
        """The model's output that input_spec.json names, for numpy feeds (its "also"
        outputs of the same run kept for `further`)."""
        out = self.model(feeds)
        self._further = {name: out[name] for name in self.spec.get("also", [])}
        self._all = out
        return out[self.spec["output"]]

    def further(self, rows):
        """`rows` (a postprocess's, one per input of one run), each with `"outputs": {name:
        value}`: the model's further outputs as it gives them (a float where an output holds
        one number per input, else a list). The postprocess and labels.json describe the
        first output; a further head (a score beside a class, say) is printed as it is."""
        for i, row in enumerate(rows):
            values = {name: self.np.asarray(v[i], dtype="float64").reshape(-1)
                      for name, v in self._further.items()}
            yield row | {"outputs": {name: float(v[0]) if v.size == 1 else v.tolist()
                                     for name, v in values.items()}}

    def logits(self, texts: list):
        """The model's output for texts (str) or pairs ((text, pair) tuples), or (an image
        bundle) image paths."""
        if self.kind == "image":
            pixels = _pixels()
            images = []
            for path in texts:
                try:
                    images.append(pixels.load_rgb(path, tuple(self.image["size"]),
                                                  max_pixels=self.max_pixels))
                except pixels.ImageProblem as e:
                    raise BundleError(str(e)) from None
            feeds = {IMAGE_INPUT[0]: pixels.pixel_values(self.np, images, self.image)}
            return self._output(feeds)
        return self._run(self.tokenizer.encode_batch(list(texts)))

    def _run(self, encodings):
        """The model's output for a batch of tokenizer encodings (one padded length)."""
        np = self.np
        feeds = {name: np.array([getattr(e, ENCODING_FIELDS[name]) for e in encodings],
                                dtype=dtype) for name, dtype in self.inputs}
        return self._output(feeds)

    def word_probabilities(self, text: str):
        """(character span of each word, softmax of each word's first sub-token [words,
        labels]) for one text, in windows where it is longer than the model's limit."""
        spans, outputs = self.word_outputs(text, [self.spec["output"]])
        return spans, outputs[self.spec["output"]]

    def word_outputs(self, text: str, names: list | None = None):
        """(character span of each word, {output name: probabilities}) for one text, each
        output (default: the spec's, "output" and "also") softmaxed: one per word at its
        first sub-token where the output is per position ([rows, positions, labels]), the
        first window's where it is one per row ([rows, labels]); windows where the text is
        longer than the model's limit, each word scored in one."""
        np = self.np
        names = names or [self.spec["output"], *self.spec.get("also", [])]
        spans, lengths = self._word_spans(text)
        words = [text[a:b] for a, b in spans]
        out = {}
        if not words:
            return spans, {n: np.zeros((0, self._width(n))) for n in names}
        windows = plan_windows(lengths, self.spec["max_length"] - self._specials)
        encodings = self.tokenizer.encode_batch([words[a:b] for a, b, _, _ in windows],
                                                is_pretokenized=True)
        self._run(encodings)
        for name in names:
            values = softmax(np, self._all[name])
            if values.ndim == 2:  # one per row: the first window's
                out[name] = values[0]
                continue
            probs = np.zeros((len(words), values.shape[-1]))
            for (a, _, own, own_end), e, rows in zip(windows, encodings, values):
                seen = set()
                for position, word in enumerate(e.word_ids):
                    if word is None or word in seen or not own <= a + word < own_end:
                        continue
                    seen.add(word)  # its first sub-token
                    probs[a + word] = rows[position]
            out[name] = probs
        return spans, out

    def _width(self, name: str) -> int:
        """The count of labels of an output (a joint model's head's)."""
        if self.head_labels is None:
            return len(self.labels)
        return len(self.head_labels[name])

    def _word_spans(self, text: str):
        """(character span of each of the tokenizer's words, its sub-token count)."""
        if self._words is None:  # the same tokenizer without truncation or padding
            from tokenizers import Tokenizer

            self._words = _tokenizer(Tokenizer, self.file("tokenizer"))
            self._words.no_truncation()
            self._words.no_padding()
            self._specials = (len(self._words.encode("a").ids)
                              - len(self._words.encode("a", add_special_tokens=False).ids))
        enc = self._words.encode(text, add_special_tokens=False)
        spans, lengths = [], []
        for word, (start, end) in zip(enc.word_ids, enc.offsets):
            if word is None:
                continue
            if word == len(spans):
                spans.append([start, end])
                lengths.append(0)
            spans[word][1] = max(spans[word][1], end)
            lengths[word] += 1
        return spans, lengths

    def iter_predict(self, texts: list, top_k: int | None = None, batch_size: int = 1):
        """One dict per text (or pair), yielded as each batch is done."""
        task = self.spec["task"]
        if top_k is not None and task["postprocess"] not in RANKED:
            raise BundleError(f"--top-k {top_k}: this bundle ({task.get('name', 'its task')}) "
                              f"prints {task['postprocess']}, not a ranked list of labels; "
                              f"leave --top-k out")
        for start in range(0, len(texts), batch_size):
            chunk = texts[start:start + batch_size]
            rows = self.postprocess(self, chunk, top_k)
            further = self.spec.get("also") and task["postprocess"] in ONE_RUN
            yield from self.further(rows) if further else rows

    def predict(self, texts: list[str], top_k: int | None = None,
                batch_size: int = 1) -> list[dict]:
        return list(self.iter_predict(texts, top_k, batch_size))


def benchmark(predictor: Predictor, texts: list[str], requests: int, warmup: int = 20) -> dict:
    """Per-request latency (one text, tokenization to scores) and the process's peak RSS.

    Percentiles as edgetransfer's latency harness computes them (numpy's, linear); this
    file ships alone, so it cannot import that harness.
    """
    np = predictor.np
    for i in range(warmup):
        predictor.predict([texts[i % len(texts)]])
    times = np.empty(requests)
    for i in range(requests):
        t0 = time.perf_counter()
        predictor.predict([texts[i % len(texts)]])
        times[i] = time.perf_counter() - t0
    ms = times * 1000
    return {"requests": requests, "warmup": warmup, "texts": len(texts),
            "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p90_ms": round(float(np.percentile(ms, 90)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3),
            "mean_ms": round(float(ms.mean()), 3),
            "threads": predictor.session.get_session_options().intra_op_num_threads,
            "peak_rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float | None:
    """This process's peak resident memory. Linux: VmHWM, which belongs to the current
    program image; getrusage's ru_maxrss also carries the high-water mark of the process
    that forked us (exec keeps it), so a runtime started by a 2 GB trainer would read 2 GB."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 2**10, 1)  # kB
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # not on Windows; the targets are Linux
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # kilobytes on Linux, bytes on macOS
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="predict.py", description="Classify texts with this "
                                "bundle's model; prints one JSON object a line per text.")
    p.add_argument("texts", nargs="*", help="Texts to classify (an image bundle: image files "
                   "or folders of them).")
    p.add_argument("--input", help="A file of texts: .jsonl, .csv, .tsv or .txt (one a line); "
                   "an image bundle: a folder, a .txt of paths, or a .jsonl/.csv with an "
                   "'image' column (paths relative to the file).")
    p.add_argument("--text-column", help="Text column of --input [default: the first of "
                   + ", ".join(TEXT_COLUMNS) + "; an image bundle: image].")
    p.add_argument("--text-pair-column", help="Second text column of --input, for pairs "
                   "[default: sentence2 beside sentence1, and so on].")
    p.add_argument("--top-k", type=int, help="Keep the k best labels in 'scores' (a "
                   "classifier's bundle; one that prints entities or values refuses it) "
                   "[default: all].")
    p.add_argument("--batch-size", type=int, default=1, help="Texts per model call "
                   "[default: 1: int8 models scale activations over the whole batch, padding "
                   "included, so one at a time gives each text the answer it gets alone].")
    p.add_argument("--threads", type=int, help="onnxruntime intra-op threads "
                   "[default: the bundle's, in input_spec.json].")
    p.add_argument("--max-image-pixels", type=int, metavar="N", help="An image bundle: the "
                   "most pixels (width x height) an image may have; a larger one is refused "
                   "from its header, before it is decoded [default: the bundle's, "
                   "input_spec.json image.max_pixels; else pixels.py's MAX_IMAGE_PIXELS].")
    p.add_argument("--bundle", default=str(Path(__file__).resolve().parent),
                   help="The bundle folder [default: this file's folder].")
    p.add_argument("--benchmark", type=int, metavar="N", help="Time N one-text requests over "
                   "the texts and print timing JSON instead of predictions.")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    for name in ("top_k", "batch_size", "threads", "benchmark", "max_image_pixels"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    try:
        predictor = Predictor(args.bundle, threads=args.threads,
                              max_image_pixels=args.max_image_pixels)
        texts = inputs_for(predictor.kind, args.texts, args.input, args.text_column,
                           args.text_pair_column)
        if args.benchmark:
            print(json.dumps(benchmark(predictor, texts, args.benchmark)), flush=True)
            return 0
        for row in predictor.iter_predict(texts, args.top_k, args.batch_size):
            print(json.dumps(row), flush=True)  # flushed: a reader sees each line at once
    except BundleError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
        return 0
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
