"""export on a tiny random BERT: each quantization mode, the parity gate, auto, ORT format,
errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import make_classifier, make_rows, write_jsonl

ONNX_FILES = {"artifact.json", "config.json", "export.json", "model.onnx", "tokenizer.json",
              "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"}


@pytest.fixture(scope="session")
def tiny_model(tiny_backbone, tmp_path_factory) -> Path:
    """A 3-class tiny classifier (random head; export needs no training)."""
    return make_classifier(tiny_backbone, tmp_path_factory.mktemp("export-model") / "m", seed=1)


@pytest.fixture(scope="session")
def eval_file(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("export-data") / "val.jsonl",
                       make_rows(30, seed=2))


def _run_onnx(folder: Path, texts):
    import onnxruntime as ort
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    enc = tok(texts, padding=True, return_tensors="np")
    return session.run(None, {k: v.astype(np.int64) for k, v in enc.items() if k in names})[0]


@pytest.mark.parametrize("mode", ["none", "int8-dynamic", "int8-static", "fp16"])
def test_each_quantization_mode(mode, cli, tiny_model, eval_file, tmp_path, monkeypatch):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # onnxruntime's quantizers like to leave scratch files here
    out = tmp_path / "onnx"
    extra = ["--calibration-data", eval_file] if mode == "int8-static" else []
    code, err = cli("-q", "export", "--model", tiny_model, "--out", out, "--quantize", mode,
                    "--eval-data", eval_file, *extra)
    assert code == 0, err
    assert {p.name for p in out.iterdir()} == ONNX_FILES
    assert list(work.iterdir()) == [], "nothing may be left in the working directory"
    record = json.loads((out / "export.json").read_text())
    assert record["quantization"]["mode"] == mode
    assert record["opset"] == 18
    assert record["parity"]["export"]["passed"] and record["parity"]["final"]["passed"]
    # parity is checked on batch sizes and lengths other than the export's (2 x 16)
    assert record["parity"]["export"]["outputs"]["logits"]["examples"] == 8 + 30
    assert record["fusions"]["Attention"] == 2
    # the last layer's feed-forward part runs for the first token only (parity still holds)
    assert record["first_token_last_layer"] is True
    # the host the latency was taken on; for int8, whether it has what the target assumes
    assert record["host"]["arch"] and isinstance(record["host"]["isa"], list)
    assert ("target_mismatch" in record["host"]) == mode.startswith("int8")
    # int8 accuracy is scored one text at a time, as deployed; the others in batches
    assert record["accuracy_batch_size"] == (1 if mode.startswith("int8") else 32)
    # the ONNX model answers like PyTorch on new texts
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    texts = ["a new text", "another, longer text than the first one"]
    onnx_logits = _run_onnx(out, texts)
    ref = AutoModelForSequenceClassification.from_pretrained(tiny_model).eval()
    with torch.inference_mode():
        torch_logits = ref(**AutoTokenizer.from_pretrained(tiny_model)(
            texts, padding=True, return_tensors="pt")).logits.numpy()
    tol = {"none": 1e-4, "fp16": 5e-2}.get(mode, 0.5)
    assert np.abs(onnx_logits - torch_logits).max() < tol
    if mode == "int8-dynamic":
        import onnx

        ops = {n.op_type for n in onnx.load(str(out / "model.onnx")).graph.node}
        assert "QAttention" in ops  # quantized after fusion: the fast path
        assert record["quantization"]["per_channel"] is True  # the avx512-vnni preset


def test_first_token_last_layer_is_exact(tiny_model, tmp_path):
    import onnx
    import onnxruntime as ort
    from transformers import AutoConfig, AutoTokenizer

    from edgetransfer.convert import onnx_export, rewrites

    onnx_export.export(tiny_model, tmp_path, 18, "text-classification")
    config = AutoConfig.from_pretrained(tiny_model)
    rewrites.fuse(tmp_path / "model.onnx", tmp_path / "fused.onnx", config)
    assert rewrites.first_token_last_layer(tmp_path / "fused.onnx", tmp_path / "ft.onnx", config)
    assert sum(n.op_type == "Slice" for n in onnx.load(str(tmp_path / "ft.onnx")).graph.node) \
        >= 2
    tok = AutoTokenizer.from_pretrained(tiny_model)
    enc = tok(["short", "a much longer text than the other one is"], padding=True,
              return_tensors="np")
    runs = []
    for name in ("fused.onnx", "ft.onnx"):
        s = ort.InferenceSession(str(tmp_path / name), providers=["CPUExecutionProvider"])
        names = {i.name for i in s.get_inputs()}
        runs.append(s.run(None, {k: v.astype(np.int64) for k, v in enc.items()
                                 if k in names})[0])
    assert np.abs(runs[0] - runs[1]).max() < 1e-5


def test_a_parity_failure_is_an_error_and_writes_nothing(cli, tiny_model, tmp_path,
                                                         monkeypatch):
    import onnx
    from onnx import numpy_helper

    from edgetransfer.convert import onnx_export

    real = onnx_export.export

    def corrupted(*args, **kwargs):  # a weight gone bad during export
        path = real(*args, **kwargs)
        model = onnx.load(str(path))
        for init in model.graph.initializer:
            if "classifier" in init.name and "weight" in init.name:
                init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 50,
                                                      init.name))
        onnx.save(model, str(path))
        return path

    monkeypatch.setattr(onnx_export, "export", corrupted)
    out = tmp_path / "onnx"
    code, err = cli("-q", "export", "--model", tiny_model, "--out", out, "--quantize", "none")
    assert code == 3
    assert "parity with PyTorch failed for exported (fp32)" in err
    assert "max |difference|" in err
    assert not out.exists() and not (tmp_path / ".onnx.partial").exists()


def test_auto_picks_a_candidate_and_records_all(cli, tiny_model, eval_file, tmp_path):
    out = tmp_path / "onnx"
    code, err = cli("-q", "export", "--model", tiny_model, "--out", out, "--quantize", "auto",
                    "--eval-data", eval_file, "--calibration-data", eval_file,
                    "--max-accuracy-drop", "100")
    assert code == 0, err
    record = json.loads((out / "export.json").read_text())
    names = [c["name"] for c in record["auto"]["candidates"]]
    assert names == ["int8-dynamic", "int8-static", "none"]
    for c in record["auto"]["candidates"]:
        assert {"accuracy", "drop_points", "p50_ms", "p90_ms", "size_bytes", "holds"} <= set(c)
    held = [c for c in record["auto"]["candidates"] if c["holds"]]
    assert record["auto"]["chosen"] == min(held, key=lambda c: c["p50_ms"])["name"]


def test_auto_retries_a_miss_with_sensitive_nodes_excluded(tiny_model, eval_file, tmp_path,
                                                           monkeypatch):
    from edgetransfer.measure.gates import Judge
    from edgetransfer.stages import export as stage

    real = Judge.score
    calls = []

    def accuracy(job, path, precision="fp32"):  # int8 candidates "lose" 5 points
        calls.append(Path(path).name)
        value = real(job, path, precision)
        return value - 0.05 if "int8" in Path(path).name else value

    monkeypatch.setattr(Judge, "score", accuracy)
    cfg = stage.ExportConfig(model=str(tiny_model), out=tmp_path / "onnx", quantize="auto",
                             eval_data=str(eval_file), max_accuracy_drop=1.0)
    stage.run(cfg)
    record = json.loads((tmp_path / "onnx/export.json").read_text())
    names = [c["name"] for c in record["auto"]["candidates"]]
    assert names[0] == "int8-dynamic" and names[1].startswith("int8-dynamic-excluding-")
    assert record["auto"]["candidates"][1]["settings"]["nodes_excluded"]
    assert record["auto"]["chosen"] == "none"  # the only one that held
    assert record["accuracy_batch_size"] == 32  # an fp32 pick is scored in batches


def test_ort_format(cli, tiny_model, tmp_path):
    out = tmp_path / "onnx"
    code, err = cli("-q", "export", "--model", tiny_model, "--out", out, "--quantize",
                    "int8-dynamic", "--ort-format")
    assert code == 0, err
    assert {"model.ort", "model.required_operators.config"} <= {p.name for p in out.iterdir()}
    record = json.loads((out / "export.json").read_text())
    assert record["parity"]["ort"]["passed"]  # what the bundle runs is gated too
    assert record["ort_format"]["target_platform"] == "amd64"
    import onnxruntime as ort

    ort.InferenceSession(str(out / "model.ort"), providers=["CPUExecutionProvider"])


def test_bad_inputs(cli, tiny_model, tiny_backbone, copy_of, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, err = cli("export", "--model", empty, "--out", tmp_path / "o")
    assert code == 2 and "has no config.json" in err

    pickled = copy_of(tiny_model, "pickled")
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")
    code, err = cli("export", "--model", pickled, "--out", tmp_path / "o")
    assert code == 2 and "has only pickle weights" in err

    code, err = cli("export", "--model", tiny_backbone, "--out", tmp_path / "o")
    assert code == 2 and "has no text-classification head" in err

    code, err = cli("export", "--model", tiny_model, "--out", tmp_path / "o", "--opset", "9")
    assert code == 2 and "--opset 9: too low" in err

    code, err = cli("export", "--model", tiny_model, "--out", tmp_path / "o", "--quantize",
                    "auto")
    assert code == 2 and "--quantize auto needs --eval-data" in err

    unsupported = copy_of(tiny_model, "unsupported")
    config = json.loads((unsupported / "config.json").read_text())
    config["architectures"] = ["FancyNewForSequenceClassification"]
    config["model_type"] = "fancy-new"
    (unsupported / "config.json").write_text(json.dumps(config))
    code, err = cli("export", "--model", unsupported, "--out", tmp_path / "o")
    assert code == 2 and "fancy-new" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_host_mismatch_names_the_missing_instructions():
    from edgetransfer.convert.quantize import host_mismatch

    avx2 = {"arch": "x86_64", "isa": ["avx2"]}
    vnni = {"arch": "x86_64", "isa": ["avx2", "avx512f", "avx512_vnni"]}
    assert "lacks avx512_vnni" in host_mismatch("x86-avx512-vnni", avx2)
    assert host_mismatch("x86-avx512-vnni", vnni) is None
    assert host_mismatch("x86-avx2", avx2) is None
    assert "aarch64" in host_mismatch("x86-avx2", {"arch": "aarch64", "isa": ["asimd"]})
    assert "x86_64" in host_mismatch("arm64", avx2)
    assert host_mismatch("arm64", {"arch": "aarch64", "isa": ["asimd", "asimddp"]}) is None
    # no flags read (no /proc/cpuinfo): not judged
    assert host_mismatch("x86-avx512-vnni", {"arch": "x86_64", "isa": []}) is None


def test_one_by_one_cuts_each_rows_padding_on_either_side():
    from edgetransfer.measure.scoring import one_by_one

    ids = np.array([[101, 7, 8, 102], [101, 9, 102, 0]])
    mask = (ids != 0).astype(np.int64)
    right = {"input_ids": ids, "attention_mask": mask}
    rows = list(one_by_one([(right, np.array([1, 0]))]))
    assert [r[0]["input_ids"].tolist() for r in rows] == [[[101, 7, 8, 102]], [[101, 9, 102]]]
    assert [r[1].tolist() for r in rows] == [[1], [0]]
    left = {"input_ids": np.array([[0, 101, 9, 102]]), "attention_mask": np.array([[0, 1, 1, 1]])}
    (feeds, _), = one_by_one([(left, np.array([1]))])
    assert feeds["input_ids"].tolist() == [[101, 9, 102]]
    assert feeds["attention_mask"].tolist() == [[1, 1, 1]]
