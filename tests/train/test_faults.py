"""Faults: kill -9 and Ctrl-C mid-run, a full disk, an unwritable folder, a NaN loss.

What each asserts: the run resumes from the newest complete checkpoint (a partial one is
skipped), nothing is lost, the previous result stays whole, the error is one line.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import tiny_args

from edgetransfer.artifacts import OutputFolder, uninterrupted, write_json
from edgetransfer.train.checkpoints import COMPLETE, is_complete, newest_complete_checkpoint


def _start(args, log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "edgetransfer", *map(str, args)], env=env,
                            stdout=subprocess.DEVNULL, stderr=log.open("w"))


def _wait_for_complete_checkpoint(proc, partial: Path, newer_than: int = 0,
                                  timeout: float = 240) -> int:
    """Poll until a checkpoint newer than `newer_than` has its completion marker; its step."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before it could be interrupted"
        for marker in partial.glob(f"checkpoints/checkpoint-*/{COMPLETE}"):
            step = int(marker.parent.name.split("-")[-1])
            if step > newer_than:
                return step
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("no checkpoint was completed in time")


def _steps(partial: Path) -> list[int]:
    return sorted(int(c.name.split("-")[-1]) for c in partial.glob("checkpoints/checkpoint-*"))


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def ctrl_c():
    """SIGINT raises KeyboardInterrupt, as at a terminal (a background job ignores it)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_kill_9_mid_training_then_resume_loses_at_most_one_save_interval(
        cli, tiny_backbone, data_dir, tmp_path):
    """A real process killed with SIGKILL, then resumed to the end."""
    out, partial = tmp_path / "out", tmp_path / ".out.partial"
    args = tiny_args(tiny_backbone, data_dir, out, "--eval-steps", "5", "--device", "cpu",
                     "--epochs", "2")
    # 60 rows / batch 4 = 15 steps an epoch, 2 epochs: 30 steps, a checkpoint every 5

    # 1. killed with SIGKILL right after the first checkpoint completes
    proc = _start(args, tmp_path / "run.log")
    step = _wait_for_complete_checkpoint(proc, partial)
    proc.kill()  # SIGKILL: no handler, no cleanup
    proc.wait(timeout=60)
    assert not out.exists()
    newest = newest_complete_checkpoint(partial)
    newest_step = int(newest.split("-")[-1])
    assert newest_step >= step
    # at most one save interval (5 steps) of work lies beyond the newest complete checkpoint
    assert max(_steps(partial)) <= newest_step + 5

    # 2. a save cut off by the kill: a newer checkpoint without its marker, weights half
    # written; it must be skipped, not loaded
    cut = partial / "checkpoints" / f"checkpoint-{newest_step + 5}"
    if not cut.exists():
        shutil.copytree(newest, cut)
    (cut / COMPLETE).unlink(missing_ok=True)
    weights = cut / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert not is_complete(cut)
    assert newest_complete_checkpoint(partial) == newest

    # 3. the resumed run continues from the newest complete checkpoint and finishes
    code, err = cli(*args, "--resume")
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())["training"]
    assert metrics["resumed_from"] == Path(newest).name
    assert metrics["steps"] == 30
    assert (out / "artifact.json").exists() and (out / "model.safetensors").exists()
    assert not partial.exists() and not (tmp_path / ".out.checkpoints").exists()
    manifest = json.loads((out / "artifact.json").read_text())
    assert set(manifest["files"]) == set(_files(out)) - {"artifact.json"}


def test_ctrl_c_during_a_checkpoint_save_exits_130_after_the_save(
        cli, tiny_backbone, data_dir, tmp_path, monkeypatch, ctrl_c):
    """SIGINT arrives while the Trainer writes checkpoint-5: the save completes, then 130."""
    import transformers.modeling_utils as mu

    real = mu.safe_save_file

    def save_with_ctrl_c(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C mid-save
        time.sleep(0.01)
        return real(*args, **kwargs)

    monkeypatch.setattr(mu, "safe_save_file", save_with_ctrl_c)
    out, partial = tmp_path / "out", tmp_path / ".out.partial"
    code, err = cli(*tiny_args(tiny_backbone, data_dir, out, "--eval-steps", "5",
                               "--epochs", "1"))
    assert code == 130, err
    assert "interrupted; an interrupted run continues with --resume" in err
    assert "Traceback" not in err and not out.exists()
    assert _steps(partial) == [5] and is_complete(partial / "checkpoints/checkpoint-5")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_uninterrupted_holds_ctrl_c_until_the_write_is_done(tmp_path, ctrl_c):
    done = []
    with pytest.raises(KeyboardInterrupt):
        with uninterrupted("a test write"):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)  # the handler has run by now: it only took note
            write_json(tmp_path / "a.json", {"complete": True})
            done.append(True)
    assert done == [True]
    assert json.loads((tmp_path / "a.json").read_text()) == {"complete": True}
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C stops at once
        with uninterrupted("a slow write"):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
            done.append("not reached")
    assert done == [True]

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a process that ignores Ctrl-C keeps doing so
    with uninterrupted("a write"):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def _previous_result(folder: Path) -> dict[str, bytes]:
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"previous weights")
    write_json(folder / "artifact.json", {"kind": "finetuned-classifier", "files": {}})
    return _files(folder)


def test_a_failed_or_cut_off_commit_keeps_the_previous_result(tmp_path, monkeypatch):
    final = tmp_path / "out"
    before = _previous_result(final)
    out = OutputFolder(final, overwrite=True)
    out.prepare()
    (out.work / "model.safetensors").write_bytes(b"new weights")
    real = os.replace

    def full_disk(src, dst, *a, **kw):
        if Path(src) == out.work and Path(dst) == final:
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real(src, dst, *a, **kw)

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError):
        out.commit()
    monkeypatch.undo()
    assert _files(final) == before
    assert not (tmp_path / ".out.old").exists() and out.work.exists()

    # killed between the two renames: the previous result sits in .out.old; the next run
    # puts it back before anything else
    os.replace(final, tmp_path / ".out.old")
    with pytest.raises(Exception, match="already holds results"):
        OutputFolder(final).check()
    assert _files(final) == before


def test_full_disk_during_a_save_is_one_line_exit_4(cli, tiny_backbone, data_dir, tmp_path,
                                                   monkeypatch):
    import transformers.modeling_utils as mu

    out = tmp_path / "out"
    before = _previous_result(out)

    def full(*args, **kwargs):  # what safetensors' writer raises on ENOSPC
        raise RuntimeError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                           'message: "No space left on device" })')

    monkeypatch.setattr(mu, "safe_save_file", full)
    code, err = cli(*tiny_args(tiny_backbone, data_dir, out, "--overwrite", "--epochs", "1"))
    assert code == 4, err
    assert "no space left on the device; free some space, then run the command again" in err
    assert len([ln for ln in err.splitlines() if ln.startswith("error:")]) == 1
    assert "Traceback" not in err and "internal error" not in err
    assert _files(out) == before, "the previous result must be intact"


@pytest.mark.parametrize("error,words", [
    (OSError(errno.ENOSPC, "No space left on device", "/o/.x.partial/a.json"),
     "/o/.x.partial/a.json: no space left on the device; free some space"),
    (OSError(errno.EROFS, "Read-only file system", "/o/x"),
     "/o/x: the file system is read-only; choose a writable folder"),
    (OSError(errno.EDQUOT, "Disk quota exceeded", "/o/x"), "/o/x: the disk quota is exceeded"),
    (RuntimeError("[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed "
                  "writing file data/0: file write failed"), "a write failed: no space left"),
])
def test_storage_errors_are_named_with_the_file_and_exit_4(error, words):
    from edgetransfer.errors import EXIT_ENVIRONMENT, storage_error

    problem = storage_error(error)
    assert problem is not None and problem.exit_code == EXIT_ENVIRONMENT
    assert words in str(problem) and "\n" not in str(problem)
    assert "--resume" in str(problem) and "untouched" in str(problem)
    assert storage_error(OSError(errno.ENOENT, "No such file")) is None
    assert storage_error(ValueError("a bug")) is None


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders anyway")
def test_read_only_output_folder_is_refused_before_training(cli, tiny_backbone, data_dir,
                                                            tmp_path):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        code, err = cli(*tiny_args(tiny_backbone, data_dir, parent / "out"))
    finally:
        parent.chmod(0o755)
    assert code == 2, err
    assert f"--out {parent / 'out'}: cannot write in {parent}" in err
    assert list(parent.iterdir()) == []


def test_unwritable_output_folder_is_refused_before_training(cli, tiny_backbone, data_dir,
                                                             tmp_path, monkeypatch):
    """The same check where the tests run as root (which ignores permissions)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, err = cli(*tiny_args(tiny_backbone, data_dir, blocker / "out"))
    assert code == 2 and f"{blocker} is a file, not a folder" in err

    parent = tmp_path / "ro"
    parent.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, *a, **k:
                        False if Path(p) == parent else real(p, mode, *a, **k))
    code, err = cli(*tiny_args(tiny_backbone, data_dir, parent / "out"))
    assert code == 2 and f"cannot write in {parent} (read-only or permission denied)" in err
    assert list(parent.iterdir()) == []


def test_nan_loss_stops_training_and_no_nan_weights_are_saved(cli, tiny_backbone, data_dir,
                                                              tmp_path):
    out = tmp_path / "out"
    code, err = cli(*tiny_args(tiny_backbone, data_dir, out, "--lr", "1e30", "--epochs", "1",
                               "--eval-steps", "1"))
    assert code == 3, err
    assert "training diverged: " in err and "lower --lr (it is 1e+30)" in err
    assert "Traceback" not in err and not out.exists()
    import torch
    from safetensors.torch import load_file

    for weights in (tmp_path / ".out.partial").glob("checkpoints/*/model.safetensors"):
        assert all(torch.isfinite(t).all() for t in load_file(weights).values()), weights
