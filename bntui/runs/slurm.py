"""The SLURM backend, through submitit: one job array per launch, one task per run.

Each task runs bntui.runs.trainer.run_entry on the shared runs dir: it claims its queue entry
and trains exactly as a local trainer would, so every view learns about it from the store.
The launcher records each run's job id in the run folder (slurm_job) as soon as sbatch answers;
the trainer records it in the run's environment. A task that ends before it claimed its run
(the job was cancelled while pending, or the node could not write the runs dir) is found by
`reconcile`, which stores the run as crashed, naming the job."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from bntui.settings import SlurmOptions

SUBMITIT_DIR = ".slurm"  # submitit's pickles and the tasks' logs, inside the runs dir


class SlurmError(Exception):
    """A launch SLURM refuses, or a cluster bntui cannot reach; the message is one line."""


def _run(command: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SlurmError(f"{command[0]}: {exc}") from None


def available() -> bool:
    return shutil.which("sbatch") is not None


def check(options: SlurmOptions, runs_dir: Path) -> None:
    """Everything that can be checked before anything is queued. Raises SlurmError."""
    if not available():
        raise SlurmError(
            "--backend slurm: sbatch is not on PATH (install SLURM's client tools, or use --backend local)"
        )
    result = _run(["sinfo", "-h", "-o", "%P"])
    if result.returncode != 0:
        raise SlurmError(f"--backend slurm: sinfo cannot reach the cluster: {_last_line(result.stderr)}")
    partitions = [name.rstrip("*") for name in result.stdout.split()]
    if options.partition is not None and options.partition not in partitions:
        raise SlurmError(
            f"--slurm-partition: no partition {options.partition!r} on this cluster "
            f"(partitions: {', '.join(partitions) or 'none'})"
        )
    if not runs_dir.is_absolute():
        raise SlurmError(f"--runs-dir: {runs_dir} must be an absolute path that the cluster's nodes share")


def submit(runs_dir: Path, entry_names: list[str], options: SlurmOptions, name: str) -> list[str]:
    """Submit one array job whose task i trains entry_names[i]; return the tasks' job ids."""
    import submitit

    from bntui.runs.trainer import run_entry

    executor = submitit.SlurmExecutor(folder=runs_dir / SUBMITIT_DIR / "%j")
    parameters = {
        "job_name": f"bntui-{name}"[:64],
        "time": options.time_min,
        "cpus_per_task": options.cpus,
        "array_parallelism": max(1, len(entry_names)),
    }
    if options.partition:
        parameters["partition"] = options.partition
    if options.gpus:
        parameters["gpus_per_node"] = options.gpus
    executor.update_parameters(**parameters)
    try:
        jobs = executor.map_array(run_entry, [str(runs_dir)] * len(entry_names), entry_names)
    except Exception as exc:  # noqa: BLE001 - submitit wraps sbatch's refusal in several types
        raise SlurmError(f"sbatch refused the job array: {_last_line(str(exc))}") from None
    return [str(job.job_id) for job in jobs]


def active_jobs() -> set[str] | None:
    """Job ids SLURM still knows (pending or running; array tasks one by one), or None when
    squeue cannot answer (then nothing is concluded from it)."""
    if shutil.which("squeue") is None:
        return None
    result = _run(["squeue", "-h", "-r", "-o", "%i"])
    if result.returncode != 0:
        return None
    return set(result.stdout.split())


def cancel(job_id: str) -> str | None:
    """scancel the job; the problem in one line, or None."""
    if shutil.which("scancel") is None:
        return "scancel is not on PATH"
    result = _run(["scancel", job_id])
    return None if result.returncode == 0 else _last_line(result.stderr) or f"scancel exited {result.returncode}"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
