"""Train one run and keep it in the run store: the one place the engine meets the store.

Used by the trainer process (bntui.runs.trainer), which every launch goes through."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bntui.config import RunConfig
from bntui.engine.events import Event, RunResult


@dataclass
class StoredOutcome:
    config: RunConfig
    run_id: str | None
    result: RunResult
    stored: bool  # False when the store could not be written (the message says why)
    store_error: str | None = None


def run_and_store(
    config: RunConfig,
    *,
    runs_dir: Path,
    data_dir: Path,
    download: bool = False,
    threads: int = 0,
    group: str | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_created: Callable[[str, Path], None] = lambda run_id, path: None,
    on_event: Callable[[str, Event], None] = lambda run_id, event: None,
    run_id: str | None = None,
    created: datetime | None = None,
    environment: dict[str, Any] | None = None,
    ending: Callable[[RunResult], RunResult] = lambda result: result,
) -> StoredOutcome:
    """`run_id`: train the queued run whose folder the launch reserved (else a new folder);
    `environment`: facts to record beside the local ones (backend, SLURM job id); `ending`:
    a last say on the result before it is stored (a SLURM job stopped by the cluster)."""
    from bntui.engine.train import train
    from bntui.store import RunWriter, StoreWriteError
    from bntui.store.writer import local_environment

    try:
        env = local_environment(config).model_copy(update=environment or {})
        writer = RunWriter(runs_dir, config, group=group, run_id=run_id, created=created, environment=env)
    except (StoreWriteError, OSError) as exc:
        message = str(exc) if isinstance(exc, StoreWriteError) else f"run store {runs_dir}: {exc}"
        return StoredOutcome(config, None, RunResult(status="failed", message=message), False, message)

    on_created(writer.run_id, writer.path)
    store_errors: list[str] = []

    def record(event: Event) -> None:
        if not store_errors:
            try:
                writer.write_event(event)
            except (StoreWriteError, OSError) as exc:
                # The store is the record of the run: without it, stop rather than train blind.
                store_errors.append(str(exc))
        on_event(writer.run_id, event)

    result = train(
        config,
        record,
        lambda: bool(store_errors) or should_stop(),
        data_dir=data_dir,
        download=download,
        threads=threads,
    )
    result = ending(result)
    if store_errors:
        message = f"run store: {store_errors[0]}"
        result = RunResult(
            status="failed",
            started=result.started,
            epochs=result.epochs,
            final=result.final,
            message=message,
        )
    try:
        writer.finish(result.status, result.message)
    except (StoreWriteError, OSError) as exc:
        store_errors.append(str(exc))
    stored = not store_errors
    return StoredOutcome(config, writer.run_id, result, stored, store_errors[0] if store_errors else None)
