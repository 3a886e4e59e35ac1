"""Launching: a plan's runs go into the store's queue, and something is made to take them.

`launch` reserves each run's folder, writes its queue entry, then starts the detached scheduler
(local backend) or submits one SLURM job array. A launch is all or nothing: when anything
fails, what was written is taken back and one line says why."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from bntui.launch import LaunchPlan
from bntui.settings import AppSettings, Backend, SlurmOptions


class LaunchError(Exception):
    """The launch could not be queued; nothing of it is left in the store."""


@dataclass(frozen=True)
class LaunchOptions:
    runs_dir: Path
    data_dir: Path
    download: bool = False
    threads: int = 0
    max_parallel: int | None = None
    backend: Backend = "local"
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
    pack: str = "auto"

    @classmethod
    def from_settings(cls, settings: AppSettings) -> LaunchOptions:
        return cls(
            runs_dir=settings.runs_dir,
            data_dir=settings.data_dir,
            download=settings.download,
            threads=settings.threads,
            max_parallel=settings.max_parallel,
            backend=settings.backend,
            slurm=settings.slurm,
            pack=settings.pack,
        )


def check_backend(options: LaunchOptions) -> None:
    """What can be refused before anything is written (raises LaunchError)."""
    if options.backend == "slurm":
        from bntui.runs.slurm import SlurmError, check

        try:
            check(options.slurm, options.runs_dir)
        except SlurmError as exc:
            raise LaunchError(str(exc)) from None


def launch(plan: LaunchPlan, options: LaunchOptions) -> list[str]:
    """Queue the plan's runs (in plan order) and return their run ids. Raises LaunchError."""
    from bntui.store import StoreError, ensure_runs_dir
    from bntui.store.queue import LaunchSpec, write_entry
    from bntui.store.writer import reserve_run

    check_backend(options)
    run_ids: list[str] = []
    entries: list[str] = []
    try:
        ensure_runs_dir(options.runs_dir)
        for config in plan.configs:
            run_ids.append(reserve_run(options.runs_dir, config, group=plan.group))
        now = time.time()
        groups = pack_groups(plan.configs, options, now)
        for index, (run_id, config) in enumerate(zip(run_ids, plan.configs)):
            spec = LaunchSpec(
                run_id=run_id,
                data_dir=options.data_dir,
                download=options.download,
                threads=options.threads,
                max_parallel=options.max_parallel,
                lane=config.device,
                backend=options.backend,
                slurm=options.slurm if options.backend == "slurm" else None,
                queued_at=now + index * 1e-6,
                pack_group=groups[index],
            )
            write_entry(options.runs_dir, spec)
            entries.append(spec.entry_name)
        if options.backend == "slurm":
            _submit(options, run_ids, entries, plan.group or run_ids[0])
    except (StoreError, LaunchError) as exc:
        _take_back(options.runs_dir, run_ids)
        raise LaunchError(str(exc)) from None
    if options.backend == "local":
        from bntui.runs.scheduler import ensure_scheduler

        ensure_scheduler(options.runs_dir)
    return run_ids


def pack_groups(configs, options: LaunchOptions, stamp: float) -> list[str | None]:
    """Each run's pack group (None: trains alone): runs of this launch that may train as one
    packed model share one. Only the local backend packs (a SLURM task is one run)."""
    if options.pack != "auto" or options.backend != "local" or len(configs) < 2:
        return [None] * len(configs)
    from bntui.engine.packed_rules import pack_key

    keys = [pack_key(config) for config in configs]
    counts = {key: keys.count(key) for key in keys}
    names = {key: f"{int(stamp * 1e6)}-{number}" for number, key in enumerate(counts)}
    return [names[key] if counts[key] > 1 else None for key in keys]


def pack_note(configs, options: LaunchOptions) -> str | None:
    """One line when `--pack auto` cannot pack this launch, saying why; else None."""
    if options.pack != "auto" or options.backend != "local" or len(configs) < 2:
        return None
    from bntui.engine.packed_rules import pack_key

    if len({pack_key(config) for config in configs}) == len(configs):
        return "cannot pack: the runs differ in more than seed and BN; they train separately"
    return None


def _submit(options: LaunchOptions, run_ids: list[str], entries: list[str], name: str) -> None:
    from bntui.runs.slurm import SlurmError, submit
    from bntui.store.layout import SLURM_JOB_FILE, atomic_write_bytes

    try:
        job_ids = submit(options.runs_dir.resolve(), entries, options.slurm, name)
    except SlurmError as exc:
        raise LaunchError(str(exc)) from None
    for run_id, job_id in zip(run_ids, job_ids):
        atomic_write_bytes(options.runs_dir / run_id / SLURM_JOB_FILE, f"{job_id}\n".encode())


def _take_back(runs_dir: Path, run_ids: list[str]) -> None:
    from bntui.store import StoreError
    from bntui.store.queue import withdraw
    from bntui.store.writer import remove_run

    for run_id in run_ids:
        try:
            withdraw(runs_dir, run_id)
            remove_run(runs_dir / run_id)
        except StoreError:
            pass
