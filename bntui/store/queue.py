"""The launch queue on disk: runs_dir/.queue/<order>-<run_id>.json, one file per queued run.

A launch first reserves each run's folder (config.json without an owner), then writes its queue
entry, both atomically. Whoever starts the run claims the entry by renaming it into the run
folder as launch.json. A rename succeeds once, so two schedulers, two SLURM tasks or a cancel
racing a start can never both take the same run; the claimed launch.json stays in the run
folder as the record of how the run was launched. Names starting with "." in .queue are
temporary files and are not entries."""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bntui.settings import Backend, SlurmOptions

from bntui.store.layout import (
    LAUNCH_FILE,
    StoreError,
    StoreWriteError,
    atomic_write_model,
    write_error,
)

QUEUE_DIR = ".queue"


class LaunchSpec(BaseModel):
    """One queue entry (and, once claimed, the run's launch.json): everything a trainer needs
    besides the run's config.json."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    data_dir: Path
    download: bool = False
    threads: int = Field(0, ge=0, description="torch CPU threads; 0: the scheduler decides")
    max_parallel: int | None = Field(None, ge=1, description="runs at once on this run's device")
    lane: str = Field("cpu", description="the device the run waits for: cpu, cuda:N, mps or auto")
    backend: Backend = "local"
    slurm: SlurmOptions | None = None
    queued_at: float = Field(default_factory=time.time)
    # Runs of one launch with the same pack_group may train as one packed model (one trainer).
    pack_group: str | None = None

    @property
    def entry_name(self) -> str:
        # Microseconds first: entries sort in launch order, runs of one launch in plan order.
        return f"{int(self.queued_at * 1e6):017d}-{self.run_id}.json"


@dataclass(frozen=True)
class QueueEntry:
    name: str
    path: Path

    @property
    def run_id(self) -> str:
        return self.name.split("-", 1)[1].removesuffix(".json")

    def read(self) -> LaunchSpec | None:
        """The entry's spec; None when it was claimed or withdrawn meanwhile. Raises StoreError
        (one line naming the file) for an entry that cannot be used."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"queue entry {self.path}: cannot read ({exc.strerror or exc})") from None
        try:
            return LaunchSpec.model_validate_json(data)
        except ValidationError as exc:
            from bntui.config import format_validation_error

            raise StoreError(f"queue entry {self.path}: {format_validation_error(exc)}") from None


def queue_dir(runs_dir: Path) -> Path:
    return Path(runs_dir) / QUEUE_DIR


def write_entry(runs_dir: Path, spec: LaunchSpec) -> Path:
    folder = queue_dir(runs_dir)
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        raise write_error(folder, exc) from None
    path = folder / spec.entry_name
    atomic_write_model(path, spec)
    return path


def entries(runs_dir: Path) -> list[QueueEntry]:
    """Queued runs in launch order (a missing queue is an empty one)."""
    folder = queue_dir(runs_dir)
    try:
        with os.scandir(folder) as found:
            names = sorted(
                entry.name
                for entry in found
                if not entry.name.startswith(".") and entry.name.endswith(".json") and "-" in entry.name
            )
    except OSError:
        return []
    return [QueueEntry(name, folder / name) for name in names]


def queued_run_ids(runs_dir: Path) -> dict[str, int]:
    """{run id: place in the queue (0 = next)}: names only, no file is opened."""
    return {entry.run_id: place for place, entry in enumerate(entries(runs_dir))}


def find_entry(runs_dir: Path, run_id: str) -> QueueEntry | None:
    return next((entry for entry in entries(runs_dir) if entry.run_id == run_id), None)


def claim(runs_dir: Path, entry: QueueEntry) -> LaunchSpec | None:
    """Move the entry into its run folder as launch.json; None when someone else claimed or
    withdrew it first (or its run folder is gone)."""
    target = Path(runs_dir) / entry.run_id / LAUNCH_FILE
    try:
        os.rename(entry.path, target)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise write_error(target, exc) from None
    try:
        return LaunchSpec.model_validate_json(target.read_bytes())
    except (OSError, ValidationError, ValueError):
        return None


def withdraw(runs_dir: Path, run_id: str) -> bool:
    """Take a run off the queue before anything started it. False when it was not queued
    (already claimed by a trainer, or never queued)."""
    entry = find_entry(runs_dir, run_id)
    if entry is None:
        return False
    hidden = entry.path.with_name(f".withdrawn-{entry.name}-{secrets.token_hex(4)}")
    try:
        os.rename(entry.path, hidden)  # atomic: either this or a trainer's claim wins
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StoreWriteError(f"cannot take {run_id} off the queue: {exc.strerror or exc}") from None
    hidden.unlink(missing_ok=True)
    return True
