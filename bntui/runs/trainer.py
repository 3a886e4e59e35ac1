"""The trainer process of one run: `python -P -m bntui.runs.trainer RUNS_DIR ENTRY`.

Started detached by the scheduler (or run inside a SLURM task by `run_entry`). It claims the
queue entry ENTRY (a rename: if it is gone, another process took the run or it was cancelled,
and there is nothing to do), takes over the run folder the launch reserved, trains, and stores
the result. It never talks to whoever launched it: everything goes through the store.

Stopping: the file `cancel` in the run folder (any process, any host), or SIGTERM / SIGINT,
ends the run as `cancelled` with its completed epochs. SIGHUP is ignored: a closed terminal
is not a request to stop. Under SLURM, a SIGTERM that no cancel request explains comes from
the cluster (time limit, preemption, scancel): the run is stored as `crashed`, naming the job."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

CANCEL_POLL_SECONDS = 0.5


def slurm_job_id() -> str | None:
    """This task's job id as `scancel` takes it: "123_4" for task 4 of array job 123."""
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array_job and task:
        return f"{array_job}_{task}"
    return os.environ.get("SLURM_JOB_ID") or None


def _watch_cancel_file(path: Path, stop: threading.Event, done: threading.Event) -> None:
    while not done.wait(CANCEL_POLL_SECONDS):
        if path.exists():
            stop.set()
            return


def run_entry(runs_dir: str | Path, entry_name: str) -> int:
    """Claim the queue entry and train its run. Returns the process exit status: 0 when the
    run reached the store with a final status (or there was nothing to do), 1 otherwise."""
    from bntui.engine.events import RunResult
    from bntui.execute import run_and_store
    from bntui.store import StoreError
    from bntui.store.layout import CANCEL_FILE, CONFIG_FILE, ConfigFile
    from bntui.store.queue import QueueEntry, claim, queue_dir

    runs_dir = Path(runs_dir)
    entry = QueueEntry(entry_name, queue_dir(runs_dir) / entry_name)
    try:
        spec = claim(runs_dir, entry)
    except StoreError as exc:
        print(f"bntui trainer: {exc}", file=sys.stderr)
        return 1
    if spec is None:
        print(f"bntui trainer: {entry_name} was taken or withdrawn before this trainer started")
        return 0
    run_dir = runs_dir / spec.run_id
    try:
        stored = ConfigFile.model_validate_json((run_dir / CONFIG_FILE).read_bytes())
    except Exception as exc:  # noqa: BLE001 - any problem: say it in the log, store nothing
        print(f"bntui trainer: {run_dir / CONFIG_FILE}: cannot read the run's config ({exc})", file=sys.stderr)
        return 1

    stop = threading.Event()
    signalled = threading.Event()
    done = threading.Event()

    def on_signal(*_: object) -> None:
        signalled.set()
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, on_signal)
    cancel_file = run_dir / CANCEL_FILE
    threading.Thread(target=_watch_cancel_file, args=(cancel_file, stop, done), daemon=True).start()
    if cancel_file.exists():
        stop.set()  # cancelled between the claim and now: store it as cancelled at once

    job = slurm_job_id() if spec.backend == "slurm" else None

    def ending(result: RunResult) -> RunResult:
        if job and result.status == "cancelled" and signalled.is_set() and not cancel_file.exists():
            message = f"SLURM job {job} was stopped by the cluster (time limit, preemption or scancel)"
            return RunResult(
                status="crashed", started=result.started, epochs=result.epochs, final=result.final, message=message
            )
        return result

    try:
        outcome = run_and_store(
            stored.config,
            runs_dir=runs_dir,
            data_dir=spec.data_dir,
            download=spec.download,
            threads=spec.threads,
            group=stored.group,
            should_stop=stop.is_set,
            run_id=spec.run_id,
            created=stored.created,
            environment={"backend": spec.backend, "slurm_job_id": job},
            ending=ending,
        )
    finally:
        done.set()
    if outcome.run_id is None:
        print(f"bntui trainer: {outcome.store_error}", file=sys.stderr)
        return 1
    if outcome.result.status != "finished":
        print(f"bntui trainer: {spec.run_id} {outcome.result.status}: {outcome.result.message or ''}")
    return 0 if outcome.stored else 1


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        print("usage: python -m bntui.runs.trainer RUNS_DIR QUEUE_ENTRY [QUEUE_ENTRY ...]", file=sys.stderr)
        return 2
    if len(args) > 2:  # a pack: the scheduler's choice (bntui.runs.pack_trainer)
        from bntui.runs.pack_trainer import run_pack

        return run_pack(args[0], args[1:])
    return run_entry(args[0], args[1])


if __name__ == "__main__":
    raise SystemExit(main())
