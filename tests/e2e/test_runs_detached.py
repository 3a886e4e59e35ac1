"""Runs outlive the terminal that launched them: end to end, with real detached trainers.

The acceptance of "runs that outlive the terminal": a TUI whose terminal hangs up, a queue
that survives kill -9 of the TUI and of the scheduler, a cancel from a TUI that did not launch
the run, signals to a foreground `bntui run`, and two runs at once with --max-parallel 2."""

from __future__ import annotations

import json
import time
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bntui.runs.scheduler import scheduler_pid
from bntui.settings import AppSettings
from bntui.tui.app import BntuiApp
from bntui.tui.devices import DeviceChoice
from ptyapp import PtyApp
from runhelpers import TINY, all_ended, runs_in, wait_until
from tuihelpers import wait_for

pytestmark = pytest.mark.slow


def bntui(tmp_path: Path, *args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "COLUMNS": "160", "BNTUI_CONFIG_FILE": str(tmp_path / "no-config.toml")}
    return subprocess.Popen(
        [sys.executable, "-m", "bntui", *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )


def bntui_done(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    process = bntui(tmp_path, *args)
    stdout, stderr = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_closing_the_terminal_leaves_the_run_and_the_one_queued_behind_it_training(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    (tmp_path / "no-config.toml").write_text('pack = "off"\n')  # a pair would train as one pack
    app = PtyApp(runs_dir, tmp_path)
    try:
        app.wait_for_text("Runs")
        app.press("\x12")  # ctrl+r: the default launch, BN on and off over 3 seeds (one at a time)
        wait_until(
            lambda: [run.status for run in runs_in(runs_dir)] == ["running"] + ["queued"] * 5,
            "one run training and five queued",
        )
    finally:
        app.hang_up()  # the SSH connection drops
    assert app.process.returncode is not None  # the TUI is gone...
    wait_until(lambda: all_ended(runs_dir, 6), "every run to end", timeout=600)
    runs = runs_in(runs_dir)  # ... and every run trained to the end
    assert [run.status for run in runs] == ["finished"] * 6
    assert all(run.epochs_done == run.config.epochs for run in runs)


def test_a_queue_of_four_survives_kill_9_of_the_tui_and_of_the_scheduler(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    app = PtyApp(runs_dir, tmp_path)
    try:
        app.wait_for_text("Runs")
        launched = bntui_done(
            tmp_path,
            "run",
            "--detach",
            "--bn",
            "both",
            "--seeds",
            "2",
            "--epochs",
            "3",
            "--pack",
            "off",
            *TINY,
            "--device",
            "cpu",
            "--runs-dir",
            str(runs_dir),
        )
        assert launched.returncode == 0, launched.stderr
        assert "4 runs queued" in launched.stdout
        wait_until(lambda: "running" in [run.status for run in runs_in(runs_dir)], "the first run to start")
    finally:
        app.kill()
    os.kill(scheduler_pid(runs_dir), signal.SIGKILL)
    # The run that was training goes on; the others wait in the queue, never "crashed".
    wait_until(lambda: "running" not in [run.status for run in runs_in(runs_dir)], "the first run to end")
    assert sorted(run.status for run in runs_in(runs_dir)) == ["finished", "queued", "queued", "queued"]

    async def reopen() -> None:  # the next TUI start replaces the dead scheduler
        settings = AppSettings(runs_dir=runs_dir, data_dir=tmp_path / "data")
        tui = BntuiApp(settings, devices=[DeviceChoice("cpu", "CPU")], poll_seconds=0.2)
        async with tui.run_test(size=(100, 30)) as pilot:
            await wait_for(
                pilot,
                lambda: scheduler_pid(runs_dir) is not None or all_ended(runs_dir, 4),
                "a new scheduler",
                timeout=60,
            )

    import asyncio

    asyncio.run(reopen())
    wait_until(lambda: all_ended(runs_dir, 4), "all four runs to end", timeout=300)
    assert [run.status for run in runs_in(runs_dir)] == ["finished"] * 4


async def test_a_tui_that_did_not_launch_a_run_can_stop_it(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    launched = bntui_done(
        tmp_path,
        "run",
        "--detach",
        "--bn",
        "on",
        "--epochs",
        "500",
        *TINY,
        "--device",
        "cpu",
        "--runs-dir",
        str(runs_dir),
    )
    assert launched.returncode == 0, launched.stderr
    settings = AppSettings(runs_dir=runs_dir, data_dir=tmp_path / "data")
    app = BntuiApp(settings, devices=[DeviceChoice("cpu", "CPU")], poll_seconds=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(
            pilot, lambda: any(v.epochs_done >= 1 for v in app.session.views.values()), "a first epoch", timeout=180
        )
        (view,) = app.session.views.values()
        app.main.runs.select_key(view.key)
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: app.session.views[view.key].status == "cancelled", "the run to stop", timeout=60)
    (run,) = runs_in(runs_dir)
    assert run.status == "cancelled" and 1 <= run.epochs_done < 500
    events = [json.loads(line) for line in (run.path / "events.jsonl").read_text().splitlines()]
    assert events[-1]["type"] == "cancelled"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_to_a_foreground_bntui_run_stores_its_run_as_cancelled(tmp_path: Path, signum: int) -> None:
    runs_dir = tmp_path / "runs"
    process = bntui(tmp_path, "run", "--epochs", "500", *TINY, "--device", "cpu", "--runs-dir", str(runs_dir))
    try:
        wait_until(lambda: any(run.epochs_done >= 1 for run in runs_in(runs_dir)), "a first epoch")
        process.send_signal(signum)
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
        stdout, stderr = process.communicate()
    assert process.returncode == 128 + signum, stderr
    assert "Traceback" not in stdout + stderr
    (run,) = runs_in(runs_dir)
    assert run.status == "cancelled" and run.epochs_done >= 1
    events = [json.loads(line) for line in (run.path / "events.jsonl").read_text().splitlines()]
    assert events[-1]["type"] == "cancelled"


def test_max_parallel_2_trains_two_runs_at_once(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    result = bntui_done(
        tmp_path,
        "run",
        "--bn",
        "both",
        "--seeds",
        "1",
        "--epochs",
        "4",
        *TINY,
        "--device",
        "cpu",
        "--max-parallel",
        "2",
        "--runs-dir",
        str(runs_dir),
    )
    assert result.returncode == 0, result.stderr
    first, second = (run.record.timings for run in runs_in(runs_dir))
    # Each started before the other ended: they trained at the same time.
    assert first.started_at < second.ended_at and second.started_at < first.ended_at
    # ... with the CPU's threads split between them rather than oversubscribed.
    threads = {run.record.environment.cpu_threads for run in runs_in(runs_dir)}
    assert threads == {max(1, (os.cpu_count() or 1) // 2)}


def test_queued_runs_are_listed_with_where_they_run(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    launched = bntui_done(
        tmp_path,
        "run",
        "--detach",
        "--bn",
        "both",
        "--seeds",
        "2",
        "--epochs",
        "50",
        "--pack",
        "off",
        *TINY,
        "--device",
        "cpu",
        "--runs-dir",
        str(runs_dir),
    )
    assert launched.returncode == 0, launched.stderr
    wait_until(lambda: "running" in [run.status for run in runs_in(runs_dir)], "the first run to start")
    queue = json.loads(bntui_done(tmp_path, "queue", "--json", "--runs-dir", str(runs_dir)).stdout)
    assert [row["status"] for row in queue["runs"]] == ["running", "queued", "queued", "queued"]
    assert queue["runs"][0]["pid"] and queue["runs"][0]["where"].startswith("pid ")
    assert [row["queue_place"] for row in queue["runs"][1:]] == [0, 1, 2]
    listed = json.loads(bntui_done(tmp_path, "runs", "--json", "--runs-dir", str(runs_dir)).stdout)
    assert sorted(row["status"] for row in listed["runs"]) == ["queued", "queued", "queued", "running"]
    group = listed["runs"][0]["group"]
    cancelled = bntui_done(tmp_path, "cancel", group, "--runs-dir", str(runs_dir))
    assert cancelled.returncode == 0 and cancelled.stdout.count("taken off the queue") == 3
    wait_until(lambda: all_ended(runs_dir, 4), "every run to stop", timeout=120)
    assert [run.status for run in runs_in(runs_dir)] == ["cancelled"] * 4


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--max-parallel", "0"], "--max-parallel: must be greater than or equal to 1"),
        (["--backend", "cluster"], "--backend: must be 'local' or 'slurm'"),
        (["--slurm-time-min", "0"], "--slurm-time-min: must be greater than or equal to 1"),
    ],
)
def test_bad_launch_settings_are_one_line_and_queue_nothing(tmp_path: Path, flags, message) -> None:
    runs_dir = tmp_path / "runs"
    result = bntui_done(tmp_path, "run", *flags, "--runs-dir", str(runs_dir))
    assert result.returncode == 2
    assert result.stderr.strip() == f"bntui: error: {message}"
    assert not runs_dir.exists() or runs_in(runs_dir) == []


def test_slurm_without_sbatch_is_one_line_and_queues_nothing(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    env = {**os.environ, "PATH": os.path.dirname(sys.executable), "BNTUI_CONFIG_FILE": str(tmp_path / "x.toml")}
    result = subprocess.run(
        [sys.executable, "-m", "bntui", "run", "--backend", "slurm", "--runs-dir", str(runs_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "bntui: error: --backend slurm: sbatch is not on PATH (install SLURM's client tools, or use --backend local)"
    )
    assert runs_in(runs_dir) == []


def test_ctrl_c_in_a_terminal_asks_and_can_leave_the_runs_running(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    command = PtyApp(runs_dir, tmp_path, args=("run", "--epochs", "500", *TINY, "--device", "cpu"))
    try:
        wait_until(lambda: any(run.epochs_done >= 1 for run in runs_in(runs_dir)), "a first epoch")
        command.press("\x03")  # Ctrl-C
        command.wait_for_text("leave them running (l)?")
        command.press("l\r")
        command.process.wait(60)
        assert command.process.returncode == 0
        command.wait_for_text("The runs go on without this terminal")
    finally:
        command.close()
    time.sleep(1.0)
    (run,) = runs_in(runs_dir)
    assert run.status == "running"  # the terminal's command has ended; the run has not
