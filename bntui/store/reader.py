"""Reading the run store: best effort, never a traceback, cheap to repeat.

Every run folder becomes a StoredRun. A folder with bad files is still listed, marked damaged
with the reason, with as much of its history as could be read (the valid prefix of
events.jsonl). Parsed files are cached by (inode, mtime, size) and events.jsonl is read
incrementally from where the last call stopped, so polling list_runs once a second costs a few
stat calls per run.

A listing reads a run's small files only: config.json, summary.json and listing.json (the run
state the writer folded so far, without the series), then folds the few events.jsonl lines
written after listing.json; an ended run it lists from the store's index or from the row in its
listing.json (store.indexed) while its files are as they were. The series (history, progress,
diagnostics, landscape) are read when asked for: StoredRun.record / StoredRun.full(), load_run."""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from bntui.config import RunConfig, format_validation_error
from bntui.engine.events import TERMINAL_EVENTS, Event
from bntui.store.event_model import is_known_kind, validate_event
from bntui.store.layout import (
    CANCEL_FILE,
    CONFIG_FILE,
    EVENTS_FILE,
    HEARTBEAT_FILE,
    LAUNCH_FILE,
    LISTING_FILE,
    MAX_FILE_BYTES,
    MAX_JSON_DEPTH,
    MODEL_FILE,
    SLURM_JOB_FILE,
    TRAINER_LOG,
    SUMMARY_FILE,
    ConfigFile,
    JsonProblem,
    ListingFile,
    Owner,
    StoreError,
    SummaryFile,
    not_a_folder,
    parse_json,
    started_kernels,
)
from bntui.store.owner import owner_alive
from bntui.store.queue import queued_run_ids
from bntui.store.run_state import RunState, RunTotals
from bntui.store.schema import (
    ACTIVE_STATUSES,
    SUPPORTED_SCHEMA_VERSIONS,
    FinalMetrics,
    RunRecord,
    RunStatus,
    Timings,
)


class RunNotFound(StoreError):
    pass


class AmbiguousRun(StoreError):
    pass


@dataclass(frozen=True, eq=False)
class StoredRun:
    """One run folder as read now. The same object comes back from list_runs while nothing
    about the run changed, so a UI may compare by identity to skip redrawing.

    A listed run (complete=False) holds its record without the series: `brief`, `totals` and
    the properties below are what a listing shows; `record` and `full()` read the series (once;
    the reader then follows a live run's log from where it stopped)."""

    id: str
    path: Path
    brief: RunRecord | None  # the record; listed: with empty history, progress, diagnostics, landscape
    status: RunStatus
    damaged: str | None
    live: bool
    created: datetime | None
    group: str | None = None
    queue_place: int | None = None  # queued: how many runs are ahead of it (0: next)
    owner: Owner | None = None  # the process that trains (or trained) it
    steps_per_epoch: int | None = None  # known once the run started
    totals: RunTotals = field(default_factory=RunTotals)
    complete: bool = True  # brief holds the series too
    loader: Callable[[], StoredRun | None] | None = field(default=None, repr=False)
    stop_requested: bool = False  # running, and asked to stop (its cancel file exists)

    def full(self) -> StoredRun:
        """This run with its series, read from its folder now (kept: asked again, the same)."""
        if self.complete or self.loader is None:
            return self
        loaded = self.__dict__.get("_full")
        if loaded is None:
            loaded = self.loader() or replace(self, complete=True, loader=None)
            object.__setattr__(self, "_full", loaded)  # frozen for callers, not for this cache
        return loaded

    @property
    def record(self) -> RunRecord | None:
        """The whole record (history, progress, diagnostics, landscape included)."""
        return self.full().brief

    @property
    def last_epoch(self) -> dict[str, Any] | None:
        """The latest epoch's events.jsonl line (epoch, losses, accuracies...)."""
        return self.totals.last_epoch if self.brief is not None else None

    @property
    def active(self) -> bool:
        """Queued or training: it may still change."""
        return self.status in ACTIVE_STATUSES

    @property
    def config(self) -> RunConfig | None:
        return self.brief.config if self.brief else None

    @property
    def epochs_done(self) -> int:
        return self.totals.epochs_done if self.brief else 0

    @property
    def best_val_loss(self) -> float | None:
        return self.totals.best_val_loss if self.brief else None

    @property
    def test_accuracy(self) -> float | None:
        return self.brief.final.test_accuracy if self.brief and self.brief.final else None

    @property
    def duration_seconds(self) -> float | None:
        if self.brief is None:
            return None
        timings = self.brief.timings
        if timings.total_seconds is not None:
            return timings.total_seconds
        if self.live and timings.started_at is not None:
            return max(0.0, time.time() - timings.started_at.timestamp())
        totals = self.totals
        if totals.epochs_done and totals.complete("elapsed") and totals.last_epoch is not None:
            return totals.last_epoch["elapsed"]
        return totals.last_progress["elapsed"] if totals.last_progress is not None else None

    @property
    def model_path(self) -> Path | None:
        path = self.path / MODEL_FILE
        return path if path.is_file() else None

    def overview(self) -> dict[str, Any]:
        """The fields `bntui runs --json` prints (and the runs table shows)."""
        config = self.config
        return {
            "id": self.id,
            "status": self.status,
            "epochs_done": self.epochs_done,
            "dataset": config.dataset if config else None,
            "arch": config.arch if config else None,
            "bn": config.bn if config else None,
            "norm": config.norm if config else None,
            "seed": config.seed if config else None,
            "best_val_loss": self.best_val_loss,
            "test_accuracy": self.test_accuracy,
            "duration_seconds": self.duration_seconds,
            "group": self.group,
            "damaged": self.damaged,
        }


def runs_in_group(runs: list[StoredRun], group: str) -> list[StoredRun]:
    return [run for run in runs if run.group == group]


def load_model_state(run: StoredRun) -> dict[str, Any]:
    """The run's saved weights, loaded safely (tensors only, never arbitrary objects)."""
    path = run.model_path
    if path is None:
        raise StoreError(f"run {run.id} has no saved model ({run.path / MODEL_FILE})")
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling problem is a damaged file
        raise StoreError(f"{path}: cannot load the model ({exc})") from None


# -- events.jsonl ------------------------------------------------------------------------------


def parse_event_line(line: bytes) -> dict[str, Any] | None:
    """One events.jsonl line as a validated event's data (the event model: bntui.store.event_model),
    None for a blank line or an event kind from a newer bntui; ValueError (one-line reason) for
    anything else. Every value in the result is within the store's limits."""
    if not line.strip():
        return None
    data = parse_json(line)
    if not isinstance(data, dict):
        raise JsonProblem("not a JSON object")
    if not is_known_kind(data):
        return None  # an event kind from a newer bntui: skip it, keep reading
    validate_event(data)  # strict: the values that pass are the values as written
    return data


@dataclass
class EventLog(RunState):
    """events.jsonl folded into run state (the one reducer, store.run_state), extendable as
    the file grows."""

    offset: int = 0  # bytes of complete lines consumed
    lines: int = 0
    tail: int = 0  # bytes after the last newline (a line being written, or cut by a crash)
    error: str | None = None  # the first bad line; reading stops there, the prefix stays
    identity: tuple[int, int] | None = None  # (device, inode) of the file read
    seen: tuple[int, int] | None = None  # (mtime_ns, size) when last read

    @property
    def version(self) -> tuple[int, int, str | None]:
        return (self.lines, self.tail, self.error)

    def feed(self, chunk: bytes) -> None:
        """Parse the complete lines of `chunk` (which starts at self.offset)."""
        end = chunk.rfind(b"\n") + 1
        self.tail = len(chunk) - end
        if self.error is not None:
            return
        start = 0
        while start < end:
            stop = chunk.index(b"\n", start) + 1
            line = chunk[start:stop]
            problem = self._add_line(line)
            if problem is not None:
                self.error = f"events.jsonl line {self.lines + 1}: {problem}"
                self.tail = len(chunk) - start  # nothing from here on counts
                return
            self.lines += 1
            self.offset += stop - start
            start = stop

    def _add_line(self, line: bytes) -> str | None:
        try:
            data = parse_event_line(line)
        except ValueError as exc:
            return str(exc)
        if data is not None:
            self.apply(data)
        return None


# -- one run folder ----------------------------------------------------------------------------

Signature = tuple[int, int, int] | None  # (inode, mtime_ns, size)
_Model = TypeVar("_Model", bound=BaseModel)
_VersionedFile = TypeVar("_VersionedFile", ConfigFile, SummaryFile)


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def _signature(stat: os.stat_result | None) -> Signature:
    return None if stat is None else (stat.st_ino, stat.st_mtime_ns, stat.st_size)


def _read_bytes(path: Path | str, name: str) -> tuple[bytes, str | None]:
    try:
        with open(path, "rb") as handle:
            # Sized by the file: read(64 MiB) would allocate that much for each small file.
            size = min(os.fstat(handle.fileno()).st_size, MAX_FILE_BYTES) + 1
            text = handle.read(size)
            if len(text) == size:  # larger than it was a moment ago
                text += handle.read(MAX_FILE_BYTES + 1 - size)
    except OSError as exc:
        return b"", f"{name}: cannot read ({exc.strerror or exc})"
    if len(text) > MAX_FILE_BYTES:
        return b"", f"{name} is larger than {MAX_FILE_BYTES // 2**20} MiB: not a file bntui wrote"
    return text, None


def _validated_quickly(text: bytes, model: type[_Model]) -> _Model | None:
    """`model` from the file's bytes in one pass (pydantic parses and validates the JSON
    together, several times faster than json.loads then model_validate), or None: then the
    careful path (parse_json's limits, then the model) finds what is wrong and says so.
    Only for bytes that cannot nest deeper than MAX_JSON_DEPTH (they hold fewer brackets):
    the careful path is the one that enforces that limit."""
    if text.count(b"[") + text.count(b"{") > MAX_JSON_DEPTH:
        return None
    try:
        return model.model_validate_json(text)
    except ValidationError:
        return None


def _version_problem(data: Any, name: str) -> str | None:
    if not isinstance(data, dict):
        return f"{name} is not a JSON object"
    version = data.get("schema_version")
    if type(version) is not int or version not in SUPPORTED_SCHEMA_VERSIONS:  # true == 1
        supported = ", ".join(map(str, SUPPORTED_SCHEMA_VERSIONS))
        return f"{name}: schema_version {version!r} is not supported (this bntui reads {supported})"
    return None


def _parse_file(path: Path | str, name: str, model: type[_VersionedFile]) -> tuple[Any, str | None]:
    """(model or None, damage reason or None). A file of an unknown version is still parsed
    when it fits the model, so that the run shows what it can."""
    text, problem = _read_bytes(path, name)
    if problem is not None:
        return None, problem
    quick = _validated_quickly(text, model)
    if quick is not None:
        return quick, _version_problem({"schema_version": quick.schema_version}, name)
    try:
        data = parse_json(text)
    except JsonProblem as exc:
        return None, f"{name} is {exc}"
    problem = _version_problem(data, name)
    if not isinstance(data, dict):
        return None, problem
    try:
        return model.model_validate(data), problem
    except ValidationError as exc:
        return None, problem or f"{name}: {format_validation_error(exc)}"


_UNREAD: Any = ("unread",)  # differs from every signature, None (missing) included


@dataclass
class _RunCache:
    config_sig: Signature = _UNREAD
    config: ConfigFile | None = None
    config_problem: str | None = None
    summary_sig: Signature = _UNREAD
    summary: SummaryFile | None = None
    summary_problem: str | None = None
    log: EventLog = field(default_factory=EventLog)  # the whole log, once a full read asked for it
    light: EventLog | None = None  # what a listing folds: no series
    built_key: Any = None
    built: StoredRun | None = None
    full_key: Any = None
    full_built: StoredRun | None = None


def _refresh_log(log: EventLog, path: Path, stat: os.stat_result | None) -> EventLog:
    if stat is None:
        return EventLog()
    identity = (stat.st_dev, stat.st_ino)
    seen = (stat.st_mtime_ns, stat.st_size)
    if log.identity == identity and log.seen == seen:
        return log
    if log.identity != identity or stat.st_size < log.offset:
        log = EventLog(identity=identity)  # a new or shortened file: read it all again
    elif log.seen is not None and stat.st_size == log.seen[1]:
        log = EventLog(identity=identity)  # same size, new mtime: rewritten in place
    try:
        with open(path, "rb") as handle:
            handle.seek(log.offset)
            chunk = handle.read()
    except OSError as exc:
        fresh = EventLog(identity=identity, seen=seen)
        fresh.error = f"events.jsonl: cannot read ({exc.strerror or exc})"
        return fresh
    log.feed(chunk)
    log.seen = seen
    return log


_TOTALS = TypeAdapter(RunTotals)
_SEEDED_KINDS = {
    "started": ("started",),
    "terminal": tuple(cls.kind for cls in TERMINAL_EVENTS),
    "last_epoch": ("epoch",),
    "last_progress": ("progress",),
}


def _refresh_light(log: EventLog | None, folder: Path, stat: os.stat_result | None, live: bool) -> EventLog:
    """A listing's log: seeded from listing.json when it fits events.jsonl, then followed from
    there like the whole log; from the start of events.jsonl otherwise."""
    if stat is None:
        return EventLog(keep_series=False)
    identity, size = (stat.st_dev, stat.st_ino), stat.st_size
    seen = (stat.st_mtime_ns, size)
    fresh = (
        log is None
        or log.identity != identity
        or size < log.offset
        # Only a live run's log grows by appends: any other change may be anywhere in it.
        or (log.seen != seen and (not live or (log.seen is not None and size == log.seen[1])))
    )
    if log is None or fresh:
        log = _seeded_log(folder, stat, live)
    return _refresh_log(log, folder / EVENTS_FILE, stat)


def _seeded_log(folder: Path, stat: os.stat_result, live: bool) -> EventLog:
    """listing.json is trusted when events.jsonl is exactly as it was when the writer wrote it
    (same mtime and size: what every cache here trusts), or, while the run is live, for the
    prefix its writer still owns (the lines after it are read). Anything else: the whole log is
    folded, as if there were no listing.json."""
    identity = (stat.st_dev, stat.st_ino)

    def blank() -> EventLog:
        return EventLog(identity=identity, keep_series=False)

    text, problem = _read_bytes(folder / LISTING_FILE, LISTING_FILE)
    listing = None if problem is not None else _validated_quickly(text, ListingFile)
    if listing is None or listing.schema_version not in SUPPORTED_SCHEMA_VERSIONS or listing.id != folder.name:
        return blank()  # another bntui's, another run's, or garbage: the log says it all
    try:
        totals = _TOTALS.validate_python(listing.totals)
        lines = {
            "started": listing.started,
            "terminal": listing.terminal,
            "last_epoch": totals.last_epoch,
            "last_progress": totals.last_progress,
        }
        for name, line in lines.items():
            if line is not None and (line.get("type") not in _SEEDED_KINDS[name] or validate_event(line) is None):
                return blank()
    except (ValueError, ValidationError):
        return blank()
    exact = tuple(listing.events_seen) == (stat.st_mtime_ns, stat.st_size)
    # A live run's log only grows: the same size at another mtime is a log rewritten in place.
    grown = live and stat.st_size > listing.events_seen[1] and _ends_a_line(folder / EVENTS_FILE, listing.offset)
    if listing.offset > stat.st_size or not (exact or grown):
        return blank()
    seeded = EventLog(identity=identity, keep_series=False, offset=listing.offset, lines=listing.lines)
    for line in (listing.started, listing.terminal):
        if line is not None:
            seeded.apply(line)
    seeded.totals, seeded.last_step = totals, listing.last_step
    if exact:
        seeded.seen = (stat.st_mtime_ns, stat.st_size)
    return seeded


def _ends_a_line(path: Path, offset: int) -> bool:
    if offset == 0:
        return True
    try:
        with open(path, "rb") as handle:
            handle.seek(offset - 1)
            return handle.read(1) == b"\n"
    except OSError:
        return False


def _derived_timings(config: ConfigFile | None, log: EventLog) -> Timings:
    """Timings of a run without summary.json (running or crashed) from its events."""
    started_at = None
    if log.started is not None:
        started_at = datetime.fromtimestamp(log.started.time).astimezone()
    elif config is not None:
        started_at = config.created
    terminal = log.terminal
    if terminal is not None and terminal.kind == "finished":
        return Timings(
            started_at=started_at,
            train_seconds=terminal.train_seconds,  # type: ignore[attr-defined]
            total_seconds=terminal.total_seconds,  # type: ignore[attr-defined]
            steps=terminal.steps,  # type: ignore[attr-defined]
        )
    return Timings(started_at=started_at, train_seconds=log.last_elapsed, steps=log.last_step)


def _final_from(terminal: Event | None) -> FinalMetrics | None:
    if terminal is None or terminal.kind != "finished":
        return None
    return FinalMetrics(**{name: getattr(terminal, name) for name in FinalMetrics.model_fields})


def _build_record(
    run_id: str, cache: _RunCache, status: RunStatus, log: EventLog
) -> tuple[RunRecord | None, str | None]:
    config, summary = cache.config, cache.summary
    if config is None:
        return None, None
    environment = config.environment
    if summary is not None and summary.environment is not None:
        environment = summary.environment
    elif log.started is not None:
        environment = environment.model_copy(
            update={
                "device": log.started.device,
                "device_name": log.started.device_name,
                "torch": log.started.torch_version or environment.torch,
                **started_kernels(log.started),
            }
        )
    split_hash = summary.split_hash if summary is not None else ""
    if not split_hash and log.started is not None:
        split_hash = log.started.split_hash
    message = summary.message if summary is not None else getattr(log.terminal, "message", None)
    data = {
        "id": run_id,
        "status": status,
        "message": message,
        "group": config.group,
        "config": config.config,
        "environment": environment,
        "split_hash": split_hash,
        "history": log.history(),
        "progress": log.progress,
        "final": summary.final if summary is not None else _final_from(log.terminal),
        "timings": summary.timings if summary is not None else _derived_timings(config, log),
        "diagnostics": {"points": log.diagnostics} if log.diagnostics else None,
        "landscape": {"points": log.landscape} if log.landscape else None,
    }
    try:
        return RunRecord.model_validate(data), None
    except ValidationError as exc:
        problem = f"record: {format_validation_error(exc)}"
    # Keep what can be kept: the config and final status without the history.
    data.update(history={}, progress={}, diagnostics=None, landscape=None)
    try:
        return RunRecord.model_validate(data), problem
    except ValidationError:
        return None, problem


# A claimed run whose trainer has not yet written its owner reads as queued this long; after
# that the trainer is taken to have died before it could start.
STARTING_GRACE_S = 60.0


def _crash_reason(folder: Path, environment: Any) -> str:
    """Why a run with no final status ended, as well as the store can tell: the last line its
    trainer printed, and the SLURM job that ran it."""
    reason = "the trainer ended without a final status"
    job = getattr(environment, "slurm_job_id", None) or slurm_job_of(folder)
    if job:
        reason = f"SLURM job {job} ended without a final status (time limit, preemption, node failure or scancel)"
    try:
        with open(folder / TRAINER_LOG, "rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - 2000))
            lines = [line.strip() for line in handle.read().decode("utf-8", "replace").splitlines()]
    except OSError:
        lines = []
    last = next((line for line in reversed(lines) if line), "")
    return f"{reason}: {last[:300]}" if last else reason


def _read_run(
    folder: Path,
    cache: _RunCache,
    now: float,
    queue_place: int | None = None,
    *,
    loader: Callable[[], StoredRun | None] | None = None,
) -> StoredRun | None:
    """Bring `cache` up to date with `folder`; None when the folder holds nothing yet. With a
    `loader` (how to read the run in full), a listing's read: the series are left out."""
    config_stat = _stat(folder / CONFIG_FILE)
    summary_stat = _stat(folder / SUMMARY_FILE)
    events_stat = _stat(folder / EVENTS_FILE)
    heartbeat_stat = _stat(folder / HEARTBEAT_FILE)

    if config_stat is None:
        visible, unreadable = _folder_contents(folder)
        if unreadable is not None:  # e.g. chmod 000: still listed, so it can be seen and fixed
            return _unreadable_run(folder, cache, unreadable)
        if not visible:
            return None  # an empty folder: a run or an import being created, or not a run

    config_sig = _signature(config_stat)
    if config_sig != cache.config_sig:
        cache.config_sig = config_sig
        if config_stat is None:
            cache.config, cache.config_problem = None, "config.json missing"
        else:
            cache.config, cache.config_problem = _parse_file(folder / CONFIG_FILE, "config.json", ConfigFile)
    summary_sig = _signature(summary_stat)
    if summary_sig != cache.summary_sig:
        cache.summary_sig = summary_sig
        if summary_stat is None:
            cache.summary, cache.summary_problem = None, None
        else:
            cache.summary, cache.summary_problem = _parse_file(folder / SUMMARY_FILE, "summary.json", SummaryFile)
    live = False
    owner = cache.config.owner if cache.config is not None else None
    if cache.summary is None:
        heartbeat_age = None if heartbeat_stat is None else now - heartbeat_stat.st_mtime
        live = summary_stat is None and owner_alive(owner, heartbeat_age)
    listing = loader is not None
    if listing:
        cache.light = _refresh_light(cache.light, folder, events_stat, live)
        log = cache.light
    else:
        cache.log = _refresh_log(cache.log, folder / EVENTS_FILE, events_stat)
        log = cache.log

    if cache.summary is not None:
        status: RunStatus = cache.summary.status
    else:
        if live:
            status = "running"
        elif log.terminal is not None:
            status = log.terminal.kind  # type: ignore[assignment]  # ended, summary lost
        elif owner is None and cache.config is not None and _waiting(folder, queue_place, now):
            status = "queued"
        else:
            status = "crashed"

    problems = [cache.config_problem, cache.summary_problem]
    if events_stat is None and cache.config is not None and not live and status != "queued":
        problems.append("events.jsonl missing")
    problems.append(log.error)
    if log.error is None and log.tail and not live:
        problems.append("truncated last line in events.jsonl")
    problems.append(_cut_short(cache.summary, log))

    # Someone asked it to stop (bntui cancel, ctrl+t): its trainer will end it at its next step.
    stop_requested = live and _stat(folder / CANCEL_FILE) is not None
    key = (
        config_sig,
        summary_sig,
        log.identity,
        log.seen,
        log.version,
        status,
        live,
        tuple(problems),
        queue_place,
        stop_requested,
    )
    if listing and key == cache.built_key and cache.built is not None:
        return cache.built
    if not listing and key == cache.full_key and cache.full_built is not None:
        return cache.full_built

    record, record_problem = _build_record(folder.name, cache, status, log)
    if record is not None and status == "crashed" and cache.summary is None and not record.message:
        record = record.model_copy(update={"message": _crash_reason(folder, record.environment)})
    problems.append(record_problem)
    reasons = [p for p in problems if p]
    created = cache.config.created if cache.config is not None else None
    if created is None and config_stat is None:
        folder_stat = _stat(folder)
        created = datetime.fromtimestamp(folder_stat.st_mtime).astimezone() if folder_stat else None
    run = StoredRun(
        id=folder.name,
        path=folder,
        brief=record,
        status=status,
        damaged="; ".join(reasons) if reasons else None,
        live=live,
        created=created,
        group=cache.config.group if cache.config is not None else None,
        queue_place=queue_place if status == "queued" else None,
        owner=cache.config.owner if cache.config is not None else None,
        steps_per_epoch=log.started.steps_per_epoch if log.started is not None else None,
        totals=log.totals,
        complete=not listing,
        loader=loader,
        stop_requested=stop_requested,
    )
    if listing:
        cache.built_key, cache.built = key, run
    else:
        cache.full_key, cache.full_built = key, run
    return run


def slurm_job_of(folder: Path) -> str | None:
    """The SLURM job id a launcher recorded for this run when it submitted it, if any."""
    try:
        return (folder / SLURM_JOB_FILE).read_text(encoding="utf-8").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def _waiting(folder: Path, queue_place: int | None, now: float) -> bool:
    """A run nothing trains yet: its queue entry is waiting, or a trainer claimed it moments
    ago and has not written its owner yet."""
    if queue_place is not None:
        return True
    launch = _stat(folder / LAUNCH_FILE)
    return launch is not None and now - launch.st_ctime < STARTING_GRACE_S


def _folder_contents(folder: Path) -> tuple[bool, str | None]:
    """(whether the folder holds any visible file, why it cannot be read or None)."""
    try:
        with os.scandir(folder) as entries:
            return any(not entry.name.startswith(".") for entry in entries), None
    except FileNotFoundError:
        return False, None  # removed meanwhile
    except OSError as exc:
        return False, f"cannot read the folder ({exc.strerror or exc})"


def _unreadable_run(folder: Path, cache: _RunCache, problem: str) -> StoredRun:
    key = ("unreadable", problem)
    if cache.built_key != key or cache.built is None:
        folder_stat = _stat(folder)
        created = datetime.fromtimestamp(folder_stat.st_mtime).astimezone() if folder_stat else None
        cache.built_key = key
        cache.built = StoredRun(
            id=folder.name,
            path=folder,
            brief=None,
            status="crashed",
            damaged=problem,
            live=False,
            created=created,
        )
    return cache.built


def _cut_short(summary: SummaryFile | None, log: EventLog) -> str | None:
    """An events.jsonl that ends at a line boundary but holds fewer epochs than summary.json
    says were done lost its end (a copy or a disk cut it short)."""
    if summary is None or log.error is not None:
        return None
    found = log.epochs_done
    if found < summary.epochs_done:
        return f"events.jsonl holds {found} of the {summary.epochs_done} epochs summary.json records (cut short)"
    return None


# -- the store -----------------------------------------------------------------------------------


def sort_key(run: StoredRun) -> tuple[float, str]:
    return (run.created.timestamp() if run.created else 0.0, run.id)


class RunStoreReader:
    """Reads one runs dir, keeping parsed runs between calls. Safe to share between threads."""

    def __init__(self, runs_dir: Path | str) -> None:
        self.runs_dir = Path(runs_dir)
        self._cache: dict[str, _RunCache] = {}
        self._lock = threading.Lock()
        self._indexed: Any = None  # store.indexed.IndexedListing, made at the first listing

    def folder_names(self) -> list[str]:
        try:
            with os.scandir(self.runs_dir) as entries:
                return sorted(
                    entry.name
                    for entry in entries
                    if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False)
                )
        except FileNotFoundError:
            return []
        except NotADirectoryError:
            raise StoreError(not_a_folder(self.runs_dir)) from None
        except OSError as exc:
            raise StoreError(f"cannot read runs dir {self.runs_dir}: {exc.strerror or exc}") from None

    def list_runs(self) -> list[StoredRun]:
        names = self.folder_names()
        now = time.time()
        queued = queued_run_ids(self.runs_dir)
        with self._lock, _gc_paused():
            listing = self._listing()
            listing.refresh()
            for gone in set(self._cache) - set(names):
                del self._cache[gone]
            runs = [self._listed(listing, name, now, queued.get(name)) for name in names]
            listing.save(names)
            return sorted((run for run in runs if run is not None), key=sort_key)

    def read_runs(self, names: list[str]) -> list[StoredRun | None]:
        """Runs `names` as a listing reads them now (None: gone or empty), in that order; the
        other runs are neither read nor forgotten (a watcher's poll: tui.store_watch)."""
        now = time.time()
        queued = queued_run_ids(self.runs_dir)
        with self._lock:
            listing = self._listing()
            runs = [self._listed(listing, name, now, queued.get(name)) for name in names]
        for name, run in zip(names, runs):
            if run is None and not os.path.isdir(self.runs_dir / name):
                with self._lock:
                    self._cache.pop(name, None)
                    listing.forget(name)
        return runs

    def _listing(self) -> Any:
        """The store's listing index as this reader uses it (store.indexed)."""
        if self._indexed is None:
            from bntui.store.indexed import IndexedListing  # it builds on StoredRun, defined here

            def indexable(run: StoredRun) -> bool:  # ended: its summary.json says how
                cache = self._cache.get(run.id)
                return cache is not None and cache.summary is not None and run.brief is not None and not run.live

            self._indexed = IndexedListing(self.runs_dir, self.read_folder, self.full_run, indexable)
        return self._indexed

    def _listed(self, listing: Any, name: str, now: float, place: int | None) -> StoredRun | None:
        return listing.run(name, lambda: self._read(name, now, place, listing=True), queued=place is not None)

    def read_folder(self, name: str) -> StoredRun | None:
        """Run folder `name` as a listing reads it, the index aside."""
        queued = queued_run_ids(self.runs_dir)
        with self._lock:
            return self._read(name, time.time(), queued.get(name), listing=True)

    def full_run(self, name: str) -> StoredRun | None:
        """Run folder `name` read in full now (None: gone or empty)."""
        queued = queued_run_ids(self.runs_dir)
        with self._lock:
            return self._read(name, time.time(), queued.get(name), listing=False)

    def load_run(self, ref: str) -> StoredRun:
        names = self.folder_names()
        if ref in names:
            matches = [ref]
        else:
            matches = [name for name in names if ref and name.startswith(ref)]
        queued = queued_run_ids(self.runs_dir) if matches else {}
        with self._lock:
            runs = [
                run
                for run in (self._read(n, time.time(), queued.get(n), listing=False) for n in matches)
                if run is not None
            ]
        if not runs:
            raise RunNotFound(f"no run {ref!r} in {self.runs_dir} (see `bntui runs`)")
        if len(runs) > 1:
            shown = ", ".join(run.id for run in runs[:5]) + (", ..." if len(runs) > 5 else "")
            raise AmbiguousRun(f"{ref!r} matches {len(runs)} runs ({shown}): give more of the id")
        return runs[0]

    def _read(self, name: str, now: float, queue_place: int | None, *, listing: bool) -> StoredRun | None:
        cache = self._cache.setdefault(name, _RunCache())
        loader = (lambda: self.full_run(name)) if listing else None
        try:
            return _read_run(self.runs_dir / name, cache, now, queue_place, loader=loader)
        except Exception as exc:  # noqa: BLE001 - a last line of defence: one run, not the store
            # Each kind of bad content has its own check; this keeps a kind nobody thought of
            # from taking every other run (and the TUI's watcher) down with it.
            self._cache[name] = _RunCache()
            folder = self.runs_dir / name
            return _unreadable_run(
                folder, _RunCache(), f"cannot read: unexpected {type(exc).__name__}: {str(exc)[:200]}"
            )


@contextmanager
def _gc_paused() -> Iterator[None]:
    """A listing makes tens of thousands of objects and frees none (the reader keeps them): the
    cyclic garbage collector, run again and again over all of them meanwhile, would cost a
    third of its time, and about as much again once back on, walking them through its young
    generations. They go straight to the oldest generation instead (freeze, then unfreeze:
    no walk), which the collector walks only when it has grown by a quarter."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.freeze()
            gc.unfreeze()
            gc.enable()


_readers: dict[str, RunStoreReader] = {}
_readers_lock = threading.Lock()


def reader_for(runs_dir: Path | str) -> RunStoreReader:
    key = os.path.abspath(runs_dir)
    with _readers_lock:
        reader = _readers.get(key)
        if reader is None:
            reader = _readers[key] = RunStoreReader(key)
        return reader


def list_runs(runs_dir: Path | str) -> list[StoredRun]:
    """Every run in `runs_dir`, oldest first. Raises StoreError only when the runs dir itself
    cannot be read (a missing runs dir is an empty store)."""
    return reader_for(runs_dir).list_runs()


def load_run(runs_dir: Path | str, ref: str) -> StoredRun:
    """The run whose id is `ref` or starts with it; RunNotFound / AmbiguousRun otherwise."""
    return reader_for(runs_dir).load_run(ref)
