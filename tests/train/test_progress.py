"""A long pass outside the Trainer (the teacher's outputs over the transfer rows) logs its
progress: throttled in time, and always its last line."""

from __future__ import annotations

import logging

from edgetransfer.train import progress


def test_a_pass_logs_at_most_every_interval_and_at_its_end(caplog, monkeypatch):
    clock = iter([0.0, 1.0, 2.0, 40.0, 41.0, 42.0])  # (started; then one reading per call)
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    with caplog.at_level(logging.INFO, logger="edgetransfer.train.progress"):
        seen = progress.pass_progress(500, "teacher outputs", every_s=30)
        for done in (64, 128, 192, 256, 500):
            seen(done)
    lines = [r.getMessage() for r in caplog.records]
    # 1 s and 2 s in: nothing; 40 s in: a line with its estimate; 41 s: throttled; the end
    assert lines == ["teacher outputs: 192/500 rows, eta 1m04s",
                     "teacher outputs: 500/500 rows, eta 0s"]
