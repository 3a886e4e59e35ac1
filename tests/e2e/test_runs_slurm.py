"""The SLURM backend against a real one-node cluster (../shared/slurm/start-local-slurm.sh;
.ci/run starts it when it runs as root). Elsewhere these tests skip, saying why."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from runhelpers import TINY, all_ended, runs_in, wait_until
from test_runs_detached import bntui, bntui_done


def _cluster_up() -> bool:
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return False
    result = subprocess.run(["sinfo", "-h", "-o", "%a"], capture_output=True, text=True, timeout=30)
    return result.returncode == 0 and "up" in result.stdout


pytestmark = [
    pytest.mark.slow,
    pytest.mark.slurm,
    pytest.mark.skipif(
        not _cluster_up(),
        reason="needs a running SLURM cluster: start one with "
        "../shared/slurm/start-local-slurm.sh (as root; .ci/run does)",
    ),
]

SLURM = ["--backend", "slurm", "--slurm-partition", "debug", "--device", "cpu"]


def job_of(run) -> str:
    return (run.path / "slurm_job").read_text().strip()


def queue_ids(tmp_path: Path, runs_dir: Path) -> list[str]:
    """The runs `bntui queue` lists (it also notices SLURM jobs that ended before starting)."""
    shown = bntui_done(tmp_path, "queue", "--json", "--runs-dir", str(runs_dir))
    return [row["id"] for row in json.loads(shown.stdout)["runs"]]


def test_a_paired_group_trains_on_the_cluster_with_job_ids_recorded(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    result = bntui_done(
        tmp_path, "run", *SLURM, "--bn", "both", "--seeds", "1", "--epochs", "2", *TINY, "--runs-dir", str(runs_dir)
    )
    assert result.returncode == 0, result.stderr
    assert "Verdict:" in result.stdout
    runs = runs_in(runs_dir)
    assert [run.status for run in runs] == ["finished", "finished"]
    jobs = [run.record.environment.slurm_job_id for run in runs]
    assert all(jobs) and len(set(jobs)) == 2 and jobs == [job_of(run) for run in runs]
    assert {run.record.environment.backend for run in runs} == {"slurm"}
    assert len({job.split("_")[0] for job in jobs}) == 1  # one job array for the launch


def test_a_job_cancelled_with_scancel_ends_with_a_message_naming_it(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    launched = bntui_done(
        tmp_path, "run", *SLURM, "--detach", "--bn", "on", "--epochs", "500", *TINY, "--runs-dir", str(runs_dir)
    )
    assert launched.returncode == 0, launched.stderr
    wait_until(lambda: any(run.epochs_done >= 1 for run in runs_in(runs_dir)), "a first epoch on the cluster")
    (run,) = runs_in(runs_dir)
    subprocess.run(["scancel", job_of(run)], check=True, timeout=30)
    wait_until(lambda: all_ended(runs_dir, 1), "the run to end", timeout=180)
    (run,) = runs_in(runs_dir)
    assert run.status in ("cancelled", "crashed")
    assert job_of(run) in run.record.message and run.epochs_done >= 1


def test_a_job_cancelled_before_it_started_is_not_left_queued(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    # Each task asks for every core of the one node: the second waits for the first.
    launched = bntui_done(
        tmp_path,
        "run",
        *SLURM,
        "--slurm-cpus",
        "2",
        "--detach",
        "--bn",
        "both",
        "--seeds",
        "1",
        "--epochs",
        "500",
        *TINY,
        "--runs-dir",
        str(runs_dir),
    )
    assert launched.returncode == 0, launched.stderr
    wait_until(
        lambda: [run.status for run in runs_in(runs_dir)] == ["running", "queued"], "one task running and one pending"
    )
    pending = runs_in(runs_dir)[1]
    subprocess.run(["scancel", job_of(pending)], check=True, timeout=30)
    wait_until(
        lambda: pending.id not in queue_ids(tmp_path, runs_dir), "the pending task to leave the queue", timeout=60
    )
    stored = {run.id: run for run in runs_in(runs_dir)}[pending.id]
    assert stored.status == "crashed"
    assert f"SLURM job {job_of(pending)} ended before the run started" in stored.record.message

    stopped = bntui_done(tmp_path, "cancel", runs_in(runs_dir)[0].id, "--runs-dir", str(runs_dir))
    assert stopped.returncode == 0 and "asked to stop" in stopped.stdout
    wait_until(lambda: all_ended(runs_dir, 2), "the running task to stop", timeout=180)
    assert runs_in(runs_dir)[0].status == "cancelled"  # bntui cancel: cancelled, not crashed


def test_a_partition_that_does_not_exist_is_one_line_and_queues_nothing(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    result = bntui_done(
        tmp_path, "run", "--backend", "slurm", "--slurm-partition", "gpu-huge", "--runs-dir", str(runs_dir)
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "bntui: error: --slurm-partition: no partition 'gpu-huge' on this cluster (partitions: debug)"
    )
    assert runs_in(runs_dir) == []


def test_a_relative_runs_dir_is_refused_for_the_cluster(tmp_path: Path) -> None:
    process = bntui(tmp_path, "run", "--backend", "slurm", "--runs-dir", "runs", cwd=tmp_path)
    _stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 2
    assert "--runs-dir: runs must be an absolute path that the cluster's nodes share" in stderr
    assert not (tmp_path / "runs").exists() or runs_in(tmp_path / "runs") == []
