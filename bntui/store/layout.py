"""What one run folder holds on disk, and the crash-safe ways of writing it.

    <runs_dir>/<run_id>/config.json   written when the run starts (rewritten once RunStarted
                                      brings the device name and torch version)
    <runs_dir>/<run_id>/events.jsonl  one event per line, appended as the run goes
    <runs_dir>/<run_id>/heartbeat     empty; its mtime says when the writer last made progress
    <runs_dir>/<run_id>/summary.json  written when the run ends: its final status
    <runs_dir>/<run_id>/listing.json  what a listing needs (store.run_state.RunTotals), rewritten
                                      when the run starts, at each epoch end and at its end:
                                      readers fold only the events.jsonl lines after it
    <runs_dir>/<run_id>/model.pt      optional weights (torch.save of a state_dict)
    <runs_dir>/<run_id>/launch.json   the claimed queue entry (store.queue.LaunchSpec)
    <runs_dir>/<run_id>/cancel        a request to stop the run, from any process or host
    <runs_dir>/<run_id>/trainer.log   what the detached trainer printed (the reason of a crash)
    <runs_dir>/<run_id>/slurm_job     the SLURM job id, for a run submitted to a cluster
    <runs_dir>/.queue/                runs waiting for a trainer (store.queue)
    <runs_dir>/.index/listing-*       the listing index: a cache of every ended run's listing,
                                      rebuilt from the run folders (store.listing_index)

Files whose names start with "." are temporary (atomic writes, imports, removals) and are not
part of any run."""

from __future__ import annotations

import errno
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bntui.config import RunConfig
from bntui.engine.events import RunStarted
from bntui.store.schema import (
    MAX_TEXT,
    RUN_ID_PATTERN,
    Count,
    Environment,
    FinalMetrics,
    RunStatus,
    SchemaVersion,
    StoreTime,
    Timings,
)

CONFIG_FILE = "config.json"
EVENTS_FILE = "events.jsonl"
HEARTBEAT_FILE = "heartbeat"
SUMMARY_FILE = "summary.json"
LISTING_FILE = "listing.json"
MODEL_FILE = "model.pt"
LAUNCH_FILE = "launch.json"  # the claimed queue entry: how the run was launched (store.queue)
CANCEL_FILE = "cancel"  # present: someone asked the run to stop (bntui cancel, ctrl+t)
TRAINER_LOG = "trainer.log"  # the detached trainer's stdout and stderr
SLURM_JOB_FILE = "slurm_job"  # the SLURM job id ("123_4") of a run submitted to a cluster


class StoreError(Exception):
    """A run store problem, with a one-line message meant for the user."""


class StoreWriteError(StoreError):
    """Writing to the store failed (full disk, permissions...); the message names the file."""


class Owner(BaseModel):
    """Who writes a run: enough to tell later whether that process is still alive."""

    model_config = ConfigDict(extra="ignore")

    pid: int = Field(ge=1, le=2**31 - 1)  # os.kill overflows on more
    host: str
    # Process start time in clock ticks since boot (/proc/<pid>/stat field 22): a pid that the
    # system reused for another process has another start time.
    start_ticks: Count | None = None
    boot_id: str | None = None


class ConfigFile(BaseModel):
    """config.json. Extra keys are ignored so that reading stays best-effort."""

    model_config = ConfigDict(extra="ignore", str_max_length=MAX_TEXT)

    schema_version: SchemaVersion
    id: str
    group: str | None = None
    config: RunConfig
    environment: Environment = Environment()
    created: StoreTime
    owner: Owner | None = None  # None for a run that was imported
    imported_from: str | None = None  # the id the run had in the file it was imported from


class SummaryFile(BaseModel):
    """summary.json: everything about a run's end that the events alone may not say."""

    # Non-finite numbers as "NaN"/"Infinity" strings, as in the export: the file stays strict
    # JSON, and readers (pydantic, lax) take both these and the bare constants older files hold.
    model_config = ConfigDict(extra="ignore", ser_json_inf_nan="strings", str_max_length=MAX_TEXT)

    schema_version: SchemaVersion
    id: str
    status: RunStatus
    message: str | None = None
    final: FinalMetrics | None = None
    timings: Timings = Timings()
    environment: Environment | None = None
    split_hash: str = ""
    epochs_done: Count = 0


class ListedRow(BaseModel):
    """What a listing shows of an ended run, as its writer read it back once summary.json was
    written (store.indexed.listed_row): the run's row and brief in the store index's format
    (store.listing_index), valid while config.json, summary.json and events.jsonl are as
    `validator` says (inode, mtime_ns and size of each)."""

    model_config = ConfigDict(extra="ignore")

    validator: str
    row: str  # store.listing_index.IndexRow's fields, a JSON array
    brief: str  # its brief line
    crc: int  # of row, a newline and brief (UTF-8): a flipped byte is caught


class ListingFile(BaseModel):
    """listing.json: the run state folded from the first `offset` bytes of events.jsonl, less
    the series, and once the run has ended its listing row. Only a hint: the reader checks it
    against the run's other files (store.reader, store.indexed) and reads them when it does
    not fit."""

    model_config = ConfigDict(extra="ignore")

    schema_version: SchemaVersion
    id: str
    offset: Count  # bytes of events.jsonl folded into it (whole lines)
    lines: Count
    events_seen: tuple[int, int]  # events.jsonl's (mtime_ns, size) right after those lines
    last_step: Count = 0
    started: dict[str, Any] | None = None  # the RunStarted line
    terminal: dict[str, Any] | None = None  # the final event's line
    totals: dict[str, Any]  # store.run_state.RunTotals
    listed: ListedRow | None = None


MAX_JSON_DEPTH = 64  # nesting levels of any stored JSON value: real files use about 10
MAX_FILE_BYTES = 64 * 2**20  # config.json / summary.json: real ones are a few kB


class JsonProblem(ValueError):
    """Why some bytes are not JSON the store can use; the message is one line, without a name
    (callers prefix the file or line)."""


def parse_json(text: bytes | str) -> Any:
    """json.loads for anything read from a file: whatever the content, either a value (the
    constants NaN / Infinity included, as events.jsonl holds them) or JsonProblem, never
    RecursionError, a digit-limit ValueError or a value nested deeper than MAX_JSON_DEPTH."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise JsonProblem(f"not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})") from None
    except UnicodeDecodeError:
        raise JsonProblem("not valid JSON (not UTF-8)") from None
    except RecursionError:
        raise JsonProblem(f"not usable JSON (nested deeper than {MAX_JSON_DEPTH} levels)") from None
    except ValueError:  # an integer of thousands of digits (Python's conversion limit)
        limit = getattr(sys, "get_int_max_str_digits", lambda: 4300)()  # 3.10.7+
        raise JsonProblem(f"not usable JSON (a number of more than {limit} digits)") from None
    if isinstance(text, str):
        openings = text.count("[") + text.count("{")
    else:
        openings = text.count(b"[") + text.count(b"{")
    few = openings <= MAX_JSON_DEPTH  # cannot nest deeper
    if not few and _too_deep(data):
        raise JsonProblem(f"not usable JSON (nested deeper than {MAX_JSON_DEPTH} levels)")
    return data


def _too_deep(data: Any) -> bool:
    pending = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                return True
            children = value.values() if isinstance(value, dict) else value
            pending.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def not_a_store_run(path: Path) -> str | None:
    """Why `path` is not a run folder that bntui itself created, or None when it is.

    The proof of ownership, checked before anything is deleted: a real folder (not a link)
    with a run id for a name, whose config.json (which the store writes first, before any
    other file) names that same id. A folder someone else made in the runs dir, or the runs
    dir pointing at a folder of other things, never passes; a run whose config.json cannot be
    read does not either: such a folder is left for a person to remove by hand."""
    if path.is_symlink() or not path.is_dir():
        return f"{path} is not a run folder"
    if not RUN_ID_PATTERN.match(path.name):
        return f"{path} is not a run folder (its name is not a run id)"
    try:
        data = parse_json((path / CONFIG_FILE).read_bytes())
    except (OSError, ValueError):
        return f"{path} holds no readable {CONFIG_FILE}: not a run bntui can prove it created"
    if not isinstance(data, dict) or data.get("id") != path.name:
        return f"{path}: its {CONFIG_FILE} does not name this folder: not a run bntui created"
    return None


def is_store_run(path: Path) -> bool:
    return not_a_store_run(path) is None


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
