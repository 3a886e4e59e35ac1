"""Writing runs into the store, crash-safely.

A RunWriter owns one new run folder: config.json at the start, events.jsonl as the run goes,
summary.json at the end. What is on disk stays readable whatever happens to the process: whole
files are replaced atomically, events are appended one line at a time (epoch and terminal
events fsync'd), and a failed append is rolled back so the file never holds half a line that a
later line would glue onto. `write_record` writes a whole run at once (used by import)."""

from __future__ import annotations

import dataclasses
import heapq
import json
import os
import platform
import secrets
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, cast

from bntui.config import RunConfig
from bntui.engine.events import (
    TERMINAL_EVENTS,
    Diagnostics,
    Landscape,
    EpochEnded,
    Event,
    Progress,
    RunCancelled,
    RunDiverged,
    RunFailed,
    RunFinished,
    RunStarted,
)
from bntui.store.layout import (
    CONFIG_FILE,
    EVENTS_FILE,
    HEARTBEAT_FILE,
    LISTING_FILE,
    MODEL_FILE,
    SUMMARY_FILE,
    ConfigFile,
    ListedRow,
    ListingFile,
    StoreError,
    StoreWriteError,
    SummaryFile,
    atomic_write_bytes,
    atomic_write_model,
    fsync_dir,
    started_kernels,
    not_a_folder,
    not_a_store_run,
    write_all,
    write_error,
)
from bntui.store.owner import current_owner, hostname
from bntui.store.run_state import RunState
from bntui.store.schema import (
    SCHEMA_VERSION,
    as_imported,
    Environment,
    FinalMetrics,
    RunRecord,
    RunStatus,
    Timings,
    cap_text,
)

_MAX_ID_ATTEMPTS = 100


def new_run_id(config: RunConfig, when: datetime) -> str:
    """e.g. 20261126-153012-mnist-mini-mlp-bn-s0-a1b2: sortable, readable, and unique thanks to
    the random suffix (the folder is still created exclusively, in case two runs draw the same)."""
    bn = config.norm_tag  # bn, gn, ln, brn, gbn or nobn
    stamp = when.strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{config.dataset}-{config.arch}-{bn}-s{config.seed}-{secrets.token_hex(2)}"


def reserve_folder(runs_dir: Path, candidates: Callable[[int], str]) -> tuple[str, Path]:
    """Create runs_dir/<id> exclusively, trying candidates(0), candidates(1)... so that two
    writers (threads, processes, an import) never share a folder."""
    for attempt in range(_MAX_ID_ATTEMPTS):
        run_id = candidates(attempt)
        path = runs_dir / run_id
        try:
            path.mkdir(exist_ok=False)
        except FileExistsError:
            continue
        except OSError as exc:
            raise write_error(path, exc) from None
        return run_id, path
    raise StoreWriteError(f"cannot create a run folder in {runs_dir}: every candidate id is taken")


def reserve_run(runs_dir: Path, config: RunConfig, *, group: str | None, created: datetime | None = None) -> str:
    """Create a queued run's folder with its config.json (no owner yet: nothing trains it) and
    return its id. A trainer later takes it over with RunWriter(..., run_id=id)."""
    created = created or datetime.now().astimezone()
    ensure_runs_dir(runs_dir)
    run_id, path = reserve_folder(runs_dir, lambda _attempt: new_run_id(config, created))
    try:
        atomic_write_model(
            path / CONFIG_FILE,
            ConfigFile(
                schema_version=SCHEMA_VERSION,
                id=run_id,
                group=group,
                config=config,
                environment=local_environment(config),
                created=created,
                owner=None,
            ),
        )
    except StoreError:
        try:
            path.rmdir()
        except OSError:
            pass
        raise
    return run_id


def ensure_runs_dir(runs_dir: Path) -> None:
    """Create the runs dir if needed. Raises StoreWriteError (one line) when it cannot be: the
    CLI and the trainer call this before training, so a bad runs dir fails at once."""
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # runs_dir, or a folder above it, is a file
        raise StoreWriteError(not_a_folder(runs_dir)) from None
    except OSError as exc:
        raise write_error(runs_dir, exc) from None
    if not runs_dir.is_dir():
        raise StoreWriteError(not_a_folder(runs_dir))


def _distribution_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return ""


def _cpu_threads() -> int:
    torch = sys.modules.get("torch")  # only ask torch when it is already loaded
    if torch is not None:
        try:
            return int(torch.get_num_threads())
        except Exception:  # noqa: BLE001 - a half-initialised torch must not stop a run
            pass
    return os.cpu_count() or 0


def local_environment(config: RunConfig) -> Environment:
    """What can be learnt cheaply, without importing torch; RunStarted fills in the rest."""
    return Environment(
        python=platform.python_version(),
        torch=_distribution_version("torch"),
        torchvision=_distribution_version("torchvision"),
        device=config.device,
        platform=platform.platform(),
        cpu_threads=_cpu_threads(),
        hostname=hostname(),
    )


def _json_default(value: Any) -> Any:
    # numpy / torch scalars and arrays that slipped into diagnostics
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in events.jsonl")


def event_line(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, separators=(",", ":"), default=_json_default) + "\n").encode("utf-8")


class RunWriter:
    """Writes one run. Use as a context manager, or call finish() yourself:

        with RunWriter(runs_dir, config, group=plan.group) as writer:
            train(config, writer.write_event, should_stop, ...)
        # leaving the block writes summary.json from the terminal event (or "failed" on error)

    Every method raises StoreWriteError (one line, naming the file) when the disk refuses."""

    def __init__(
        self,
        runs_dir: Path | str,
        config: RunConfig,
        *,
        group: str | None = None,
        environment: Environment | None = None,
        created: datetime | None = None,
        run_id: str | None = None,
    ) -> None:
        """`run_id`: take over the folder that `reserve_run` made for a queued run (its
        config.json gets this process as the owner) instead of creating a new one."""
        self.runs_dir = Path(runs_dir)
        self.config = config
        self.group = group
        self.created = created or datetime.now().astimezone()
        self.environment = environment or local_environment(config)
        self.owner = current_owner()
        self.finished = False
        self.status: RunStatus | None = None
        self.state = RunState()  # the events written, folded as every reader folds them
        self._listed_events = 0  # lines in events.jsonl (listing.json says how many it covers)
        self._fd: int | None = None

        ensure_runs_dir(self.runs_dir)
        if run_id is None:
            self.run_id, self.path = reserve_folder(self.runs_dir, lambda _attempt: new_run_id(config, self.created))
        else:
            self.run_id, self.path = run_id, self.runs_dir / run_id
            if not self.path.is_dir():
                raise StoreWriteError(f"run {run_id}: its folder {self.path} is gone")
        try:
            self._write_config()
            self._fd = os.open(self.path / EVENTS_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            # Lines this writer did not fold (a folder taken over with a log) rule listing.json out.
            self._listed_events = 0 if os.fstat(self._fd).st_size == 0 else -1
            (self.path / HEARTBEAT_FILE).touch()
            fsync_dir(self.path)
        except (OSError, StoreError) as exc:
            if run_id is None:
                self._discard_folder()
            else:
                self._close()
            if isinstance(exc, StoreError):
                raise
            raise write_error(self.path, exc) from None

    @property
    def started(self) -> RunStarted | None:
        return self.state.started

    @property
    def terminal(self) -> Event | None:
        return self.state.terminal

    # -- paths ---------------------------------------------------------------------------
    @property
    def events_path(self) -> Path:
        return self.path / EVENTS_FILE

    @property
    def summary_path(self) -> Path:
        return self.path / SUMMARY_FILE

    # -- writing -------------------------------------------------------------------------
    def write_event(self, event: Event) -> None:
        """Append one event. Epoch and terminal events are fsync'd; progress points are not."""
        if self.finished or self._fd is None:
            raise StoreError(f"run {self.run_id} is already finished: cannot add events")
        message = getattr(event, "message", None)
        if isinstance(message, str) and cap_text(message) != message:  # a very long exception text
            event = dataclasses.replace(cast(Any, event), message=cap_text(message))  # events with a message
        durable = isinstance(event, (EpochEnded, *TERMINAL_EVENTS))
        line = event_line(event.to_dict())
        self._append(line, durable=durable)
        self.state.apply(json.loads(line))  # the line as a reader will see it
        if self._listed_events >= 0:
            self._listed_events += 1
        if (durable or isinstance(event, RunStarted)) and self._listed_events >= 0:
            self._write_listing()
        if isinstance(event, RunStarted):
            self.environment = self.environment.model_copy(
                update={
                    "device": event.device,
                    "device_name": event.device_name,
                    "torch": event.torch_version or self.environment.torch,
                    "cpu_threads": _cpu_threads(),
                    **started_kernels(event),
                }
            )
            self._write_config()
        if isinstance(event, (Progress, EpochEnded)):
            self._touch_heartbeat()

    def save_model(self, state_dict: dict[str, Any]) -> Path:
        """Save weights to model.pt atomically. Load them with load_model_state (weights only)."""
        import torch  # only here: the store must stay cheap to import

        path = self.path / MODEL_FILE
        temp = self.path / f".{MODEL_FILE}.{secrets.token_hex(4)}.tmp"
        try:
            with open(temp, "wb") as handle:
                torch.save(state_dict, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise write_error(path, exc) from None
        fsync_dir(self.path)
        return path

    def finish(self, status: RunStatus | None = None, message: str | None = None) -> Path:
        """Write summary.json. `status` defaults to the terminal event's; when no terminal
        event was written, one is appended first (failed / cancelled / diverged) so that
        events.jsonl tells the same story as the summary. Calling it again does nothing."""
        if self.finished:
            return self.summary_path
        if status is None:
            if self.terminal is None:
                raise StoreError(f"run {self.run_id}: finish() needs a status when no final event was written")
            status = cast(RunStatus, self.terminal.kind)  # a terminal event's kind is a status
        if message is None:
            message = getattr(self.terminal, "message", None)
        message = cap_text(message)
        if self.terminal is None:
            self._append_missing_terminal(status, message)
        summary = self._summary(status, message)
        try:
            atomic_write_model(self.summary_path, summary)
            if self._listed_events >= 0:
                self._write_listing(ended=True)
        finally:
            self.finished = True
            self.status = status
            self._close()
        return self.summary_path

    def close(self) -> None:
        """Stop writing without a summary (the run then reads as crashed)."""
        self.finished = True
        self._close()

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.finished:
            return
        try:
            if self.terminal is not None:
                self.finish()  # the run reached its end; what failed afterwards is not the run
            elif isinstance(exc, KeyboardInterrupt):
                self.finish("cancelled")
            elif exc is not None:
                self.finish("failed", f"{type(exc).__name__}: {exc}")
            else:
                self.finish("failed", "the run ended without a final status")
        except StoreError:
            if exc is None:
                raise
            # The original exception says more than our failure to record it.

    # -- internals -----------------------------------------------------------------------
    def _append(self, data: bytes, *, durable: bool) -> None:
        assert self._fd is not None
        try:
            start = os.lseek(self._fd, 0, os.SEEK_END)
        except OSError as exc:
            raise write_error(self.events_path, exc) from None
        try:
            write_all(self._fd, data)
            if durable:
                os.fsync(self._fd)
        except OSError as exc:
            # Roll back a partial line: the next append must start on a fresh line.
            try:
                os.ftruncate(self._fd, start)
            except OSError:
                pass
            raise write_error(self.events_path, exc) from None

    def _append_missing_terminal(self, status: str, message: str | None) -> None:
        event: Event | None = None
        if status == "failed":
            event = RunFailed(message=message or "")
        elif status == "cancelled":
            event = RunCancelled(epochs_done=self.state.epochs_done, step=self.state.last_step)
        elif status == "diverged":
            event = RunDiverged(epoch=self.state.epochs_done, step=self.state.last_step, message=message or "")
        if event is not None and self._fd is not None:
            try:
                self.write_event(event)
            except StoreError:
                pass  # the summary below still records the status

    def _summary(self, status: RunStatus, message: str | None) -> SummaryFile:
        ended = datetime.now().astimezone()
        started_at = datetime.fromtimestamp(self.started.time).astimezone() if self.started else self.created
        final = None
        train_seconds = self.state.last_elapsed
        total_seconds = (ended - started_at).total_seconds()
        steps = self.state.last_step
        if isinstance(self.terminal, RunFinished):
            t = self.terminal
            final = FinalMetrics(
                train_loss=t.train_loss,
                train_accuracy=t.train_accuracy,
                val_loss=t.val_loss,
                val_accuracy=t.val_accuracy,
                test_loss=t.test_loss,
                test_accuracy=t.test_accuracy,
            )
            train_seconds, total_seconds, steps = t.train_seconds, t.total_seconds, t.steps
        elif isinstance(self.terminal, (RunCancelled, RunDiverged)):
            steps = max(steps, self.terminal.step)
        return SummaryFile(
            schema_version=SCHEMA_VERSION,
            id=self.run_id,
            status=status,
            message=message,
            final=final,
            timings=Timings(
                started_at=started_at,
                ended_at=ended,
                train_seconds=train_seconds,
                total_seconds=total_seconds,
                steps=steps,
            ),
            environment=self.environment,
            split_hash=self.started.split_hash if self.started else "",
            epochs_done=self.state.epochs_done,
        )

    def _write_config(self) -> None:
        atomic_write_model(
            self.path / CONFIG_FILE,
            ConfigFile(
                schema_version=SCHEMA_VERSION,
                id=self.run_id,
                group=self.group,
                config=self.config,
                environment=self.environment,
                created=self.created,
                owner=self.owner,
            ),
        )

    def _write_listing(self, *, ended: bool = False) -> None:
        """listing.json for the lines written so far, and once the run has `ended` (summary.json
        written) its listing row. Only a hint for readers (they check it and read the run's
        files when it does not fit), so a failure here never stops the run."""
        assert self._fd is not None
        try:
            stat = os.fstat(self._fd)
            listed = None
            if ended:
                from bntui.store.indexed import listed_row  # a reader: only needed at the end

                listed = listed_row(self.path.parent, self.run_id)
            write_listing(self.path, self.run_id, self.state, self._listed_events, stat, listed)
        except (OSError, StoreError):
            pass

    def _touch_heartbeat(self) -> None:
        # Liveness for readers on other hosts; failing to touch it must not stop the run.
        try:
            os.utime(self.path / HEARTBEAT_FILE)
        except OSError:
            try:
                (self.path / HEARTBEAT_FILE).touch()
            except OSError:
                pass

    def _close(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None

    def _discard_folder(self) -> None:
        self._close()
        for child in self.path.iterdir() if self.path.exists() else ():
            try:
                child.unlink()
            except OSError:
                pass
        try:
            self.path.rmdir()
        except OSError:
            pass


def write_listing(
    folder: Path, run_id: str, state: RunState, lines: int, events: os.stat_result, listed: ListedRow | None = None
) -> None:
    """listing.json: `state` folded from the `lines` lines that events.jsonl (`events`: its stat
    right after them) holds, and the run's listing row once it has ended."""
    listing = ListingFile(
        schema_version=SCHEMA_VERSION,
        id=run_id,
        offset=events.st_size,
        lines=lines,
        events_seen=(events.st_mtime_ns, events.st_size),
        last_step=state.last_step,
        started=_line_of(state.started),
        terminal=_line_of(state.terminal),
        totals=dataclasses.asdict(state.totals),
        listed=listed,
    )
    # json.dumps, as for events.jsonl: NaN losses stay numbers the reader folds as it folds the log.
    data = json.dumps(listing.model_dump(), separators=(",", ":"), default=_json_default)
    atomic_write_bytes(folder / LISTING_FILE, (data + "\n").encode("utf-8"))


def _line_of(event: Event | None) -> dict[str, Any] | None:
    return None if event is None else json.loads(event_line(event.to_dict()))


# -- whole runs (import) ---------------------------------------------------------------------


def _record_events(record: RunRecord) -> list[dict[str, Any]]:
    """Rebuild events.jsonl lines from a record: progress, diagnostics (and landscape) and epoch
    events merged
    by (epoch, step) while each kind keeps its own order, so reading them back gives the
    same arrays. Optional history arrays that are empty are left out of the lines."""
    history = record.history
    epochs: list[tuple[tuple[float, float, int], dict[str, Any]]] = []
    for i in range(len(history)):
        line: dict[str, Any] = {
            "type": EpochEnded.kind,
            "epoch": history.epoch[i],
            "train_loss": history.train_loss[i],
            "val_loss": history.val_loss[i],
            "train_accuracy": history.train_accuracy[i],
            "val_accuracy": history.val_accuracy[i],
        }
        for name in ("step", "epoch_seconds", "elapsed", "val_loss_batch_stats", "val_accuracy_batch_stats"):
            values = getattr(history, name)
            if values:
                line[name] = values[i]
        step = line.get("step")
        epochs.append(((history.epoch[i], step if step is not None else float("inf"), 2), line))

    progress = []
    points = record.progress
    for i in range(len(points)):
        line = {
            "type": Progress.kind,
            "epoch": points.epoch[i],
            "step": points.step[i],
            "train_loss": points.train_loss[i],
            "steps_per_second": 0.0,  # not part of a record
            "elapsed": points.elapsed[i],
        }
        progress.append(((points.epoch[i], points.step[i], 0), line))

    diagnostics = []
    for point in record.diagnostics.points if record.diagnostics else ():
        epoch, step = point.get("epoch"), point.get("step")
        key = (
            epoch if isinstance(epoch, (int, float)) else 0,
            step if isinstance(step, (int, float)) else 0,
            1,
        )
        diagnostics.append((key, {**point, "type": Diagnostics.kind}))

    landscape = []
    for point in record.landscape.points if record.landscape else ():
        epoch, step = point.get("epoch"), point.get("step")
        key = (
            epoch if isinstance(epoch, (int, float)) else 0,
            step if isinstance(step, (int, float)) else 0,
            1,
        )
        landscape.append((key, {**point, "type": Landscape.kind}))

    merged = heapq.merge(progress, diagnostics, landscape, epochs, key=lambda item: item[0])
    return [line for _key, line in merged]


def write_record(
    runs_dir: Path,
    record: RunRecord,
    *,
    candidates: Callable[[int], str],
    imported_from: str | None = None,
) -> str:
    """Write a complete run (config.json, events.jsonl, summary.json) under the first free id
    that `candidates(attempt)` proposes; return that id. The run appears all at once: the
    files are written into a hidden staging folder that is then renamed into place."""
    ensure_runs_dir(runs_dir)
    run_id, target = reserve_folder(runs_dir, candidates)
    stage = runs_dir / f".stage-{run_id}-{secrets.token_hex(4)}"
    status = as_imported(record.status)
    created = record.timings.started_at or datetime.now().astimezone()
    try:
        try:
            stage.mkdir()
        except OSError as exc:
            raise write_error(stage, exc) from None
        atomic_write_model(
            stage / CONFIG_FILE,
            ConfigFile(
                schema_version=SCHEMA_VERSION,
                id=run_id,
                group=record.group,
                config=record.config,
                environment=record.environment,
                created=created,
                owner=None,
                imported_from=imported_from,
            ),
        )
        events_path = stage / EVENTS_FILE
        try:
            with open(events_path, "wb") as handle:
                for line in _record_events(record):
                    handle.write(event_line(line))
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise write_error(events_path, exc) from None
        _write_imported_listing(stage, run_id, events_path)
        atomic_write_model(
            stage / SUMMARY_FILE,
            SummaryFile(
                schema_version=SCHEMA_VERSION,
                id=run_id,
                status=status,
                message=record.message,
                final=record.final,
                timings=record.timings,
                environment=record.environment,
                split_hash=record.split_hash,
                epochs_done=len(record.history),
            ),
        )
        _move_into_place(stage, target)
    except BaseException:
        _remove_tree(stage)
        try:
            target.rmdir()
        except OSError:
            pass
        raise
    fsync_dir(runs_dir)
    return run_id


def _write_imported_listing(folder: Path, run_id: str, events_path: Path) -> None:
    state = RunState(keep_series=False)
    lines = 0
    with open(events_path, "rb") as handle:
        for line in handle:
            state.apply(json.loads(line))
            lines += 1
    write_listing(folder, run_id, state, lines, os.stat(events_path))


def _move_into_place(stage: Path, target: Path) -> None:
    try:
        os.rename(stage, target)  # POSIX: replaces the empty reserved folder atomically
    except OSError:
        try:  # platforms that will not rename over an empty folder
            target.rmdir()
            os.rename(stage, target)
        except OSError as exc:
            raise write_error(target, exc) from None


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


# -- removal -----------------------------------------------------------------------------------


def remove_run(run_path: Path, *, live: bool = False) -> None:
    """Delete a run folder. It is first renamed to a hidden name, so that a removal cut short
    never leaves a half-deleted folder that would read as a damaged run. Refuses a live run and
    any folder the store cannot prove it created (layout.not_a_store_run)."""
    if live:
        raise StoreError(f"run {run_path.name} is queued or running: stop it before removing it")
    problem = not_a_store_run(run_path)
    if problem is not None:  # never delete what the store did not create
        raise StoreError(f"not removed: {problem} (remove it by hand if it is yours)")
    trash = run_path.with_name(f".trash-{run_path.name}-{secrets.token_hex(4)}")
    try:
        os.rename(run_path, trash)
    except OSError as exc:
        raise StoreWriteError(f"cannot remove {run_path}: {exc.strerror or exc}") from None
    _remove_tree(trash)


def end_unstarted_run(runs_dir: Path, run_id: str, status: RunStatus, message: str | None) -> None:
    """Give a run that never trained its final status (cancelled while queued, refused by the
    scheduler, its SLURM job gone): a terminal event and summary.json, like any other run."""
    path = Path(runs_dir) / run_id
    try:
        stored = ConfigFile.model_validate_json((path / CONFIG_FILE).read_bytes())
    except (OSError, ValueError) as exc:
        raise StoreWriteError(f"{path / CONFIG_FILE}: cannot read the run's config ({exc})") from None
    writer = RunWriter(
        runs_dir,
        stored.config,
        group=stored.group,
        run_id=run_id,
        created=stored.created,
        environment=stored.environment,
    )
    writer.finish(status, message)
