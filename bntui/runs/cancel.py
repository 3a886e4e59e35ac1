"""Stopping runs from anywhere, through the store.

A queued run is taken off the queue (an atomic rename that a trainer's claim cannot also win)
and stored as cancelled. A running run is asked to stop with the file `cancel` in its folder,
which its trainer checks twice a second wherever it runs (this host, another login, a cluster
node); it then ends as cancelled with its completed epochs. A SLURM run's job is also
scancelled, so that a task still pending never starts."""

from __future__ import annotations

from pathlib import Path

from bntui.store import StoredRun


def cancel_run(runs_dir: Path, run: StoredRun) -> str:
    """Stop one run; returns what happened, in one line."""
    from bntui.store import StoreError
    from bntui.store.layout import CANCEL_FILE
    from bntui.store.queue import withdraw
    from bntui.store.reader import slurm_job_of
    from bntui.store.writer import end_unstarted_run

    if not run.active:
        return f"{run.id} is not running ({run.status})"
    job = slurm_job_of(run.path) or (run.brief.environment.slurm_job_id if run.brief else None)
    if run.status == "queued" and withdraw(runs_dir, run.id):
        _scancel(job)
        try:
            end_unstarted_run(runs_dir, run.id, "cancelled", "cancelled while queued")
        except StoreError as exc:
            return f"{run.id}: taken off the queue, but not stored as cancelled: {exc}"
        return f"{run.id}: taken off the queue"
    try:
        (run.path / CANCEL_FILE).touch()
    except OSError as exc:
        return f"{run.id}: cannot ask it to stop: {run.path / CANCEL_FILE}: {exc.strerror or exc}"
    problem = _scancel(job)
    return f"{run.id}: asked to stop" + (f" (scancel {job}: {problem})" if problem else "")


def _scancel(job: str | None) -> str | None:
    if not job:
        return None
    from bntui.runs.slurm import cancel

    return cancel(job)


def reconcile_slurm(runs_dir: Path) -> list[str]:
    """Queued SLURM runs whose job SLURM no longer knows never started (cancelled while
    pending, or the task could not reach the runs dir): store each as crashed, naming the job
    and its log. Returns the ids stored. Does nothing when squeue cannot answer."""
    from bntui.runs.slurm import SUBMITIT_DIR, active_jobs
    from bntui.store import StoreError
    from bntui.store.queue import entries, withdraw
    from bntui.store.reader import slurm_job_of
    from bntui.store.writer import end_unstarted_run

    waiting = [(entry, job) for entry in entries(runs_dir) if (job := slurm_job_of(Path(runs_dir) / entry.run_id))]
    if not waiting:
        return []
    alive = active_jobs()
    if alive is None:
        return []
    ended = []
    for entry, job in waiting:
        if job in alive or not withdraw(runs_dir, entry.run_id):
            continue
        log = Path(runs_dir) / SUBMITIT_DIR / job
        message = f"SLURM job {job} ended before the run started (see {log})"
        try:
            end_unstarted_run(runs_dir, entry.run_id, "crashed", message)
        except StoreError:
            continue
        ended.append(entry.run_id)
    return ended
