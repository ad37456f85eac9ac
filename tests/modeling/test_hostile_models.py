"""Broken, mismatched and hostile model files: refused with one line and a documented exit
code, no traceback, no code of theirs run, the inputs left as they were."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from conftest import make_rows, tiny_args, write_jsonl


def _digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_line(code: int, err: str, expected_code: int, words: str) -> None:
    assert code == expected_code, err
    assert words in err, err
    assert len([ln for ln in err.splitlines() if ln.startswith("error:")]) == 1, err
    assert "Traceback" not in err and "internal error" not in err


class _RunsCode:
    """A pickle that runs a shell command when loaded by a plain (not weights-only) unpickler."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _labelled(tmp_path: Path, labels=("negative", "positive")) -> Path:
    rows = [{"text": r["text"], "label": labels[i % len(labels)]}
            for i, r in enumerate(make_rows(12))]
    return write_jsonl(tmp_path / "eval.jsonl", rows)


# -- checkpoints -------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["finetune", "export"])
def test_a_hostile_pickle_is_loaded_weights_only_even_when_allowed(stage, cli, tiny_classifier,
                                                                   data_dir, copy_of, tmp_path):
    model = copy_of(tiny_classifier)
    (model / "model.safetensors").unlink()
    marker = tmp_path / "pwned"
    with (model / "pytorch_model.bin").open("wb") as f:
        pickle.dump({"bert.embeddings.word_embeddings.weight": _RunsCode(marker)}, f,
                    protocol=2)
    before = _digest(model)
    out = tmp_path / "out"
    args = (tiny_args(model, data_dir, out, "--new-head", "--allow-pickle") if stage == "finetune"
            else ["-q", "export", "--model", model, "--out", out, "--allow-pickle"])
    code, err = cli(*args)
    _one_line(code, err, 2, f"its pickle weights hold more than tensors (a call to "
                            f"{os.system.__module__}.system); weights-only loading refused them")
    assert not marker.exists(), "the pickle's code ran"
    assert not out.exists() and _digest(model) == before

    code, err = cli(*[a for a in args if a != "--allow-pickle"])  # refused outright without
    _one_line(code, err, 2, "has only pickle weights (pytorch_model.bin), which can run code")


@pytest.mark.parametrize("stage", ["finetune", "export"])
@pytest.mark.parametrize("cut", ["half", "header"])
def test_truncated_safetensors_are_refused_before_loading(stage, cut, cli, tiny_classifier,
                                                          data_dir, copy_of, tmp_path):
    model = copy_of(tiny_classifier)
    weights = model / "model.safetensors"
    raw = weights.read_bytes()
    weights.write_bytes(raw[: len(raw) // 2] if cut == "half" else raw[:100])
    out = tmp_path / "out"
    args = (tiny_args(model, data_dir, out, "--new-head") if stage == "finetune"
            else ["-q", "export", "--model", model, "--out", out])
    code, err = cli(*args)
    words = "is truncated (" if cut == "half" else "is truncated or not a safetensors file"
    _one_line(code, err, 2, f"{weights}: {words}")
    assert "download or copy the checkpoint again" in err and not out.exists()


def _adapter(folder: Path, base: str) -> Path:
    """A LoRA adapter's files: its config naming the base it was trained on, and weights of
    another shape (a 384-wide base)."""
    from safetensors.numpy import save_file

    folder.mkdir(exist_ok=True)
    (folder / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "LORA", "task_type": "SEQ_CLS", "r": 8, "target_modules": ["query"],
         "base_model_name_or_path": base}))
    save_file({"base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight":
               np.zeros((8, 384), np.float32)}, str(folder / "adapter_model.safetensors"))
    return folder


def test_an_adapter_folder_given_as_the_model(cli, tiny_classifier, data_dir, copy_of,
                                              tmp_path):
    model = copy_of(tiny_classifier)
    adapter = _adapter(model / "adapter", str(model))
    code, err = cli(*tiny_args(adapter, data_dir, tmp_path / "out"))
    _one_line(code, err, 2, f"is a LoRA adapter, not a model; the merged model is in "
                            f"{model.resolve()}: give that folder")


@pytest.mark.parametrize("stage", ["finetune", "export"])
def test_an_adapter_trained_on_another_base_model(stage, cli, tiny_classifier, data_dir,
                                                  copy_of, tmp_path):
    """transformers would quietly load the adapter's base (any path or hub id) instead."""
    model = copy_of(tiny_classifier)
    _adapter(model, "sentence-transformers/all-MiniLM-L6-v2")
    before = _digest(model)
    out = tmp_path / "out"
    args = (tiny_args(model, data_dir, out, "--new-head") if stage == "finetune"
            else ["-q", "export", "--model", model, "--out", out])
    code, err = cli(*args)
    _one_line(code, err, 2, "holds adapter_config.json, a LoRA adapter for another base model "
                            "('sentence-transformers/all-MiniLM-L6-v2'): transformers would "
                            "load that model instead of this folder; refused")
    assert not out.exists() and _digest(model) == before


def _config(model: Path, **changes) -> None:
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps(config | changes))


def _keep_weights(model: Path, n: int) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(model / "model.safetensors")
    save_file(dict(list(tensors.items())[:n]), model / "model.safetensors",
              metadata={"format": "pt"})


DAMAGED = {
    "config_not_an_object": (lambda m: (m / "config.json").write_text("[1, 2]"),
                             "config.json: holds a JSON list, not an object"),
    "config_bad_id2label": (lambda m: _config(m, id2label={"a": "x", "b": "y"}),
                            "config.json: id2label must map class ids (0, 1, ...) to names"),
    "config_edited_vocab": (lambda m: _config(m, vocab_size=50),
                            "config.json does not match the weights "
                            "(bert.embeddings.word_embeddings.weight has another shape)"),
    "config_fewer_layers": (lambda m: _config(m, num_hidden_layers=1),
                            "the weights hold layers config.json does not build (e.g. "
                            "bert.encoder.layer.1."),
    "weights_missing_tensors": (lambda m: _keep_weights(m, 3),
                                "the weights lack 34 tensor(s) the model needs"),
    "weights_a_folder": (lambda m: ((m / "model.safetensors").unlink(),
                                    (m / "model.safetensors").mkdir()),
                         "model.safetensors: is not a file"),
    "no_tokenizer": (lambda m: [p.unlink() for p in m.iterdir()
                                if p.name.startswith(("tokenizer", "vocab", "special"))],
                     "has no tokenizer files (tokenizer.json, tokenizer_config.json, vocab.txt)"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGED))
def test_a_damaged_checkpoint_is_named_not_trained_from_random(damage, cli, tiny_classifier,
                                                               data_dir, copy_of, tmp_path):
    """transformers fills missing or misshapen tensors at random; that is refused here."""
    model = copy_of(tiny_classifier)
    mutate, words = DAMAGED[damage]
    mutate(model)
    before = _digest(model)
    code, err = cli(*tiny_args(model, data_dir, tmp_path / "out", "--new-head"))
    _one_line(code, err, 2, words)
    assert not (tmp_path / "out").exists() and _digest(model) == before


@pytest.mark.parametrize("damage", ["config_edited_vocab", "config_fewer_layers",
                                    "weights_missing_tensors"])
def test_verify_loads_a_reference_with_the_same_checks(damage, cli, tiny_classifier, data_dir,
                                                       copy_of, tmp_path):
    """verify's PyTorch loader is the stages' loader: a damaged checkpoint is named, never
    scored with random weights."""
    model = copy_of(tiny_classifier)
    mutate, words = DAMAGED[damage]
    mutate(model)
    if damage == "config_edited_vocab":  # (transformers itself refuses it, without the name)
        words = "config.json does not match the weights"
    code, err = cli("verify", "--reference", model, "--candidate", tiny_classifier,
                    "--data", data_dir / "test.jsonl", "--out", tmp_path / "v.json",
                    "--no-latency")
    _one_line(code, err, 2, words)
    assert not (tmp_path / "v.json").exists()


def _small_vocab_classifier(folder: Path, tiny_backbone: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                        num_labels=2, id2label={0: "negative", 1: "positive"},
                        label2id={"negative": 0, "positive": 1})
    BertForSequenceClassification(config).save_pretrained(folder, safe_serialization=True)
    AutoTokenizer.from_pretrained(tiny_backbone).save_pretrained(folder)  # 30522 tokens
    return folder


@pytest.mark.parametrize("stage", ["finetune", "export"])
def test_a_tokenizer_that_does_not_match_the_model(stage, cli, tiny_backbone, data_dir,
                                                   tmp_path):
    model = _small_vocab_classifier(tmp_path / "model", tiny_backbone)
    out = tmp_path / "out"
    args = (tiny_args(model, data_dir, out, "--new-head") if stage == "finetune"
            else ["-q", "export", "--model", model, "--out", out])
    code, err = cli(*args)
    _one_line(code, err, 2, "the tokenizer has 30522 tokens but the model's embedding table "
                            "only 100; the tokenizer belongs to another model")
    assert not out.exists()


def test_export_refuses_a_checkpoint_with_nan_weights(cli, tiny_classifier, copy_of, tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    model = copy_of(tiny_classifier)
    tensors = load_file(model / "model.safetensors")
    tensors["classifier.weight"][0, 0] = float("nan")
    save_file(tensors, model / "model.safetensors", metadata={"format": "pt"})
    out = tmp_path / "out"
    code, err = cli("-q", "export", "--model", model, "--out", out)
    _one_line(code, err, 2, "weight classifier.weight holds NaN or infinite values")
    assert not out.exists()
    del torch


def test_export_refuses_a_quantized_model_whose_outputs_go_nan(cli, tiny_classifier, tmp_path,
                                                               monkeypatch):
    """int8 gone wrong (here: a NaN written into the quantized graph) is not written."""
    import onnx
    from onnx import numpy_helper

    from edgetransfer.convert import quantize

    real = quantize.dynamic

    def broken(src, dst, *args, **kwargs):
        settings = real(src, dst, *args, **kwargs)
        m = onnx.load(str(dst))
        for init in m.graph.initializer:
            if init.data_type == onnx.TensorProto.FLOAT and "classifier" in init.name:
                a = numpy_helper.to_array(init).copy()
                a.flat[0] = np.nan
                init.CopyFrom(numpy_helper.from_array(a, init.name))
        onnx.save(m, str(dst))
        return settings

    monkeypatch.setattr(quantize, "dynamic", broken)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "onnx"
    before = _digest(tiny_classifier)
    code, err = cli("-q", "export", "--model", tiny_classifier, "--out", out, "--quantize",
                    "int8-dynamic", "--no-fuse", "--no-first-token-last-layer")
    _one_line(code, err, 3, "parity with PyTorch failed for int8-dynamic (int8): logits:")
    assert "NaN" in err and "nothing was written to" in err
    assert not out.exists() and not (tmp_path / ".onnx.partial").exists()
    assert _digest(tiny_classifier) == before


def test_export_bad_settings_and_data(cli, tiny_classifier, tmp_path):
    from edgetransfer.convert.onnx_export import max_opset

    code, err = cli("-q", "export", "--model", tiny_classifier, "--out", tmp_path / "o",
                    "--opset", "99")
    _one_line(code, err, 2, f"--opset 99: newer than the installed onnx, torch exporter and "
                            f"onnxruntime all support (at most {max_opset()})")
    code, err = cli("-q", "export", "--model", tiny_classifier, "--out", tmp_path / "o",
                    "--opset", "9")
    _one_line(code, err, 2, "--opset 9: too low for transformer exports")

    data = _labelled(tmp_path, labels=("negative", "positive", "neutral"))
    code, err = cli("-q", "export", "--model", tiny_classifier, "--out", tmp_path / "o",
                    "--eval-data", data)
    _one_line(code, err, 2, "eval.jsonl: line 3: label 'neutral' is not a known class; the "
                            "model's classes are ['negative', 'positive']; is this data for "
                            "another task?")
    code, err = cli("-q", "export", "--model", tiny_classifier,
                    "--out", tiny_classifier / "onnx")
    _one_line(code, err, 2, "overlaps the input")
    assert not (tmp_path / "o").exists() and not (tiny_classifier / "onnx").exists()


# -- ONNX files --------------------------------------------------------------------------


def _small_onnx(folder: Path, *, external: bool = False, ir: int = 8, opset: int = 17) -> Path:
    """y = x @ W with a 64x64 W (16 KB, so it can live in an external data file)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True, exist_ok=True)
    w = numpy_helper.from_array(np.ones((64, 64), np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])], "small",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir
    path = folder / "model.onnx"
    if external:
        onnx.save(model, str(path), save_as_external_data=True, location="model.onnx.data",
                  size_threshold=1024)
    else:
        onnx.save(model, str(path))
    return path


def _relocate(path: Path, location: str) -> None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for init in model.graph.initializer:
        for kv in init.external_data:
            if kv.key == "location":
                kv.value = location
    onnx.save(model, str(path))


def _hostile_onnx(kind: str, tmp_path: Path) -> Path:
    folder = tmp_path / "m"
    if kind in ("dotdot", "absolute", "symlink", "missing", "short"):
        path = _small_onnx(folder, external=True)
        outside = tmp_path / "outside.data"
        (folder / "model.onnx.data").rename(outside)
        location = {"dotdot": "../outside.data", "absolute": str(outside),
                    "symlink": "link.data", "missing": "nowhere.data",
                    "short": "short.data"}[kind]
        if kind == "symlink":
            (folder / "link.data").symlink_to(outside)
        if kind == "short":
            (folder / "short.data").write_bytes(outside.read_bytes()[:1000])
        _relocate(path, location)
        return path
    if kind == "ir_too_new":
        return _small_onnx(folder, ir=99)
    if kind == "opset_too_new":
        return _small_onnx(folder, opset=99)
    path = _small_onnx(folder)
    raw = path.read_bytes()
    path.write_bytes({"truncated": raw[: len(raw) // 2], "empty": b"",
                      "lfs": b"version https://git-lfs.github.com/spec/v1\noid sha256:00\n",
                      "garbage": b"\x08\x07" + os.urandom(200)}[kind])
    return path


HOSTILE_ONNX = {
    "truncated": (2, "is not a readable ONNX model"),
    "garbage": (2, "is not a readable ONNX model"),
    "empty": (2, "is empty (0 bytes)"),
    "lfs": (2, "is a git-LFS pointer, not a model; run `git lfs pull`"),
    "ir_too_new": (4, "ONNX IR version 99 is newer than onnxruntime"),
    "opset_too_new": (4, "opset 99 is newer than onnxruntime"),
    "dotdot": (2, "reads external data from '../outside.data': it leaves the model's folder"),
    "absolute": (2, "an absolute path, refused"),
    "symlink": (2, "reads external data from 'link.data': a symbolic link to"),
    "missing": (2, "'nowhere.data': no such file beside the model"),
    "short": (2, "'short.data': the file is shorter than the tensor needs (truncated)"),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE_ONNX))
def test_hostile_onnx_files_are_refused_before_onnxruntime_loads_them(kind, tmp_path):
    from edgetransfer.errors import EdgeTransferError
    from edgetransfer.measure import latency

    path = _hostile_onnx(kind, tmp_path)
    before = _digest(tmp_path)
    code, words = HOSTILE_ONNX[kind]
    with pytest.raises(EdgeTransferError) as info:
        latency.ort_session(path)
    assert info.value.exit_code == code and words in str(info.value)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert _digest(tmp_path) == before


def test_a_good_onnx_file_with_external_data_loads(tmp_path):
    from edgetransfer.measure import latency

    session = latency.ort_session(_small_onnx(tmp_path / "m", external=True))
    y = session.run(None, {"x": np.ones((1, 64), np.float32)})[0]
    assert float(y[0, 0]) == 64.0


@pytest.mark.parametrize("kind", ["truncated", "dotdot"])
def test_verify_names_a_hostile_candidate_in_one_line(kind, cli, tiny_classifier, copy_of,
                                                      tmp_path):
    candidate = copy_of(tiny_classifier, "candidate")
    (candidate / "model.safetensors").unlink()
    onnx_path = _hostile_onnx(kind, tmp_path)
    for f in onnx_path.parent.iterdir():
        os.replace(f, candidate / f.name)
    data = _labelled(tmp_path)
    code, err = cli("-q", "verify", "--reference", tiny_classifier, "--candidate", candidate,
                    "--data", data, "--out", tmp_path / "verify.json", "--no-latency")
    _one_line(code, err, 2, f"{candidate / 'model.onnx'}: ")
    assert HOSTILE_ONNX[kind][1] in err
