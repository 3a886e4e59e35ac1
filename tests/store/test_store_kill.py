"""End to end: `kill -9` a run's trainer mid-training; the store keeps every completed epoch
and reports the run as crashed (no summary.json, owner gone), without guessing, and the
`bntui run` that follows it says so and ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bntui.store import list_runs

REPO = Path(__file__).resolve().parents[2]


def complete_epoch_lines(events: Path) -> int:
    data = events.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    return sum(1 for line in complete.splitlines() if b'"type":"epoch"' in line)


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_kill_9_leaves_a_crashed_run_with_its_epochs(tmp_path):
    runs_dir = tmp_path / "runs"
    env = {
        **os.environ,
        "BNTUI_CONFIG_FILE": str(tmp_path / "no-config.toml"),
        "BNTUI_DATA_DIR": str(tmp_path / "data"),
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    command = [
        sys.executable,
        "-m",
        "bntui",
        "run",
        "--dataset",
        "mnist-mini",
        "--epochs",
        "20",
        "--runs-dir",
        str(runs_dir),
        "--device",
        "cpu",
        "--threads",
        "1",
    ]
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # Wait (with a generous safety net, not a timing check) for two completed epochs.
        deadline = time.monotonic() + 300
        while True:
            found = list(runs_dir.glob("*/events.jsonl"))
            if found and complete_epoch_lines(found[0]) >= 2:
                break
            if proc.poll() is not None:
                pytest.fail(f"bntui run exited early ({proc.returncode}): {proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("bntui run did not complete two epochs")
            time.sleep(0.02)
        [running] = list_runs(runs_dir)
        assert running.status == "running" and running.owner.pid != proc.pid  # its own process
        os.kill(running.owner.pid, signal.SIGKILL)
        proc.wait(timeout=120)  # the follower sees the crash in the store and ends
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        stderr = proc.stderr.read().decode()
        proc.stderr.close()
    assert proc.returncode == 1, stderr

    [run] = list_runs(runs_dir)
    events = run.path / "events.jsonl"
    assert not (run.path / "summary.json").exists()
    assert run.status == "crashed" and not run.live
    assert run.damaged in (None, "truncated last line in events.jsonl")
    assert run.epochs_done == complete_epoch_lines(events) >= 2
    assert run.record.history.epoch == list(range(1, run.epochs_done + 1))
    assert run.record.config.epochs == 20
