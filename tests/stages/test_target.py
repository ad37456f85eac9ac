"""Target checks before shipping: wheels for the device's platform and Python, operators in
the pinned onnxruntime, int8 on its CPU; `edgetransfer target` and package's own check."""

from __future__ import annotations

import json

import pytest


def test_a_bundle_that_will_run_on_a_pi5(cli, built):
    code, out = cli("target", "--bundle", built, "--target", "linux-aarch64",
                    "--target-python", "3.13", "--target-cpu", "cortex-a76", "--json")
    assert code == 0, out
    result = json.loads(out[out.index("{"):])
    assert (result["python"], result["glibc"]) == ("3.13", "2.41")
    by_check = {}
    for r in result["rows"]:
        by_check.setdefault(r["check"], []).append(r)
    assert len(by_check["wheel"]) == 3 and all(r["status"] == "ok" for r in by_check["wheel"])
    assert any("aarch64" in r["detail"] and "cp313" in r["detail"] for r in by_check["wheel"])
    assert by_check["operators"][0]["status"] == "ok" and by_check["loads"][0]["status"] == "ok"
    assert "CPU" not in by_check  # an fp32 model: no int8 kernels to judge


def test_no_wheel_for_the_devices_python_blocks(cli, built, exported, tmp_path):
    code, out = cli("target", "--bundle", built, "--target", "linux-aarch64",
                    "--target-python", "3.10")
    assert code == 2
    assert "onnxruntime==" in out and "no wheel for linux-aarch64, Python 3.10 (Ubuntu " \
           "22.04, glibc 2.35)" in out
    # package runs the same check first and writes nothing
    code, out = cli("package", "--model", exported,
                    "--unverified", "--target", "linux-aarch64", "--target-python", "3.10",
                    "--out", tmp_path / "bundle", "--no-measure")
    assert code == 2 and "nothing was written" in out
    assert not any(tmp_path.iterdir())


def test_a_package_records_its_target_check(built):
    manifest = json.loads((built / "manifest.json").read_text())
    check = manifest["target_check"]
    assert check["target"] == "linux-x86_64" and {r["status"] for r in check["rows"]} == {"ok"}


def test_an_operator_without_a_kernel_blocks(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from edgetransfer.device import target_check

    node = helper.make_node("NoSuchOp", ["x"], ["y"], domain="com.example")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                          [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18),
                                                    helper.make_opsetid("com.example", 1)])
    path = tmp_path / "model.onnx"
    onnx.save(model, path)
    rows = {r["check"]: r for r in target_check.model(path, None)}
    assert rows["operators"]["status"] == "block"
    assert "com.example:NoSuchOp (opset 1)" in rows["operators"]["detail"]
    assert rows["loads"]["status"] == "block"


@pytest.mark.parametrize("cpu, status", [("cortex-a72", "warn"), ("cortex-a76", "ok"),
                                         (None, "warn")])
def test_int8_on_arm_cores_with_and_without_dot_product(cpu, status):
    from edgetransfer.device import target_check

    (row,) = target_check.cpu("linux-aarch64", cpu, "int8")
    assert row["status"] == status
    assert target_check.cpu("linux-x86_64", cpu, "int8") == []
    assert target_check.cpu("linux-aarch64", cpu, "fp32") == []
