"""Reading the run store: best effort, never a traceback, cheap to repeat.

Every run folder becomes a StoredRun. A folder with bad files is still listed, marked damaged
with the reason, with as much of its history as could be read (the valid prefix of
events.jsonl). Parsed files are cached by (inode, mtime, size) and events.jsonl is read
incrementally from where the last call stopped, so polling list_runs once a second costs a few
stat calls per run."""

from __future__ import annotations

import json
import math
import os
import threading
import time
from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bntui.config import RunConfig, format_validation_error
from bntui.engine.events import EVENT_TYPES, TERMINAL_EVENTS, EpochEnded, Event, RunStarted
from bntui.store.layout import (
    CONFIG_FILE,
    EVENTS_FILE,
    HEARTBEAT_FILE,
    MODEL_FILE,
    SUMMARY_FILE,
    ConfigFile,
    StoreError,
    SummaryFile,
    not_a_folder,
)
from bntui.store.owner import owner_alive
from bntui.store.schema import (
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
    about the run changed, so a UI may compare by identity to skip redrawing."""

    id: str
    path: Path
    record: RunRecord | None
    status: RunStatus
    damaged: str | None
    live: bool
    created: datetime | None
    group: str | None = None

    @property
    def config(self) -> RunConfig | None:
        return self.record.config if self.record else None

    @property
    def epochs_done(self) -> int:
        return len(self.record.history) if self.record else 0

    @property
    def best_val_loss(self) -> float | None:
        values = [v for v in self.record.history.val_loss if math.isfinite(v)] if self.record else []
        return min(values) if values else None

    @property
    def test_accuracy(self) -> float | None:
        return self.record.final.test_accuracy if self.record and self.record.final else None

    @property
    def duration_seconds(self) -> float | None:
        if self.record is None:
            return None
        timings = self.record.timings
        if timings.total_seconds is not None:
            return timings.total_seconds
        if self.live and timings.started_at is not None:
            return max(0.0, time.time() - timings.started_at.timestamp())
        elapsed = self.record.history.elapsed or self.record.progress.elapsed
        return elapsed[-1] if elapsed else None

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

_OPTIONAL_EPOCH_KEYS = (
    "step",
    "epoch_seconds",
    "elapsed",
    "val_loss_batch_stats",
    "val_accuracy_batch_stats",
)
_REQUIRED_EPOCH_KEYS = ("epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_TYPE_CHECKS = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": _is_number,
    "float | None": lambda v: v is None or _is_number(v),
    "str": lambda v: isinstance(v, str),
    "list[dict[str, Any]]": lambda v: isinstance(v, list) and all(isinstance(x, dict) for x in v),
}


def _event_problem(data: dict[str, Any], cls: type[Event]) -> str | None:
    """Why this line is not a valid `cls` event, or None. Imported runs' epoch lines may lack
    the optional history fields (older exports did not have them)."""
    optional = _OPTIONAL_EPOCH_KEYS if cls is EpochEnded else ()
    for spec in fields(cls):
        if spec.name not in data:
            no_default = spec.default is MISSING and spec.default_factory is MISSING
            if no_default and spec.name not in optional:
                return f"{cls.kind} event without {spec.name!r}"
            continue
        check = _TYPE_CHECKS.get(str(spec.type))
        if check is not None and not check(data[spec.name]):
            return f"{cls.kind} event: {spec.name}={data[spec.name]!r} is not a {spec.type}"
    return None


@dataclass
class EventLog:
    """events.jsonl folded into what a RunRecord needs; extendable as the file grows."""

    offset: int = 0  # bytes of complete lines consumed
    lines: int = 0
    tail: int = 0  # bytes after the last newline (a line being written, or cut by a crash)
    error: str | None = None  # the first bad line; reading stops there, the prefix stays
    identity: tuple[int, int] | None = None  # (device, inode) of the file read
    seen: tuple[int, int] | None = None  # (mtime_ns, size) when last read
    started: RunStarted | None = None
    terminal: Event | None = None
    epochs: dict[str, list[Any]] = field(default_factory=lambda: {k: [] for k in _REQUIRED_EPOCH_KEYS})
    epoch_optional: dict[str, list[Any]] = field(
        default_factory=lambda: {k: [] for k in _OPTIONAL_EPOCH_KEYS}
    )
    progress: dict[str, list[Any]] = field(
        default_factory=lambda: {k: [] for k in ("step", "epoch", "train_loss", "elapsed")}
    )
    diagnostics: list[dict[str, Any]] = field(default_factory=list)
    landscape: list[dict[str, Any]] = field(default_factory=list)
    last_step: int = 0

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
        if not line.strip():
            return None
        try:
            data = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return f"not valid JSON ({exc.msg if hasattr(exc, 'msg') else exc})"
        if not isinstance(data, dict):
            return "not a JSON object"
        cls = EVENT_TYPES.get(data.get("type"))  # type: ignore[arg-type]
        if cls is None:
            return None  # an event kind from a newer bntui: skip it, keep reading
        problem = _event_problem(data, cls)
        if problem is not None:
            return problem
        kind = cls.kind
        if kind == "progress":
            for key in self.progress:
                self.progress[key].append(data[key])
            self.last_step = max(self.last_step, data["step"])
        elif kind == "epoch":
            for key in _REQUIRED_EPOCH_KEYS:
                self.epochs[key].append(data[key])
            for key in _OPTIONAL_EPOCH_KEYS:
                if key in data:
                    self.epoch_optional[key].append(data[key])
            if "step" in data:
                self.last_step = max(self.last_step, data["step"])
        elif kind == "diagnostics":
            self.diagnostics.append({k: v for k, v in data.items() if k != "type"})
        elif kind == "landscape":
            self.landscape.append({k: v for k, v in data.items() if k != "type"})
        elif kind == "started":
            self.started = RunStarted(**{f.name: data[f.name] for f in fields(RunStarted)})
        elif any(cls is terminal for terminal in TERMINAL_EVENTS):
            names = {f.name for f in fields(cls)}
            self.terminal = cls(**{k: v for k, v in data.items() if k in names})
        return None

    def history(self) -> dict[str, list[Any]]:
        count = len(self.epochs["epoch"])
        result = {key: list(values) for key, values in self.epochs.items()}
        for key, values in self.epoch_optional.items():
            # All epochs or none: a partial column cannot be lined up with the epochs.
            result[key] = list(values) if len(values) == count else []
        return result


# -- one run folder ----------------------------------------------------------------------------

Signature = tuple[int, int, int] | None  # (inode, mtime_ns, size)


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def _signature(stat: os.stat_result | None) -> Signature:
    return None if stat is None else (stat.st_ino, stat.st_mtime_ns, stat.st_size)


def _read_json(path: Path, name: str) -> tuple[Any, str | None]:
    try:
        text = path.read_bytes()
    except OSError as exc:
        return None, f"{name}: cannot read ({exc.strerror or exc})"
    try:
        return json.loads(text), None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        return None, f"{name} is not valid JSON ({detail})"


def _version_problem(data: Any, name: str) -> str | None:
    if not isinstance(data, dict):
        return f"{name} is not a JSON object"
    version = data.get("schema_version")
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        supported = ", ".join(map(str, SUPPORTED_SCHEMA_VERSIONS))
        return f"{name}: schema_version {version!r} is not supported (this bntui reads {supported})"
    return None


def _parse_file(path: Path, name: str, model: type) -> tuple[Any, str | None]:
    """(model or None, damage reason or None). A file of an unknown version is still parsed
    when it fits the model, so that the run shows what it can."""
    data, problem = _read_json(path, name)
    if problem is not None:
        return None, problem
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
    log: EventLog = field(default_factory=EventLog)
    built_key: Any = None
    built: StoredRun | None = None


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
    elapsed = log.epoch_optional["elapsed"] or log.progress["elapsed"]
    return Timings(
        started_at=started_at,
        train_seconds=max(elapsed) if elapsed else None,
        steps=log.last_step,
    )


def _final_from(terminal: Event | None) -> FinalMetrics | None:
    if terminal is None or terminal.kind != "finished":
        return None
    return FinalMetrics(**{name: getattr(terminal, name) for name in FinalMetrics.model_fields})


def _build_record(
    run_id: str, cache: _RunCache, status: RunStatus
) -> tuple[RunRecord | None, str | None]:
    config, summary, log = cache.config, cache.summary, cache.log
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


def _read_run(folder: Path, cache: _RunCache, now: float) -> StoredRun | None:
    """Bring `cache` up to date with `folder`; None when the folder holds nothing yet."""
    config_stat = _stat(folder / CONFIG_FILE)
    summary_stat = _stat(folder / SUMMARY_FILE)
    events_stat = _stat(folder / EVENTS_FILE)
    heartbeat_stat = _stat(folder / HEARTBEAT_FILE)

    if config_stat is None and not _has_visible_files(folder):
        return None  # an empty folder: a run or an import being created, or not a run

    config_sig = _signature(config_stat)
    if config_sig != cache.config_sig:
        cache.config_sig = config_sig
        if config_stat is None:
            cache.config, cache.config_problem = None, "config.json missing"
        else:
            cache.config, cache.config_problem = _parse_file(
                folder / CONFIG_FILE, "config.json", ConfigFile
            )
    summary_sig = _signature(summary_stat)
    if summary_sig != cache.summary_sig:
        cache.summary_sig = summary_sig
        if summary_stat is None:
            cache.summary, cache.summary_problem = None, None
        else:
            cache.summary, cache.summary_problem = _parse_file(
                folder / SUMMARY_FILE, "summary.json", SummaryFile
            )
    cache.log = _refresh_log(cache.log, folder / EVENTS_FILE, events_stat)
    log = cache.log

    live = False
    if cache.summary is not None:
        status: RunStatus = cache.summary.status
    else:
        heartbeat_age = None if heartbeat_stat is None else now - heartbeat_stat.st_mtime
        owner = cache.config.owner if cache.config is not None else None
        live = summary_stat is None and owner_alive(owner, heartbeat_age)
        if live:
            status = "running"
        elif log.terminal is not None:
            status = log.terminal.kind  # type: ignore[assignment]  # ended, summary lost
        else:
            status = "crashed"

    problems = [cache.config_problem, cache.summary_problem]
    if events_stat is None and cache.config is not None and not live:
        problems.append("events.jsonl missing")
    problems.append(log.error)
    if log.error is None and log.tail and not live:
        problems.append("truncated last line in events.jsonl")

    key = (config_sig, summary_sig, log.identity, log.seen, log.version, status, live, tuple(problems))
    if key == cache.built_key and cache.built is not None:
        return cache.built

    record, record_problem = _build_record(folder.name, cache, status)
    problems.append(record_problem)
    reasons = [p for p in problems if p]
    created = cache.config.created if cache.config is not None else None
    if created is None and config_stat is None:
        folder_stat = _stat(folder)
        created = datetime.fromtimestamp(folder_stat.st_mtime).astimezone() if folder_stat else None
    run = StoredRun(
        id=folder.name,
        path=folder,
        record=record,
        status=status,
        damaged="; ".join(reasons) if reasons else None,
        live=live,
        created=created,
        group=cache.config.group if cache.config is not None else None,
    )
    cache.built_key, cache.built = key, run
    return run


def _has_visible_files(folder: Path) -> bool:
    try:
        with os.scandir(folder) as entries:
            return any(not entry.name.startswith(".") for entry in entries)
    except OSError:
        return False


# -- the store -----------------------------------------------------------------------------------

def _sort_key(run: StoredRun) -> tuple[float, str]:
    return (run.created.timestamp() if run.created else 0.0, run.id)


class RunStoreReader:
    """Reads one runs dir, keeping parsed runs between calls. Safe to share between threads."""

    def __init__(self, runs_dir: Path | str) -> None:
        self.runs_dir = Path(runs_dir)
        self._cache: dict[str, _RunCache] = {}
        self._lock = threading.Lock()

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
        with self._lock:
            for gone in set(self._cache) - set(names):
                del self._cache[gone]
            runs = [self._read(name, now) for name in names]
        return sorted((run for run in runs if run is not None), key=_sort_key)

    def load_run(self, ref: str) -> StoredRun:
        names = self.folder_names()
        if ref in names:
            matches = [ref]
        else:
            matches = [name for name in names if ref and name.startswith(ref)]
        with self._lock:
            runs = [run for run in (self._read(n, time.time()) for n in matches) if run is not None]
        if not runs:
            raise RunNotFound(f"no run {ref!r} in {self.runs_dir} (see `bntui runs`)")
        if len(runs) > 1:
            shown = ", ".join(run.id for run in runs[:5]) + (", ..." if len(runs) > 5 else "")
            raise AmbiguousRun(
                f"{ref!r} matches {len(runs)} runs ({shown}): give more of the id"
            )
        return runs[0]

    def _read(self, name: str, now: float) -> StoredRun | None:
        cache = self._cache.setdefault(name, _RunCache())
        return _read_run(self.runs_dir / name, cache, now)


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
