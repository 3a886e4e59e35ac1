"""The trainer of a pack: `python -P -m bntui.runs.trainer RUNS_DIR ENTRY1 ENTRY2 ...`.

Claims each entry (a rename, as the one-run trainer does; one taken or withdrawn meanwhile is
simply not trained here), then trains the claimed runs as one packed model
(bntui.engine.packed). Each run keeps its own run folder, RunWriter, events, cancel file and
final status; a run that diverges or is cancelled stops alone. A pack that does not fit the
device is split in halves (said in the trainer log), down to runs trained alone: no run is lost.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bntui.runs.trainer import CANCEL_POLL_SECONDS

if TYPE_CHECKING:  # for the annotations: the functions below import the store where they use it
    from bntui.store.layout import ConfigFile
    from bntui.store.queue import LaunchSpec


@dataclass
class _Claimed:
    spec: LaunchSpec
    stored: ConfigFile
    stop: threading.Event
    cancel_file: Path


def _claim_all(runs_dir: Path, entry_names: list[str]) -> list[_Claimed]:
    from bntui.store import StoreError
    from bntui.store.layout import CANCEL_FILE, CONFIG_FILE, ConfigFile
    from bntui.store.queue import QueueEntry, claim, queue_dir

    claimed = []
    for name in entry_names:
        try:
            spec = claim(runs_dir, QueueEntry(name, queue_dir(runs_dir) / name))
        except StoreError as exc:
            print(f"bntui trainer: {exc}", file=sys.stderr)
            continue
        if spec is None:
            print(f"bntui trainer: {name} was taken or withdrawn before this trainer started")
            continue
        run_dir = runs_dir / spec.run_id
        try:
            stored = ConfigFile.model_validate_json((run_dir / CONFIG_FILE).read_bytes())
        except Exception as exc:  # noqa: BLE001 - say it in the log; the others still train
            print(f"bntui trainer: {run_dir / CONFIG_FILE}: cannot read the run's config ({exc})", file=sys.stderr)
            continue
        claimed.append(_Claimed(spec, stored, threading.Event(), run_dir / CANCEL_FILE))
    return claimed


def _watch_cancel_files(claimed: list[_Claimed], done: threading.Event) -> None:
    while not done.wait(CANCEL_POLL_SECONDS):
        for run in claimed:
            if not run.stop.is_set() and run.cancel_file.exists():
                run.stop.set()


def run_pack(runs_dir: str | Path, entry_names: list[str]) -> int:
    """Claim the entries and train their runs packed. Exit status 0 when every claimed run
    reached the store with a final status, 1 otherwise."""
    runs_dir = Path(runs_dir)
    claimed = _claim_all(runs_dir, entry_names)
    if not claimed:
        return 0
    done = threading.Event()

    def on_signal(*_: object) -> None:
        for run in claimed:
            run.stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, on_signal)
    for run in claimed:
        if run.cancel_file.exists():
            run.stop.set()
    threading.Thread(target=_watch_cancel_files, args=(claimed, done), daemon=True).start()
    try:
        stored_all = _train_and_store(runs_dir, claimed)
    finally:
        done.set()
    return 0 if stored_all else 1


def _train_and_store(runs_dir: Path, claimed: list[_Claimed]) -> bool:
    from bntui.engine.events import RunResult
    from bntui.engine.packed import Member, PackTooLarge, train_packed
    from bntui.store import RunWriter, StoreWriteError
    from bntui.store.writer import local_environment

    run_ids = [run.spec.run_id for run in claimed]
    writers, members, errors = [], [], []
    for run in claimed:
        config, spec = run.stored.config, run.spec
        environment = local_environment(config).model_copy(
            update={"backend": spec.backend, "packed": len(claimed), "packed_with": run_ids}
        )
        try:
            writer = RunWriter(
                runs_dir,
                config,
                group=run.stored.group,
                run_id=spec.run_id,
                created=run.stored.created,
                environment=environment,
            )
        except (StoreWriteError, OSError) as exc:
            print(f"bntui trainer: {spec.run_id}: {exc}", file=sys.stderr)
            continue
        store_errors: list[str] = []
        writers.append((writer, store_errors))
        members.append(Member(config, _recorder(writer, store_errors), _should_stop(run, store_errors)))
    if not members:
        return False
    data_dir, download, threads = claimed[0].spec.data_dir, claimed[0].spec.download, claimed[0].spec.threads
    results = _train_in_packs(
        members, train_packed, Member, PackTooLarge, data_dir=data_dir, download=download, threads=threads
    )
    for (writer, store_errors), result in zip(writers, results):
        if store_errors:
            result = RunResult(
                status="failed",
                started=result.started,
                epochs=result.epochs,
                final=result.final,
                message=f"run store: {store_errors[0]}",
            )
        try:
            writer.finish(result.status, result.message)
        except (StoreWriteError, OSError) as exc:
            errors.append(str(exc))
        if result.status != "finished":
            print(f"bntui trainer: {writer.run_id} {result.status}: {result.message or ''}")
    return len(writers) == len(claimed) and not errors and not any(e for _w, e in writers)


def _should_stop(run: _Claimed, store_errors: list[str]) -> Callable[[], bool]:
    """A member stops when its run is cancelled or its store failed (the store is the record)."""
    return lambda: bool(store_errors) or run.stop.is_set()


def _recorder(writer, store_errors: list[str]):
    from bntui.store import StoreWriteError

    def record(event) -> None:
        if not store_errors:
            try:
                writer.write_event(event)
            except (StoreWriteError, OSError) as exc:
                store_errors.append(str(exc))  # the store is the record: stop this run

    return record


def _train_in_packs(members, train_packed, Member, PackTooLarge, **options):
    """Train `members` packed; on PackTooLarge (nothing emitted yet) train each half packed."""
    try:
        return train_packed(members, **options)
    except PackTooLarge as exc:
        if len(members) == 1:
            from bntui.engine.events import RunFailed

            message = f"out of device memory even alone ({exc})"
            members[0].stop(RunFailed(message), "failed", message)
            return [members[0].result]
        half = (len(members) + 1) // 2
        print(
            f"bntui trainer: a pack of {len(members)} runs did not fit the device; "
            f"training packs of {half} and {len(members) - half}",
            flush=True,
        )
        fresh = [Member(m.config, m.on_event, m.should_stop) for m in members]
        return _train_in_packs(fresh[:half], train_packed, Member, PackTooLarge, **options) + _train_in_packs(
            fresh[half:], train_packed, Member, PackTooLarge, **options
        )
