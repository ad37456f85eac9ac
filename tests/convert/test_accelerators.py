"""export --for nnapi|coreml|qnn on tiny models: what each profile leaves in the graph, its
coverage record, the bundle's fixed-shape runtime and its provider fallback."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import make_classifier

from edgetransfer.measure import coverage, qnn
from edgetransfer.stages import export, package

CONTRIB = "com.microsoft"


def _ops(path: Path) -> Counter:
    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def _shapes(path: Path) -> dict:
    return {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
            for i in onnx.load(str(path)).graph.input}


@pytest.fixture(scope="module")
def text_model(tiny_backbone, tmp_path_factory) -> Path:
    """A tiny 3-class text classifier over data_dir's labels."""
    return make_classifier(tiny_backbone, tmp_path_factory.mktemp("npu-text") / "model", 0)


@pytest.fixture(scope="module")
def nnapi_text(text_model, data_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("nnapi") / "onnx"
    export.run(export.ExportConfig(
        model=str(text_model), out=out, accelerator="nnapi", quantize="int8",
        calibration_data=str(data_dir / "train.jsonl"),
        eval_data=str(data_dir / "validation.jsonl"), max_length=32))
    return out


def test_nnapi_profile_is_fixed_standard_and_qdq(nnapi_text):
    ops = _ops(nnapi_text / "model.onnx")
    model = onnx.load(str(nnapi_text / "model.onnx"))
    assert not [n for n in model.graph.node if n.domain == CONTRIB]
    assert ops["QuantizeLinear"] and ops["DequantizeLinear"]
    # what NNAPI refuses was decomposed or moved out of the graph
    assert not {"Erf", "LayerNormalization", "Where", "Expand", "GatherND"} & set(ops)
    assert _shapes(nnapi_text / "model.onnx") == {
        "input_ids": [1, 32], "token_type_ids": [1, 32], "attention_bias": [1, 1, 1, 32]}
    record = json.loads((nnapi_text / "export.json").read_text())
    acc = record["accelerator"]
    assert acc["name"] == "nnapi" and acc["sequence_length"] == 32
    assert acc["coverage"]["partitions"] == 1
    assert acc["coverage"]["largest_partition_share"] == 1.0
    assert acc["coverage"]["refused_ops"] == []
    assert record["quantization"]["activation_type"] == "QUInt8"
    assert {g["gate"] for g in record["gates"]} >= {"parity fixed_shapes", "parity final"}


def test_coreml_keeps_float_and_looks_up_outside(text_model, data_dir, tmp_path):
    out = tmp_path / "coreml"
    export.run(export.ExportConfig(model=str(text_model), out=out, accelerator="coreml",
                                   quantize="fp16", eval_data=str(data_dir / "validation.jsonl"),
                                   max_length=24))
    ops = _ops(out / "model.onnx")
    assert "Gather" not in ops and "QuantizeLinear" not in ops
    assert (out / "embeddings.onnx").is_file()
    assert set(_ops(out / "embeddings.onnx")) == {"Gather"}
    cov = json.loads((out / "export.json").read_text())["accelerator"]["coverage"]
    assert cov["provider"] == "CoreMLExecutionProvider"
    assert cov["largest_partition_share"] == 1.0


def test_token_task_outputs_come_back_at_the_callers_length(tiny_tagger, token_data, tmp_path):
    """Per-token outputs of the fixed-length graph are cut back to each batch's length, so
    the parity gates compare word by word (a pass here is that comparison)."""
    out = tmp_path / "tagger"
    export.run(export.ExportConfig(model=str(tiny_tagger), out=out, accelerator="coreml",
                                   quantize="none", eval_data=str(token_data / "test.txt"),
                                   max_length=48))
    record = json.loads((out / "export.json").read_text())
    assert record["parity"]["fixed_shapes"]["passed"]
    assert record["parity"]["fixed_shapes"]["outputs"]["logits"]["max_abs_diff"] < 1e-3
    assert _shapes(out / "embeddings.onnx")["input_ids"] == [1, 48]  # (coreml: looked up first)


@pytest.fixture(scope="module")
def nnapi_image(image_teacher, image_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("nnapi-image") / "image"
    # (a weak toy model, many near-ties; the parity check runs the NPU's int8 on this CPU,
    # whose u8 x s8 products saturate on AVX2 without VNNI: of 28, 22 agreed there (0.786)
    # with the teacher trained on two threads, 18 (0.643) with it trained on one, as each of
    # pytest-xdist's processes on two cores does. The profile's graph is what these tests
    # check; the int8 parity gate has tests of its own)
    export.run(export.ExportConfig(model=str(image_teacher), out=out, accelerator="nnapi",
                                   calibration_data=str(image_data / "train"),
                                   eval_data=str(image_data / "test"), max_accuracy_drop=50,
                                   min_agreement=0.5))
    return out


def test_image_profile_fixes_batch_and_size(nnapi_image):
    out = nnapi_image
    assert _shapes(out / "model.onnx") == {"pixel_values": [1, 3, 32, 32]}
    assert _ops(out / "model.onnx")["QuantizeLinear"]
    cov = json.loads((out / "export.json").read_text())["accelerator"]["coverage"]
    assert cov["partitions"] >= 1 and cov["nodes"] > 0


def test_image_profile_quantizes_each_convolution_per_channel(nnapi_image):
    """NNAPI's int8 CNN: every Conv weight s8, one scale per output channel (symmetric: zero
    points 0); the classifier's MatMul/Gemm weights stay u8 per tensor."""
    from onnx import numpy_helper

    out = nnapi_image
    model = onnx.load(str(out / "model.onnx"))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    made = {n.output[0]: n for n in model.graph.node}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert convs
    for conv in convs:
        dq = made[conv.input[1]]
        assert dq.op_type == "DequantizeLinear"
        weight, scale, zero = (inits[name] for name in dq.input)
        assert weight.dtype == np.int8 and not zero.any()
        assert scale.shape == (weight.shape[0],)
    heads = [made[n.input[1]] for n in model.graph.node if n.op_type in ("MatMul", "Gemm")
             and n.input[1] in made]
    assert all(inits[dq.input[0]].dtype == np.uint8 and inits[dq.input[1]].size == 1
               for dq in heads)
    assert "Pad" not in _ops(out / "model.onnx")  # (folded into the strided convolutions)
    record = json.loads((out / "export.json").read_text())
    assert record["quantization"]["per_channel"].startswith("QInt8 weights of Conv")
    assert record["accelerator"]["rewrites"]["pad_into_conv"] == 5


def test_coreml_takes_a_cnn_whole(image_teacher, image_data, tmp_path):
    """EfficientNet-Lite's TF-SAME Pads folded into its convolutions: one CoreML partition
    over every node (each Pad refused had cut the graph)."""
    out = tmp_path / "coreml"
    export.run(export.ExportConfig(model=str(image_teacher), out=out, accelerator="coreml",
                                   quantize="none", eval_data=str(image_data / "test")))
    cov = json.loads((out / "export.json").read_text())["accelerator"]["coverage"]
    assert (cov["partitions"], cov["largest_partition_share"], cov["refused_ops"]) == (1, 1.0, [])


def test_zero_padding_folds_into_the_convolution(tmp_path):
    """A TF-SAME zero Pad before a strided Conv (CoreML refuses Pad) becomes the Conv's own
    pads: same outputs, no Pad; a reflect Pad is left as it is."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from edgetransfer.convert import npu_graph

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(np.array([0, 0, 0, 1, 0, 0, 1, 2], np.int64), "pads")]

    def model(mode: str, **conv):
        graph = helper.make_graph(
            [helper.make_node("Pad", ["x", "pads"], ["p"], mode=mode),
             helper.make_node("Conv", ["p", "w"], ["y"], strides=[2, 2], **conv)],
            "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 9, 9])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
        src = tmp_path / f"{mode}.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(src))
        dst = tmp_path / f"{mode}-npu.onnx"
        done = npu_graph.rewrite(src, dst, {"x": [1, 3, 9, 9]}, ())
        return src, dst, done

    x = rng.standard_normal((1, 3, 9, 9)).astype(np.float32)

    def run(path):
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
            None, {"x": x})[0]

    for conv, folded in (({"pads": [1, 0, 1, 0]}, [1, 1, 2, 2]),
                         ({"auto_pad": "VALID"}, [0, 1, 1, 2])):  # (torch's padding="valid")
        src, dst, done = model("constant", **conv)  # (the first, onnxruntime's fold fuses)
        assert "Pad" not in _ops(dst)
        node = next(n for n in onnx.load(str(dst)).graph.node if n.op_type == "Conv")
        assert {a.name: list(a.ints) for a in node.attribute}["pads"] == folded
        np.testing.assert_allclose(run(dst), run(src), atol=1e-5)
    assert done["pad_into_conv"] == 1
    src, dst, done = model("reflect", pads=[1, 0, 1, 0])
    assert done["pad_into_conv"] == 0 and _ops(dst)["Pad"] == 1


def test_coverage_names_the_refused_operator(tmp_path):
    """A graph built with Erf (which NNAPI refuses) between two MatMuls: two partitions,
    Erf named."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.eye(4, dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["a"]), helper.make_node("Erf", ["a"], ["b"]),
         helper.make_node("MatMul", ["b", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w])
    path = tmp_path / "erf.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    record = coverage.mobile(path, "nnapi_supported_ops.md", 999, "NnapiExecutionProvider")
    assert record["refused_ops"] == ["ai.onnx:Erf"]
    assert record["partitions"] == 2 and record["supported_nodes"] == 2
    assert record["largest_partition_share"] == pytest.approx(1 / 3, abs=1e-3)


@pytest.fixture(scope="module")
def npu_tagger_bundle(tiny_tagger, token_data, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("npu-bundle")
    export.run(export.ExportConfig(model=str(tiny_tagger), out=root / "onnx", accelerator="nnapi",
                                   quantize="int8", eval_data=str(token_data / "test.txt"),
                                   calibration_data=str(token_data / "train.txt"),
                                   max_accuracy_drop=100, max_length=16))
    return package.run(package.PackageConfig(model=root / "onnx", unverified=True,
                                             out=root / "bundle", cold_starts=1,
                                             latency_requests=5))


def _bundle_predict(bundle: Path, text: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(bundle / "predict.py"), text],
                          capture_output=True, text=True, cwd=bundle)


def test_bundle_pads_to_the_bucket_and_windows_a_longer_input(npu_tagger_bundle):
    spec = json.loads((npu_tagger_bundle / "input_spec.json").read_text())
    assert spec["fixed_shapes"] and spec["max_length"] == 16
    assert spec["providers"] == ["NnapiExecutionProvider", "CPUExecutionProvider"]
    manifest = json.loads((npu_tagger_bundle / "manifest.json").read_text())
    assert manifest["model"]["accelerator"]["coverage"]["partitions"] == 1
    assert manifest["model"]["providers"] == spec["providers"]
    assert "fixed_shapes.py" in manifest["files"]
    from edgetransfer.bundle.runtime.predict import Predictor

    runtime = Predictor(npu_tagger_bundle)
    short = "Alice went to Paris"
    spans, probs = runtime.word_probabilities(short)
    assert len(spans) == 4 and probs.shape[0] == 4
    long = " ".join(["Alice", "went", "to", "Paris", "with", "Bob"] * 8)  # > 16 tokens
    spans, probs = runtime.word_probabilities(long)
    assert len(spans) == 48 and probs.shape[0] == 48  # every word scored, in windows
    # each window is the same words as the short text's: the same per-word answers
    assert np.allclose(probs[:4].sum(axis=1), 1, atol=1e-4)


def test_runtime_falls_back_to_the_cpu_in_one_line(npu_tagger_bundle):
    done = _bundle_predict(npu_tagger_bundle, "Alice went to Paris")
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == ["predict.py: NnapiExecutionProvider is not available in this "
                     "onnxruntime; running on CPUExecutionProvider"]
    assert json.loads(done.stdout.splitlines()[0])["text"] == "Alice went to Paris"


def test_target_min_coverage_exits_2(npu_tagger_bundle, cli):
    code, out = cli("target", "--bundle", str(npu_tagger_bundle), "--accelerator",
                    "coreml", "--min-coverage", "0.99")
    assert code == 2
    assert "under --min-coverage 0.99" in out and "--for coreml" in out
    code, out = cli("target", "--bundle", str(npu_tagger_bundle), "--accelerator", "nnapi",
                       "--min-coverage", "0.99")
    assert code == 0 and "1 partition(s); the largest holds 100.0%" in out
    code, out = cli("target", "--bundle", str(npu_tagger_bundle), "--min-coverage", "0.99")
    assert code == 2 and "--min-coverage holds an accelerator's coverage" in out


@pytest.mark.parametrize("args, message", [
    (["--for", "coreml", "--quantize", "int8"], "--for coreml takes no int8"),
    (["--activation-bits", "16"], "--activation-bits is for an NPU export"),
    (["--for", "nnapi", "--activation-bits", "16"], "--activation-bits 16: give 16 or 8, "
     "with --for qnn"),
    (["--for", "nnapi", "--quantize", "int8"], "needs --calibration-data"),
    (["--for", "nnapi", "--quantize", "none"], "--for nnapi --quantize none: not for this "
     "accelerator; use int8 (NNAPI's accelerators run quantized models"),
    (["--for", "qnn", "--ort-format"], "--ort-format does not go with --for qnn"),
])
def test_bad_profile_settings(tiny_classifier, tmp_path, cli, args, message):
    code, err = cli("export", "--model", str(tiny_classifier), "--out",
                       str(tmp_path / "out"), *args)
    assert code == 2 and message in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not qnn.available(), reason="onnxruntime-qnn is not installed (the qnn "
                    "extra)")
def test_qnn_compiles_every_node_for_htp(text_model, data_dir, tmp_path):
    out = tmp_path / "qnn"
    export.run(export.ExportConfig(
        model=str(text_model), out=out, accelerator="qnn", quantize="int8",
        calibration_data=str(data_dir / "train.jsonl"),
        eval_data=str(data_dir / "validation.jsonl"), max_length=16))
    record = json.loads((out / "export.json").read_text())
    cov = record["accelerator"]["coverage"]
    assert cov["htp_share"] == 1.0 and cov["cpu_nodes"] == 0 and not cov["cpu_fallback"]
    assert cov["context_written"] and cov["context_bytes"] > 0
    assert record["quantization"]["activation_type"] == "QUInt16"
    # (HTP's FullyConnected takes one scale per output channel; 16-bit weights it refuses)
    assert record["quantization"]["per_channel"].startswith("QInt8 weights of Conv, Gemm")
    model = onnx.load(str(out / "model.onnx"))
    made = {n.output[0]: n for n in model.graph.node}
    gemms = [made[n.input[1]] for n in model.graph.node if n.op_type == "Gemm"]
    assert gemms and all(next(a.i for a in dq.attribute if a.name == "axis") in (0, 1)
                         for dq in gemms)
    assert record["parity"]["qnn_simulator"]["passed"]
    simulated = record["accelerator"]["simulator"]
    assert simulated["rows"] == 24 and "accuracy" in simulated and "fp32_onnx_accuracy" in simulated


@pytest.mark.skipif(not qnn.available(), reason="onnxruntime-qnn is not installed (the qnn "
                    "extra)")
def test_qnn_compiles_a_cnn_with_per_channel_convolutions(image_teacher, image_data, tmp_path):
    out = tmp_path / "qnn-image"
    export.run(export.ExportConfig(model=str(image_teacher), out=out, accelerator="qnn",
                                   quantize="int8", calibration_data=str(image_data / "train"),
                                   eval_data=str(image_data / "test"), max_accuracy_drop=50,
                                   min_agreement=0.8))
    record = json.loads((out / "export.json").read_text())
    cov = record["accelerator"]["coverage"]
    assert cov["htp_share"] == 1.0 and cov["cpu_nodes"] == 0 and cov["context_written"]
    assert record["quantization"]["per_channel"].startswith("QInt8 weights of Conv")


def test_a_recipe_exports_verifies_and_packages_for_an_npu(cli, tiny_backbone, data_dir,
                                                           tmp_path):
    """An NPU variant is one more `export:` entry: verify measures it through its adapter
    beside the teacher, and package bundles it with its fixed-shape runtime."""
    import yaml

    root = tmp_path / "models" / "npu"
    doc = {"name": "npu", "model": str(tiny_backbone), "output": str(root),
           "data": {"train": str(data_dir / "train.jsonl"), "max_length": 24,
                    "validation": str(data_dir / "validation.jsonl"),
                    "test": str(data_dir / "test.jsonl")},
           "finetune": {"method": "full", "epochs": 3, "batch_size": 4, "lr": 2e-3,
                        "patience": 0},  # (tests/test_pipeline.py's smoke settings)
           "distill": {"student_layers": 1, "epochs": 2, "batch_size": 4, "lr": 2e-3,
                       "patience": 0},
           "export": [{"name": "nnapi", "accelerator": "nnapi", "quantize": "int8",
                       "max_accuracy_drop": 100, "min_agreement": 0.5}],
           "verify": {"max_accuracy_drop": 100, "min_agreement": 0.5, "iterations": 20,
                      "rounds": 2, "latency_samples": 8, "batch_sizes": [1, 4]},
           "package": {"variant": "nnapi", "measure": False, "target": "linux-x86_64"}}
    recipe = tmp_path / "npu.yaml"
    recipe.write_text(yaml.safe_dump(doc), encoding="utf-8")
    code, out = cli("run", recipe)
    assert code == 0, out
    record = json.loads((root / "onnx-nnapi" / "export.json").read_text())
    assert record["accelerator"]["sequence_length"] == 24
    verify = json.loads((root / "verify" / "verify.json").read_text())
    assert "onnx-nnapi" in json.dumps(verify)
    spec = json.loads((root / "bundle" / "input_spec.json").read_text())
    assert spec["fixed_shapes"] and spec["max_length"] == 24
