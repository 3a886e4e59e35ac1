"""What one run folder holds on disk, and the crash-safe ways of writing it.

    <runs_dir>/<run_id>/config.json   written when the run starts (rewritten once RunStarted
                                      brings the device name and torch version)
    <runs_dir>/<run_id>/events.jsonl  one event per line, appended as the run goes
    <runs_dir>/<run_id>/heartbeat     empty; its mtime says when the writer last made progress
    <runs_dir>/<run_id>/summary.json  written when the run ends: its final status
    <runs_dir>/<run_id>/model.pt      optional weights (torch.save of a state_dict)

Files whose names start with "." are temporary (atomic writes, imports, removals) and are not
part of any run."""

from __future__ import annotations

import errno
import os
import secrets
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from bntui.config import RunConfig
from bntui.engine.events import RunStarted
from bntui.store.schema import (
    Environment,
    FinalMetrics,
    RunStatus,
    Timings,
)

CONFIG_FILE = "config.json"
EVENTS_FILE = "events.jsonl"
HEARTBEAT_FILE = "heartbeat"
SUMMARY_FILE = "summary.json"
MODEL_FILE = "model.pt"


class StoreError(Exception):
    """A run store problem, with a one-line message meant for the user."""


class StoreWriteError(StoreError):
    """Writing to the store failed (full disk, permissions...); the message names the file."""


class Owner(BaseModel):
    """Who writes a run: enough to tell later whether that process is still alive."""

    model_config = ConfigDict(extra="ignore")

    pid: int
    host: str
    # Process start time in clock ticks since boot (/proc/<pid>/stat field 22): a pid that the
    # system reused for another process has another start time.
    start_ticks: int | None = None
    boot_id: str | None = None


class ConfigFile(BaseModel):
    """config.json. Extra keys are ignored so that reading stays best-effort."""

    model_config = ConfigDict(extra="ignore")

    schema_version: int
    id: str
    group: str | None = None
    config: RunConfig
    environment: Environment = Environment()
    created: datetime
    owner: Owner | None = None  # None for a run that was imported
    imported_from: str | None = None  # the id the run had in the file it was imported from


class SummaryFile(BaseModel):
    """summary.json: everything about a run's end that the events alone may not say."""

    # Non-finite numbers as "NaN"/"Infinity" strings, as in the export: the file stays strict
    # JSON, and readers (pydantic, lax) take both these and the bare constants older files hold.
    model_config = ConfigDict(extra="ignore", ser_json_inf_nan="strings")

    schema_version: int
    id: str
    status: RunStatus
    message: str | None = None
    final: FinalMetrics | None = None
    timings: Timings = Timings()
    environment: Environment | None = None
    split_hash: str = ""
    epochs_done: int = 0


def describe_os_error(error: OSError) -> str:
    if error.errno == errno.ENOSPC:
        return "no space left on device"
    if error.errno == errno.EDQUOT:
        return "disk quota exceeded"
    return error.strerror or str(error)


def not_a_folder(runs_dir: Path) -> str:
    """The message for a runs dir that is a file or lies under one: it names the file, not
    the errno ("File exists", "Not a directory") that mkdir or scandir report for it."""
    for path in (runs_dir, *runs_dir.parents):
        if path.exists() and not path.is_dir():
            where = "" if path == runs_dir else f": {path}"
            return f"runs dir {runs_dir}{where} is a file, not a folder"
    return f"runs dir {runs_dir} is not a folder"


def write_error(path: Path, error: OSError) -> StoreWriteError:
    return StoreWriteError(f"cannot write {path}: {describe_os_error(error)}")


def write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is out (a write to a regular file may be short)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable. Some platforms cannot open directories: skip there."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `path` so that readers see the old content or the new, never a mix, even after a
    crash or a full disk. Raises StoreWriteError naming the file."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except OSError as exc:
        try:
            temp.unlink()
        except OSError:
            pass
        raise write_error(path, exc) from None
    fsync_dir(path.parent)


def atomic_write_model(path: Path, model: BaseModel) -> None:
    atomic_write_bytes(path, (model.model_dump_json(indent=2) + "\n").encode("utf-8"))


def started_kernels(event: RunStarted) -> dict[str, Any]:
    """The Environment fields RunStarted reports about the kernels (CUDA, cuDNN, flags)."""
    return {
        "cuda": event.cuda_version,
        "cudnn": event.cudnn_version,
        "deterministic": event.deterministic,
        "tf32": event.tf32,
        "cuda_graphs": event.cuda_graphs,
    }
