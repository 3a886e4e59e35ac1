"""`bntui queue` and `bntui cancel`: runs waiting or training, from any terminal."""

from __future__ import annotations

import json
from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.table import Table

from bntui.commands.say import error
from bntui.settings import AppSettings
from bntui.store import StoredRun, StoreError, list_runs, load_run
from bntui.present.text import escape


def _active_runs(settings: AppSettings) -> list[StoredRun]:
    from bntui.runs.cancel import reconcile_slurm

    reconcile_slurm(settings.runs_dir)  # SLURM jobs that ended before their run started
    return [run for run in list_runs(settings.runs_dir) if run.active]


def where(run: StoredRun) -> str:
    """Where a run trains: "pid 123 on host", "SLURM job 45_1", or "queue position 3"."""
    from bntui.store.reader import slurm_job_of

    job = slurm_job_of(run.path) or (run.brief.environment.slurm_job_id if run.brief else None)
    if run.status == "queued":
        place = f"queued, {run.queue_place} ahead" if run.queue_place else "next in the queue"
        return f"SLURM job {job} (pending)" if job else place
    parts = []
    if job:
        parts.append(f"SLURM job {job}")
    if run.owner is not None:
        parts.append(f"pid {run.owner.pid} on {run.owner.host}")
    return ", ".join(parts) or "?"


def cmd_queue(settings: AppSettings, console: Console, as_json: bool = False) -> int:
    from bntui.runs.scheduler import scheduler_pid

    try:
        runs = _active_runs(settings)
    except StoreError as exc:
        error(str(exc))
        return 1
    if as_json:
        rows = [
            {
                **run.overview(),
                "where": where(run),
                "queue_place": run.queue_place,
                "stop_requested": run.stop_requested,
                "pid": run.owner.pid if run.owner else None,
                "host": run.owner.host if run.owner else None,
            }
            for run in runs
        ]
        console.file.write(
            json.dumps({"runs": rows, "scheduler_pid": scheduler_pid(settings.runs_dir)}, indent=2) + "\n"
        )
        return 0
    if not runs:
        console.print(f"nothing queued or running in {escape(str(settings.runs_dir))}", highlight=False, soft_wrap=True)
        return 0
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0))
    table.add_column("id", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("epochs", justify="right", no_wrap=True)
    table.add_column("where")
    for run in runs:
        epochs = f"{run.epochs_done}/{run.config.epochs}" if run.config else str(run.epochs_done)
        status = "stopping" if run.stop_requested else run.status
        table.add_row(escape(run.id), status, epochs, escape(where(run)))
    console.print(table, crop=False)
    pid = scheduler_pid(settings.runs_dir)
    console.print(f"[dim]scheduler: {'pid ' + str(pid) if pid else 'not running'}[/]", highlight=False)
    return 0


def cmd_cancel(settings: AppSettings, console: Console, refs: Sequence[str]) -> int:
    """Each ref is a run id (or unique prefix) or a group id (all its active runs)."""
    from bntui.runs.cancel import cancel_run

    try:
        runs = list_runs(settings.runs_dir)
    except StoreError as exc:
        error(str(exc))
        return 1
    chosen: dict[str, StoredRun] = {}
    for ref in refs:
        group = [run for run in runs if run.group == ref]
        if group:
            chosen.update((run.id, run) for run in group if run.active)
            continue
        try:
            run = load_run(settings.runs_dir, ref)
        except StoreError as exc:
            error(str(exc))
            return 2
        chosen[run.id] = run
    for run in chosen.values():
        console.print(escape(cancel_run(settings.runs_dir, run)), highlight=False, soft_wrap=True)
    if not chosen:
        console.print("nothing to stop: no run of these groups is queued or running", highlight=False)
    return 0
