"""Shared fixtures: a tiny random BERT built from a config, small data files, a CLI runner."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgetransfer.modeling.backbones import builtin_path


def pytest_configure(config):
    """Where the tests run in parallel processes (pytest-xdist, pyproject's addopts), each
    takes its share of the cores for torch's threads: left at one thread a core, two
    processes' threads would contend for every core, and tiny models gain nothing from
    more than one thread anyway."""
    import os

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))

WORDS = {
    "pos": ["great", "lovely", "superb", "fine", "excellent", "wonderful", "good", "nice"],
    "neg": ["awful", "bad", "terrible", "poor", "boring", "dull", "horrible", "weak"],
    "neu": ["table", "window", "river", "paper", "seven", "garden", "yellow", "engine"],
}


def make_rows(n: int, seed: int = 0, classes=("pos", "neg", "neu")) -> list[dict]:
    """Texts whose class is given by its words: a tiny model learns it in a few epochs."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = classes[i % len(classes)]
        words = rng.sample(WORDS[label], 3) + rng.sample(["the", "a", "it", "was", "so"], 2)
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "label": label})
    return rows


def write_jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide random BERT encoder (no head) with the real MiniLM tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    tok = AutoTokenizer.from_pretrained(builtin_path("minilm-l6"))
    config = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=128)
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


def make_classifier(backbone: Path, folder: Path, seed: int,
                    labels=("neg", "neu", "pos")) -> Path:
    """The tiny backbone with a seeded random head over `labels`, saved with its tokenizer."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        backbone, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)})
    model.save_pretrained(folder, safe_serialization=True)
    AutoTokenizer.from_pretrained(backbone).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_classifier(tiny_backbone, tmp_path_factory) -> Path:
    """The tiny BERT with a 2-class head (negative, positive) already attached."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = tmp_path_factory.mktemp("tiny-clf")
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_backbone, num_labels=2, id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1})
    model.save_pretrained(folder, safe_serialization=True)
    AutoTokenizer.from_pretrained(tiny_backbone).save_pretrained(folder)
    return folder


@pytest.fixture()
def copy_of(tmp_path):
    def _copy(src: Path, name: str = "model") -> Path:
        dst = tmp_path / name
        shutil.copytree(src, dst)
        return dst
    return _copy


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    write_jsonl(folder / "train.jsonl", make_rows(60, seed=1))
    write_jsonl(folder / "validation.jsonl", make_rows(24, seed=2))
    write_jsonl(folder / "test.jsonl", make_rows(24, seed=3))
    return folder


@pytest.fixture()
def cli(capsys):
    """Run the CLI in-process: returns (exit code, stderr)."""
    from edgetransfer.cli import main

    def run(*args: str):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        captured = capsys.readouterr()
        return code, captured.err + captured.out
    return run


def tiny_args(backbone: Path, data: Path, out: Path, *extra: str) -> list[str]:
    """Arguments for a fast finetune of the tiny model."""
    return ["-q", "finetune", "--model", backbone, "--train", data / "train.jsonl",
            "--validation", data / "validation.jsonl", "--out", out, "--epochs", "4",
            "--batch-size", "4", "--lr", "2e-3", "--patience", "0", *extra]


# --- bundles: an exported tiny classifier and its measured bundle (stages, bundle tests)

def sha_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_report(path: Path, model_dir: Path, *, passed: bool = True, sha: str | None = None,
                 failures: list[dict] | None = None) -> Path:
    """A verify.json of the documented shape, by hand (the verify command is not needed)."""
    failures = failures or []
    report = {
        "passed": passed, "failures": failures,
        "reference": {"name": "reference", "kind": "pytorch", "metrics": {"accuracy": 0.9}},
        "candidates": [{
            "name": "onnx", "path": str(model_dir / "model.onnx"), "kind": "onnx",
            "sha256": sha or sha_of(model_dir / "model.onnx"), "precision": "fp32",
            "passed": passed, "metrics": {"accuracy": 0.9, "macro_f1": 0.88},
            "accuracy_drop": {"accuracy": {"points": 0.0}},
            "parity": {"passed": passed}, "latency": {"batch1": {"p50_ms": 0.3}}}],
        "env": {"versions": {}},
    }
    path.write_text(json.dumps(report))
    return path


@pytest.fixture(scope="session")
def exported(tiny_classifier, tmp_path_factory) -> Path:
    """tiny_classifier exported to fp32 ONNX (fused), as `edgetransfer export` writes it."""
    from edgetransfer.stages import export

    out = tmp_path_factory.mktemp("package-export") / "onnx"
    export.run(export.ExportConfig(model=str(tiny_classifier), out=out, quantize="none"))
    return out


@pytest.fixture(scope="session")
def built(exported, tmp_path_factory) -> Path:
    """A measured bundle of `exported`, verified by a hand-written report: its folder."""
    from edgetransfer.stages import package

    root = tmp_path_factory.mktemp("package-out")
    report = write_report(root / "verify.json", exported)
    return package.run(package.PackageConfig(
        model=exported, verify_report=report, target="linux-x86_64", out=root / "bundle",
        cold_starts=1, latency_requests=20))


def block_torch(reader: str = "tokenizers", blocked=("torch", "transformers")) -> str:
    """A script that runs predict.py (argv after -c) with `blocked` unimportable, what a
    device has, and checks that onnxruntime and the input `reader` (tokenizers for text,
    PIL for images) did the work."""
    return f"""
import importlib.abc, sys


class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {tuple(blocked)!r}:
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
try:
    import torch
except ImportError:
    pass
else:
    raise SystemExit("the block did not work")
import runpy
sys.argv = ["predict.py"] + sys.argv[1:]
try:
    runpy.run_path("predict.py", run_name="__main__")
finally:
    assert not {set(blocked)!r} & set(sys.modules)
    assert "onnxruntime" in sys.modules and {reader!r} in sys.modules
"""


BLOCK_TORCH = block_torch()


def predictions(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def torch_scores(model_dir: Path, texts) -> np.ndarray:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    with torch.inference_mode():
        return torch.cat([model(**tok([t], truncation=True, max_length=128,
                                      return_tensors="pt")).logits.softmax(-1)
                          for t in texts]).numpy()


# --- token classification: sentences whose tags follow from their words

PEOPLE = [("Anna", "Berg"), ("Omar", "Haddad"), ("Li", "Wei"), ("José", "Núñez"),
          ("Peter", "Blackburn"), ("Maria", "Rossi")]
PLACES = ["Berlin", "Paris", "Lagos", "Kyoto", "Lima", "Oslo", "Cairo"]
FILLER = ["visited", "met", "the", "press", "in", "on", "Monday", "said", "today", "and"]


def char_student(folder: Path, hidden: int = 24) -> Path:
    """A random 1-layer BERT of another width whose tokenizer spells each word letter by
    letter (WordPiece over single characters): another vocabulary, and other lengths, than
    the teacher's MiniLM WordPiece."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, PreTrainedTokenizerFast

    chars = "abcdefghijklmnopqrstuvwxyz0123456789.,'-"
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {t: i for i, t in enumerate([*specials, *chars, *(f"##{c}" for c in chars)])}
    raw = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    raw.normalizer = normalizers.BertNormalizer(lowercase=True)
    raw.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    raw.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]", pad_token="[PAD]",
                            cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]"
                            ).save_pretrained(folder)
    BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=1,
               num_attention_heads=2, intermediate_size=2 * hidden,
               max_position_embeddings=256).save_pretrained(folder)
    return folder


def make_sentences(n: int, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """(words, IOB2 tags): a person (B-PER I-PER) and a place (B-LOC) among filler words."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        first, last = rng.choice(PEOPLE)
        words = [first, last, rng.choice(FILLER), rng.choice(FILLER), rng.choice(PLACES), "."]
        tags = ["B-PER", "I-PER", "O", "O", "B-LOC", "O"]
        out.append((words, tags))
    return out


def write_conll(path: Path, sentences) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["-DOCSTART- -X- O", ""]
    for words, tags in sentences:
        lines += [f"{w} NN {t}" for w, t in zip(words, tags)] + [""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def token_data(tmp_path_factory) -> Path:
    """train.txt / validation.txt / test.txt in CoNLL layout (word POS tag)."""
    folder = tmp_path_factory.mktemp("conll")
    for name, n, seed in (("train", 60, 1), ("validation", 20, 2), ("test", 20, 3)):
        write_conll(folder / f"{name}.txt", make_sentences(n, seed))
    return folder


def token_args(backbone: Path, data: Path, out: Path, *extra: str) -> list[str]:
    """Arguments for a fast token-classification finetune of the tiny model."""
    return ["-q", "finetune", "--model", backbone, "--train", data / "train.txt",
            "--validation", data / "validation.txt", "--out", out, "--epochs", "3",
            "--batch-size", "8", "--lr", "3e-3", "--patience", "0", *extra]


@pytest.fixture(scope="session")
def tiny_tagger(tiny_backbone, token_data, tmp_path_factory) -> Path:
    """The tiny BERT fine-tuned (full) on token_data: a token-classification checkpoint."""
    from edgetransfer.cli import main

    out = tmp_path_factory.mktemp("tagger") / "model"
    try:
        main([str(a) for a in token_args(tiny_backbone, token_data, out, "--test",
                                         token_data / "test.txt")])
    except SystemExit as e:
        assert not e.code, e.code
    return out


# --- images: tiny Lite-shaped EfficientNets and generated pictures ---------------------------

IMAGE_CLASSES = ("circle", "square")


def draw(shape: str, seed: int, size: int = 40, mode: str = "L"):
    """A noisy picture of a bright circle or square (a Pillow image of `mode`)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    a = rng.integers(0, 60, (size, size), dtype=np.uint8)
    c, r = size // 2 + int(rng.integers(-3, 4)), size // 4 + int(rng.integers(0, 3))
    if shape == "square":
        a[c - r:c + r, c - r:c + r] += 150
    else:
        y, x = np.ogrid[:size, :size]
        a[(y - c) ** 2 + (x - c) ** 2 < r * r] += 150
    image = Image.fromarray(a, "L")
    return image if mode == "L" else image.convert(mode)


def write_image_folder(root: Path, counts: dict, size: int = 40) -> Path:
    """root/SPLIT/CLASS/N.png for each split's count per class (a mix of grey, RGB, RGBA)."""
    modes = ("L", "RGB", "RGBA")
    for s, (split, n) in enumerate(counts.items()):
        for k, name in enumerate(IMAGE_CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                draw(name, 1000 * s + 100 * k + i, size, modes[i % 3]).save(folder / f"{i}.png")
    return root


def tiny_effnet_model(num_labels: int = 2):
    """A Lite-shaped EfficientNet of ~0.1M parameters: B0's 7 stages at width 0.25, 9 blocks,
    ReLU6, neutral squeeze-excites, He init; BatchNorm statistics that follow a few steps."""
    import torch
    from transformers import EfficientNetConfig, EfficientNetForImageClassification

    from edgetransfer.modeling import efficientnet_lite

    fields = {k: v for k, v in efficientnet_lite.CONFIG.items() if k != "model_type"}
    fields |= dict(width_coefficient=0.25, hidden_dim=320, image_size=32,
                   num_block_repeats=[1, 2, 1, 2, 1, 1, 1], batch_norm_momentum=0.3)
    torch.manual_seed(0)
    model = EfficientNetForImageClassification(EfficientNetConfig(**fields,
                                                                  num_labels=num_labels))
    efficientnet_lite.initialise(model)
    # BatchNorm statistics that fit the weights, as a pretrained network's do: fresh ones
    # (mean 0, variance 1) make eval-mode features vanish, and a few training steps at the
    # tiny scale of a test cannot repair them
    batchnorms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for bn in batchnorms:
        bn.momentum = None  # a cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(pixel_values=torch.rand(16, 3, 32, 32) * 2 - 1)
    for bn in batchnorms:
        bn.momentum = 0.3
    return model.eval()


@pytest.fixture(scope="session")
def image_data(tmp_path_factory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("images"),
                              {"train": 24, "validation": 8, "test": 10})


@pytest.fixture(scope="session")
def tiny_effnet(tmp_path_factory) -> Path:
    """A bare tiny EfficientNet backbone folder with its 32 px image processor."""
    from edgetransfer.modeling import efficientnet_lite

    folder = tmp_path_factory.mktemp("tiny-effnet")
    tiny_effnet_model().efficientnet.save_pretrained(folder)
    efficientnet_lite.processor(32).save_pretrained(folder)
    return folder


def image_args(backbone: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["-q", "finetune", "--model", backbone, "--train", data / "train",
            "--validation", data / "validation", "--test", data / "test", "--out", out,
            "--epochs", "6", "--batch-size", "8", "--lr", "3e-3", "--seed", "0", "--patience",
            "0", *extra]


@pytest.fixture(scope="session")
def image_teacher(tiny_effnet, image_data, tmp_path_factory) -> Path:
    from edgetransfer.cli import main

    out = tmp_path_factory.mktemp("image-teacher") / "teacher"
    try:
        main([str(a) for a in image_args(tiny_effnet, image_data, out)])
    except SystemExit as e:
        assert not e.code, e.code
    return out


@pytest.fixture(scope="session")
def image_int8(image_teacher, image_data, tmp_path_factory) -> Path:
    """image_teacher exported to int8 (static, the default for images), with eval data,
    for this machine's CPU: tuned for VNNI (the default target) on an AVX2 CPU without it,
    u8 x s8 products saturate and top-1 agreement fell to 0.786 on this toy model."""
    from edgetransfer.convert.quantize import DEFAULT_TARGET, host_mismatch
    from edgetransfer.measure.latency import machine
    from edgetransfer.stages import export

    out = tmp_path_factory.mktemp("image-export") / "onnx"
    fits = host_mismatch(DEFAULT_TARGET, machine()) is None
    export.run(export.ExportConfig(model=str(image_teacher), out=out,
                                   calibration_data=str(image_data / "train"),
                                   eval_data=str(image_data / "test"), max_accuracy_drop=50,
                                   target=DEFAULT_TARGET if fits else "x86-avx2",
                                   per_channel=True,  # (the VNNI target's; AVX2's is off)
                                   min_agreement=0.8))  # (a weak toy model: many near-ties)
    return out


def png_header(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR claiming width x height RGB pixels, an empty IDAT: a
    few dozen bytes that would decode to width * height * 3 bytes (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def stop_after_first_save(real):
    """Wrap progress_callback so that Ctrl-C arrives right after the first checkpoint."""
    def make(*args, **kwargs):
        callback = real(*args, **kwargs)

        def on_save(*args, **kwargs):
            raise KeyboardInterrupt

        callback.on_save = on_save
        return callback
    return make
