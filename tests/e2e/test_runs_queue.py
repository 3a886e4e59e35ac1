"""The launch queue on disk and the statuses it gives runs, without training anything."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bntui.config import RunConfig
from bntui.launch import plan_runs
from bntui.config import TrainingFields
from bntui.runs.launch import LaunchError, LaunchOptions, launch
from bntui.runs.scheduler import Scheduler, normalise_lane
from bntui.store import list_runs, load_run
from bntui.store.layout import LAUNCH_FILE
from bntui.store.queue import LaunchSpec, claim, entries, queued_run_ids, withdraw, write_entry
from bntui.store.writer import reserve_run


def queued(runs_dir: Path, count: int = 1, **spec) -> list[str]:
    ids = []
    for seed in range(count):
        run_id = reserve_run(runs_dir, RunConfig(seed=seed), group="g1")
        write_entry(runs_dir, LaunchSpec(run_id=run_id, data_dir=runs_dir, queued_at=time.time() + seed, **spec))
        ids.append(run_id)
    return ids


def test_queued_runs_are_listed_as_queued_in_launch_order(tmp_path: Path) -> None:
    ids = queued(tmp_path, 3)
    assert [entry.run_id for entry in entries(tmp_path)] == ids
    assert queued_run_ids(tmp_path) == {run_id: place for place, run_id in enumerate(ids)}
    runs = {run.id: run for run in list_runs(tmp_path)}
    assert [runs[run_id].status for run_id in ids] == ["queued"] * 3
    assert [runs[run_id].queue_place for run_id in ids] == [0, 1, 2]
    assert all(run.damaged is None and run.active for run in runs.values())  # no events yet: fine


def test_a_claim_and_a_withdrawal_cannot_both_win(tmp_path: Path) -> None:
    first, second = queued(tmp_path, 2)
    entry = entries(tmp_path)[0]
    spec = claim(tmp_path, entry)
    assert spec is not None and spec.run_id == first and (tmp_path / first / LAUNCH_FILE).exists()
    assert claim(tmp_path, entry) is None  # claimed once
    assert withdraw(tmp_path, first) is False  # too late: it started
    assert withdraw(tmp_path, second) is True
    assert claim(tmp_path, entries(tmp_path)[0] if entries(tmp_path) else entry) is None
    assert entries(tmp_path) == []


def test_a_claimed_run_whose_trainer_never_came_is_crashed_after_a_grace(tmp_path: Path, monkeypatch) -> None:
    from bntui.store import reader

    (run_id,) = queued(tmp_path)
    claim(tmp_path, entries(tmp_path)[0])
    assert load_run(tmp_path, run_id).status == "queued"  # its trainer is about to write its owner
    monkeypatch.setattr(reader, "STARTING_GRACE_S", -1.0)  # ... and the grace has passed
    run = load_run(tmp_path, run_id)
    assert run.status == "crashed"
    assert "the trainer ended without a final status" in run.record.message


def test_a_launch_that_fails_half_way_leaves_nothing_queued(tmp_path: Path) -> None:
    plan = plan_runs(TrainingFields(), "both", 2)
    options = LaunchOptions(runs_dir=tmp_path / "runs", data_dir=tmp_path, backend="slurm")
    os.environ["PATH"], path = str(tmp_path / "no-bin"), os.environ["PATH"]
    try:
        with pytest.raises(LaunchError, match="sbatch is not on PATH"):
            launch(plan, options)
    finally:
        os.environ["PATH"] = path
    assert list_runs(tmp_path / "runs") == [] and entries(tmp_path / "runs") == []


def test_lanes_name_each_device_once() -> None:
    assert normalise_lane("cpu") == "cpu"
    assert normalise_lane("cuda") == normalise_lane("cuda:0") == "cuda:0"


def test_the_scheduler_keeps_to_max_parallel_per_device(tmp_path: Path, monkeypatch) -> None:
    ids = queued(tmp_path, 3, max_parallel=2, lane="cpu")
    started: list[tuple[str, int]] = []

    class FakeTrainer:
        def __init__(self) -> None:
            self.pid, self.returncode = 0, None

        def poll(self):
            return self.returncode

    trainers: dict[str, FakeTrainer] = {}

    def fake_start(self, entry_name, spec, lane, limit):
        started.append((spec.run_id, limit))
        trainers[spec.run_id] = self.children.setdefault(spec.run_id, (FakeTrainer(), lane))[0]
        claim(tmp_path, next(e for e in entries(tmp_path) if e.name == entry_name))

    monkeypatch.setattr(Scheduler, "start", fake_start)
    scheduler = Scheduler(tmp_path)
    assert scheduler.step() is True
    assert [run_id for run_id, _ in started] == ids[:2]  # two at once, the third waits
    assert scheduler.step() is True and len(started) == 2
    trainers[ids[0]].returncode = 0  # one ends
    assert scheduler.step() is True and [run_id for run_id, _ in started] == ids
    assert scheduler.step() is False  # nothing left waiting: the scheduler would exit


def test_rm_refuses_a_queued_run(tmp_path: Path) -> None:
    import subprocess
    import sys

    (run_id,) = queued(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "bntui", "rm", run_id, "--yes", "--runs-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"bntui: error: run {run_id} is queued: stop it (bntui cancel) before removing it (nothing removed for it)"
    )
    assert load_run(tmp_path, run_id).status == "queued"
