"""`edgetransfer device` against an sshd of the test's own on 127.0.0.1 (device/rehearsal.py:
Debian's openssh-server, throwaway keys in a temp folder, killed at the end): the figures
come back, the baseline gates them, the work folder is removed, each failure is one line,
exit 4; and an ARM board over SSH, its Python the emulated aarch64 one."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    from edgetransfer.device import rehearsal

    why = rehearsal.available()
    if why:
        pytest.skip(f"{why}; .ci/run installs it")
    root = tmp_path_factory.mktemp("sshd")
    with rehearsal.local_board(root) as config:
        yield {"root": root, "config": config}


@pytest.fixture()
def ssh_env(sshd, monkeypatch, tmp_path):
    """ssh reads the test's config (as a user's ~/.ssh/config would be read)."""
    from edgetransfer.device import rehearsal

    bin_dir = rehearsal.ssh_on_path(tmp_path / "bin", sshd["config"])
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return sshd


def _work_folders() -> list[str]:
    home = Path.home() / ".edgetransfer"
    return sorted(p.name for p in home.iterdir()) if home.exists() else []


def test_measured_on_the_device_and_gated(cli, built, ssh_env, tmp_path):
    base = tmp_path / "board.json"
    code, out = cli("device", "--bundle", built.parent / "bundle.tar.gz", "--device",
                    "ssh://testboard", "--remote-python", sys.executable, "--requests", "30",
                    "--cold-starts", "2", "--update-baseline", base, "--out",
                    tmp_path / "device.json")
    assert code == 0, out
    report = json.loads((tmp_path / "device.json").read_text())
    assert report["device"] == "testboard" and report["host"]["machine"]
    assert report["latency"]["requests"] == 30 and report["latency"]["p50_ms"] > 0
    assert report["cold_start_s"] > 0 and report["peak_rss_mb"] > 0
    # the named work folder is gone (its own: tests in other processes make theirs beside it)
    work, said = report["work_folder"].split(" ", 1)
    assert said == "(removed)" and Path(work).name not in _work_folders()
    saved = json.loads(base.read_text())
    assert saved["format"] == "edgetransfer-device-baseline/1"
    assert saved["p50_ms"] == report["latency"]["p50_ms"]

    faster = dict(saved, p50_ms=saved["p50_ms"] / 1000)  # a board 1000x faster before
    (tmp_path / "faster.json").write_text(json.dumps(faster))
    code, out = cli("device", "--bundle", built, "--device", "testboard", "--remote-python",
                    sys.executable, "--requests", "20", "--cold-starts", "1", "--baseline",
                    tmp_path / "faster.json", "--out", tmp_path / "device.json")
    assert code == 6 and "latency gate failed" in out and "on testboard" in out


@pytest.mark.parametrize("device, python, words", [
    ("ssh://nobody-here@127.0.0.1:1", None, "unreachable"),
    ("ssh://testboard", "/nonexistent/python3", "/nonexistent/python3: not found on the device"),
])
def test_device_failures_are_one_line_exit_4(cli, built, ssh_env, tmp_path, monkeypatch,
                                             device, python, words):
    # ssh as the run calls it, each command line kept: the work folder it names is its own
    # (tests in other processes make theirs beside it, so the whole folder is not compared)
    asked = tmp_path / "asked.log"
    real = shutil.which("ssh")
    (tmp_path / "logged").mkdir()
    logged = tmp_path / "logged" / "ssh"
    logged.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {asked}\nexec {real} "$@"\n')
    logged.chmod(0o755)
    monkeypatch.setenv("PATH", f"{logged.parent}:{os.environ['PATH']}")
    args = ["device", "--bundle", built, "--device", device, "--out", tmp_path / "d.json"]
    code, out = cli(*args, *(["--remote-python", python] if python else []))
    assert code == 4, out
    lines = [x for x in out.strip().splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in out
    named = set(re.findall(r"\.edgetransfer/(run-[0-9a-f]{8})", asked.read_text()))
    assert named and not named & set(_work_folders())
    assert not (tmp_path / "d.json").exists()


def test_authentication_refused(cli, built, sshd, tmp_path, monkeypatch):
    from edgetransfer.device import rehearsal

    stranger = tmp_path / "config"
    stranger.write_text(sshd["config"].read_text().replace(
        f"IdentityFile {sshd['root'] / 'user'}", f"IdentityFile {sshd['root'] / 'stranger'}"))
    bin_dir = rehearsal.ssh_on_path(tmp_path / "bin", stranger)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    code, out = cli("device", "--bundle", built, "--device", "testboard", "--out",
                    tmp_path / "d.json")
    assert code == 4 and "testboard: authentication refused" in out


def test_an_arm_board_over_ssh(cli, built, ssh_env, tmp_path):
    """The device's Python is the emulated aarch64 one (a Cortex-A76): an ARM board over SSH,
    end to end on this machine."""
    from edgetransfer.device import arm_emulation
    from edgetransfer.errors import EnvironmentProblem

    if shutil.which(arm_emulation.QEMU) is None:
        pytest.skip("qemu-user-static is not installed")
    try:
        python = arm_emulation.python_wrapper("cortex-a76", built / "requirements.txt",
                                              tmp_path)
    except EnvironmentProblem as e:
        pytest.skip(f"no arm64 Python here: {e}")
    code, out = cli("device", "--bundle", built, "--device", "testboard", "--remote-python",
                    python, "--requests", "10", "--cold-starts", "1", "--out",
                    tmp_path / "device.json")
    assert code == 0, out
    report = json.loads((tmp_path / "device.json").read_text())
    assert report["host"]["machine"] == "aarch64" and report["latency"]["p50_ms"] > 0


def test_outputs_that_are_inputs_are_refused_before_connecting(built, cli, tmp_path,
                                                               monkeypatch):
    """--out over the baseline (under another spelling too), inside the bundle, or the
    same file as --update-baseline: one line, exit 2, ssh never started, nothing changed."""
    import subprocess

    base = tmp_path / "base.json"
    base.write_text(json.dumps({"format": "edgetransfer-device-baseline/1", "p50_ms": 1.0}))
    before = base.read_bytes()
    started = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, *a, **k: started.append(cmd))
    device = ["device", "--bundle", built, "--device", "ssh://pi@127.0.0.1:1"]
    for extra, said in (
            (["--baseline", base, "--out", tmp_path / "." / "base.json"],
             "is --baseline (or inside it)"),
            (["--out", built / "device.json"], "is --bundle (or inside it)"),
            (["--out", tmp_path / "d.json", "--update-baseline", tmp_path / "d.json"],
             "is also --update-baseline"),
            (["--requests", "10000000"], "--requests")):
        code, out = cli(*device, *extra)
        assert code == 2 and said in out, out
    assert started == [] and base.read_bytes() == before
    assert not (built / "device.json").exists() and not (tmp_path / "d.json").exists()
