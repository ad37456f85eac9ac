"""Bundles on emulated ARM CPUs (qemu user mode: Cortex-A72 as in a Raspberry Pi 4,
Cortex-A76 as in a Pi 5) against the same bundle on this x86 host. Skips, saying why, where
qemu-user-static or the arm64 Python and wheels cannot be had."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import write_report

TEXTS = ["turn the lights off", "what a wonderful and lovely film", "boring, dull and weak",
         "set a timer for ten minutes", "the river by the garden", "an awful, terrible plot"]


@pytest.fixture(scope="module")
def arm():
    from edgetransfer.device import arm_emulation
    from edgetransfer.errors import EnvironmentProblem

    if shutil.which(arm_emulation.QEMU) is None:
        pytest.skip("qemu-user-static is not installed (apt-get install qemu-user-static; "
                    ".ci/run installs it)")
    try:
        arm_emulation.sysroot()
    except EnvironmentProblem as e:
        pytest.skip(f"no arm64 Python here: {e}")
    return arm_emulation


def rows(proc) -> list[dict]:
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def on_x86(bundle, args) -> list[dict]:
    return rows(subprocess.run([sys.executable, "-I", "-B", "predict.py", *args], cwd=bundle,
                               capture_output=True, text=True))


@pytest.mark.parametrize("cpu", ["cortex-a72", "cortex-a76"])
def test_a_text_bundle_gives_the_x86_scores(arm, built, cpu):
    here = on_x86(built, TEXTS)
    there = rows(arm.predict(built, cpu, TEXTS))
    assert [r["label"] for r in there] == [r["label"] for r in here]
    for a, b in zip(here, there):  # fp32: the same numbers to rounding
        assert max(abs(a["scores"][k] - b["scores"][k]) for k in a["scores"]) < 1e-4


def test_an_int8_image_bundle_on_the_pi5_cpu(arm, image_int8, image_data, tmp_path):
    from edgetransfer.stages import package

    bundle = package.run(package.PackageConfig(
        model=image_int8, verify_report=write_report(tmp_path / "verify.json", image_int8),
        target="linux-aarch64", out=tmp_path / "bundle", measure=False))
    here = on_x86(bundle, [str(image_data / "test")])
    there = rows(arm.predict(bundle, "cortex-a76", [str(image_data / "test")]))
    assert len(there) == len(here) == 20
    agree = np.mean([a["label"] == b["label"] for a, b in zip(here, there)])
    assert agree >= 0.95, agree


def test_the_emulated_cpu_is_what_onnxruntime_sees(arm, built):
    """The cpuinfo served to the emulated Python is the A76's, dot product included."""
    root = arm.sysroot()
    arm.predict(built, "cortex-a76", TEXTS[:1])
    assert "asimddp" in (root / "proc/cpuinfo").read_text()
    arm.predict(built, "cortex-a72", TEXTS[:1])
    assert "asimddp" not in (root / "proc/cpuinfo").read_text()
