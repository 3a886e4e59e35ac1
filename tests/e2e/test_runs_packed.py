"""Packing is the scheduler's choice: a launch's runs that differ only in seed and BN train in
one trainer as one packed model, each stored as its own run that says it was packed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bntui.config import RunConfig
from bntui.engine.events import RunFailed
from bntui.engine.packed import Member, PackTooLarge
from bntui.runs.launch import LaunchOptions, pack_groups, pack_note
from bntui.runs.pack_trainer import _train_in_packs
from runhelpers import TINY, runs_in


def bntui_run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "160", "BNTUI_CONFIG_FILE": str(tmp_path / "no-config.toml")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "bntui",
            "run",
            "--device",
            "cpu",
            "--epochs",
            "1",
            *TINY,
            "--runs-dir",
            str(tmp_path / "runs"),
            *args,
        ],
        env=env,
        text=True,
        capture_output=True,
        timeout=300,
    )


@pytest.mark.slow
def test_a_paired_group_trains_packed_with_diagnostics_and_each_run_records_it(tmp_path: Path) -> None:
    # Diagnostics on (every step: the test data is small), as a default launch has them.
    done = bntui_run(tmp_path, "--bn", "both", "--seeds", "2", "--diagnostics-every", "1")
    assert done.returncode == 0, done.stderr
    assert "cannot pack" not in done.stdout
    runs = runs_in(tmp_path / "runs")
    assert [run.status for run in runs] == ["finished"] * 4
    ids = sorted(run.id for run in runs)
    for run in runs:
        assert run.record.environment.packed == 4
        assert sorted(run.record.environment.packed_with) == ids
        assert run.epochs_done == 1
        assert [point["step"] for point in run.record.diagnostics.points] == list(range(1, run.steps_per_epoch + 1))


@pytest.mark.slow
def test_pack_off_trains_separately_and_the_landscape_measurement_packs(tmp_path: Path) -> None:
    done = bntui_run(tmp_path, "--bn", "both", "--seeds", "1", "--diagnostics-every", "0", "--pack", "off")
    assert done.returncode == 0, done.stderr
    assert "cannot pack" not in done.stdout
    assert [run.record.environment.packed for run in runs_in(tmp_path / "runs")] == [None, None]

    done = bntui_run(tmp_path, "--bn", "both", "--seeds", "1", "--landscape-every", "1")
    assert done.returncode == 0, done.stderr
    assert "cannot pack" not in done.stdout
    packed = [run for run in runs_in(tmp_path / "runs") if run.record.environment.packed]
    assert [run.record.environment.packed for run in packed] == [2, 2]
    for run in packed:
        assert [point["step"] for point in run.record.landscape.points] == list(range(1, run.steps_per_epoch + 1))


def test_a_bad_pack_setting_is_one_line(tmp_path: Path) -> None:
    done = bntui_run(tmp_path, "--pack", "sometimes")
    assert done.returncode == 2
    assert "pack" in done.stderr and "auto" in done.stderr and "Traceback" not in done.stderr


def test_pack_groups_join_only_runs_that_differ_in_seed_and_bn(tmp_path: Path) -> None:
    options = LaunchOptions(runs_dir=tmp_path, data_dir=tmp_path)
    quiet = dict(diagnostics_every=0)
    configs = [
        RunConfig(seed=0, bn=True, **quiet),
        RunConfig(seed=0, bn=False, **quiet),
        RunConfig(seed=1, bn=True, **quiet),
        RunConfig(seed=0, lr=0.1, **quiet),
    ]
    groups = pack_groups(configs, options, 1.0)
    assert groups[0] == groups[1] == groups[2] is not None
    assert groups[3] is None  # alone with its learning rate: nothing to pack with
    assert pack_groups(configs, LaunchOptions(runs_dir=tmp_path, data_dir=tmp_path, pack="off"), 1.0) == [None] * 4
    slurm = LaunchOptions(runs_dir=tmp_path, data_dir=tmp_path, backend="slurm")
    assert pack_groups(configs, slurm, 1.0) == [None] * 4
    assert pack_note(configs, options) is None
    assert pack_note([RunConfig(seed=s) for s in (0, 1)], options) is None  # the defaults, diagnostics on, pack
    apart = [RunConfig(seed=0, lr=0.1), RunConfig(seed=0, lr=0.2)]
    assert pack_note(apart, options) == "cannot pack: the runs differ in more than seed and BN; they train separately"
    assert pack_groups(apart, options, 1.0) == [None, None]


def test_a_pack_too_large_for_the_device_trains_in_halves_losing_no_run(capsys) -> None:
    calls = []

    def fake_train_packed(members, **options):
        calls.append(len(members))
        if len(members) > 2:
            raise PackTooLarge("CUDA out of memory")
        for member in members:
            member.result.status = "finished"
        return [member.result for member in members]

    members = [Member(RunConfig(seed=seed), lambda event: None) for seed in range(5)]
    results = _train_in_packs(members, fake_train_packed, Member, PackTooLarge)
    assert [r.status for r in results] == ["finished"] * 5
    assert calls == [5, 3, 2, 1, 2]
    assert "a pack of 5 runs did not fit the device; training packs of 3 and 2" in capsys.readouterr().out

    def never_fits(members, **options):
        raise PackTooLarge("CUDA out of memory")

    events = []
    alone = _train_in_packs([Member(RunConfig(), events.append)], never_fits, Member, PackTooLarge)
    assert alone[0].status == "failed" and isinstance(events[0], RunFailed)


def test_the_scheduler_starts_one_trainer_per_pack_group_counted_as_one_slot(tmp_path: Path, monkeypatch) -> None:
    import time as clock

    from bntui.runs.scheduler import Scheduler
    from bntui.store.queue import LaunchSpec, claim, entries, write_entry
    from bntui.store.writer import reserve_run

    specs = []
    for seed, group in ((0, "p1"), (1, "p1"), (2, "p1"), (3, None)):
        run_id = reserve_run(tmp_path, RunConfig(seed=seed), group="g1")
        write_entry(
            tmp_path,
            LaunchSpec(
                run_id=run_id,
                data_dir=tmp_path,
                queued_at=clock.time() + seed,
                max_parallel=1,
                lane="cpu",
                pack_group=group,
            ),
        )
        specs.append(run_id)
    started: list[list[str]] = []

    class FakeTrainer:
        returncode = None

        def poll(self):
            return self.returncode

    def fake_start(self, entry_name, spec, lane, limit, pack=()):
        names = [name for name, _spec in pack] or [entry_name]
        trainer = FakeTrainer()
        for name in names:
            entry = next(e for e in entries(tmp_path) if e.name == name)
            self.children[entry.run_id] = (trainer, lane)
            claim(tmp_path, entry)
        started.append([name.split("-", 1)[1].removesuffix(".json") for name in names])

    monkeypatch.setattr(Scheduler, "start", fake_start)
    scheduler = Scheduler(tmp_path)
    assert scheduler.step() is True
    assert started == [specs[:3]]  # one trainer for the pack group; the CPU's one slot is taken
    assert scheduler.step() is True and len(started) == 1
