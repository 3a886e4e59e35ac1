"""Helpers for tests that launch real detached runs: waiting on the store, and leaving no
scheduler or trainer behind when a test ends (they outlive the test by design)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from bntui.store import StoredRun, list_runs

TINY = ["--hidden-sizes", "16", "--batch-size", "256", "--progress-every", "2"]


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 180, step: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(step)


def runs_in(runs_dir: Path) -> list[StoredRun]:
    return list_runs(runs_dir) if runs_dir.exists() else []


def statuses(runs_dir: Path) -> list[str]:
    return [run.status for run in runs_in(runs_dir)]


def all_ended(runs_dir: Path, count: int) -> bool:
    runs = runs_in(runs_dir)
    return len(runs) == count and not any(run.active for run in runs)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def stop_everything(root: Path) -> None:
    """Kill every scheduler and trainer serving a runs dir under `root`, and empty the queues."""
    from bntui.runs.scheduler import scheduler_pid
    from bntui.store.queue import QUEUE_DIR, entries, withdraw
    from bntui.store.reader import slurm_job_of

    for queue in root.rglob(QUEUE_DIR):  # every runs dir a launch wrote to
        runs_dir = queue.parent
        for entry in entries(runs_dir):
            withdraw(runs_dir, entry.run_id)
        pid = scheduler_pid(runs_dir)
        if pid:
            _kill(pid)
        for run in runs_in(runs_dir):
            job = slurm_job_of(run.path)
            if job and run.active:
                subprocess.run(["scancel", job], capture_output=True, timeout=30)
            if run.status == "running" and run.owner is not None and run.owner.pid != os.getpid():
                _kill(run.owner.pid)
