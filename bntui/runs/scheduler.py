"""The scheduler: `python -P -m bntui.runs.scheduler RUNS_DIR`, detached, one per runs dir.

It takes the launch queue (bntui.store.queue) in order and starts a detached trainer for each
local run as soon as the run's device has room (`max_parallel` runs at once per device), and
ends when no local run is left waiting. Runs already training count against their device
whoever started them, read from the store, so a scheduler that replaces a crashed one never
oversubscribes a device. At most one scheduler serves a runs dir: it holds an exclusive lock
on runs_dir/.scheduler.lock for its whole life (the kernel drops the lock when the process
dies, however it dies), and `ensure_scheduler` starts one only when nobody holds it."""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from subprocess import Popen
from typing import IO

from bntui.runs.detach import module_command, spawn_detached

LOCK_FILE = ".scheduler.lock"
LOG_FILE = ".scheduler.log"
POLL_SECONDS = 0.5
GIB = 1024**3
GPU_GIB_PER_RUN = 4  # room per run on a GPU (a CUDA context alone takes ~0.5 GiB)
MAX_AUTO_GPU_RUNS = 8
MAX_STARTS = 3  # a trainer that exits before claiming its run is started again this often
MAX_PACK = 16  # runs one trainer packs into one model at most (a paired group of 8 seeds)


def _lock(runs_dir: Path) -> IO[str] | None:
    """The scheduler lock, held; None when another process holds it."""
    handle = open(runs_dir / LOCK_FILE, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def scheduler_pid(runs_dir: Path) -> int | None:
    """The pid of the scheduler serving `runs_dir`, or None when none is running."""
    path = Path(runs_dir) / LOCK_FILE
    if not path.exists():
        return None
    lock = _lock(Path(runs_dir))
    if lock is not None:  # nobody holds it
        lock.close()
        return None
    try:
        return int(path.read_text().strip() or 0) or None
    except (OSError, ValueError):
        return None


def ensure_scheduler(runs_dir: Path) -> bool:
    """Start a scheduler for `runs_dir` unless one is running. True when one was started.
    Two callers racing both start one; the second finds the lock taken and exits at once."""
    runs_dir = Path(runs_dir)
    lock = _lock(runs_dir)
    if lock is None:
        return False
    lock.close()
    spawn_detached(
        module_command("bntui.runs.scheduler", runs_dir.resolve()),
        log_path=runs_dir / LOG_FILE,
        cwd=runs_dir,
    )
    return True


def normalise_lane(lane: str) -> str:
    """One name per device, by the engine's rule (bntui.engine.device.lane_for): `cuda`,
    `cuda:0` and, on a GPU machine, `auto` are one lane. torch is imported only for lanes
    other than the CPU's."""
    if lane == "cpu":
        return lane
    from bntui.engine.device import available_devices, lane_for

    return lane_for(lane, (device.name for device in available_devices()))


def default_parallel(lane: str) -> int:
    """Runs at once on `lane` when the launch did not say: one on a CPU (its cores are shared
    by torch's threads already); on a GPU one per GPU_GIB_PER_RUN GiB of free memory, at most
    MAX_AUTO_GPU_RUNS and no more than there are CPU cores to feed them."""
    if not lane.startswith("cuda"):
        return 1
    try:
        import torch

        free, _total = torch.cuda.mem_get_info(torch.device(lane))
    except Exception:  # noqa: BLE001 - no answer from the driver: be conservative
        return 1
    return max(1, min(int(free // (GPU_GIB_PER_RUN * GIB)), MAX_AUTO_GPU_RUNS, os.cpu_count() or 1))


def packed_with(entry, spec, waiting) -> list:
    """[(entry name, spec)] of the waiting runs that train in one trainer with `entry` (its
    pack group, up to MAX_PACK, itself first); [] when it trains alone."""
    if spec.pack_group is None:
        return []
    pack = [(other.name, other_spec) for other, other_spec in waiting if other_spec.pack_group == spec.pack_group]
    return pack[:MAX_PACK] if len(pack) > 1 else []


class Scheduler:
    def __init__(self, runs_dir: Path) -> None:
        self.runs_dir = runs_dir
        self.children: dict[str, tuple[Popen[bytes], str]] = {}  # run id -> (trainer, lane)
        self.lanes: dict[str, str] = {}  # a launch's lane -> the device it names
        self.limits: dict[str, int] = {}
        self.failed_starts: Counter[str] = Counter()

    def lane_of(self, lane: str) -> str:
        if lane not in self.lanes:
            try:
                self.lanes[lane] = normalise_lane(lane)
            except Exception as exc:  # noqa: BLE001 - a device that is gone: let the trainer say so
                print(f"bntui scheduler: device {lane}: {exc}", file=sys.stderr, flush=True)
                self.lanes[lane] = lane
        return self.lanes[lane]

    def limit_of(self, lane: str, asked: int | None) -> int:
        if asked is not None:
            return asked
        if lane not in self.limits:
            self.limits[lane] = default_parallel(lane)
        return self.limits[lane]

    def reap(self) -> None:
        """Forget trainers that exited. One that exited without claiming its entry did not
        start (python or bntui could not load): tried MAX_STARTS times, then stored as failed."""
        from bntui.store.queue import find_entry

        for run_id, (process, _lane) in list(self.children.items()):
            if process.poll() is None:
                continue
            del self.children[run_id]
            entry = find_entry(self.runs_dir, run_id)
            if entry is None:
                continue  # claimed: the run's own files tell the rest
            self.failed_starts[run_id] += 1
            if self.failed_starts[run_id] >= MAX_STARTS:
                self.refuse(
                    entry,
                    f"the trainer did not start (exit status {process.returncode}; see "
                    f"{self.runs_dir / run_id / 'trainer.log'})",
                )

    def busy(self) -> Counter[str]:
        """Trainers per device: this scheduler's children, and live local runs in the store
        (started by a scheduler before this one)."""
        from bntui.store import list_runs
        from bntui.store.layout import LAUNCH_FILE
        from bntui.store.queue import LaunchSpec

        # One trainer is one slot, however many packed runs it trains.
        trainers = {id(process): lane for process, lane in self.children.values()}
        counts: Counter[str] = Counter(trainers.values())
        for run in list_runs(self.runs_dir):
            if run.status != "running" or run.id in self.children:
                continue
            try:
                spec = LaunchSpec.model_validate_json((run.path / LAUNCH_FILE).read_bytes())
            except Exception:  # noqa: BLE001 - not launched through the queue: not ours to count
                continue
            if spec.backend == "local":
                counts[self.lane_of(spec.lane)] += 1
        return counts

    def step(self) -> bool:
        """Start what can start now. False when no local run is left waiting or starting."""
        from bntui.store import StoreError
        from bntui.store.queue import entries

        self.reap()
        waiting, starting = [], False
        for entry in entries(self.runs_dir):
            if entry.run_id in self.children:
                starting = True  # its trainer is starting and has not claimed it yet
                continue
            try:
                spec = entry.read()
            except StoreError as exc:
                self.refuse(entry, str(exc))
                continue
            if spec is not None and spec.backend == "local":
                waiting.append((entry, spec))
        if not waiting:
            return starting
        busy = self.busy()
        taken: set[str] = set()
        for entry, spec in waiting:
            if entry.name in taken:
                continue
            lane = self.lane_of(spec.lane)
            limit = self.limit_of(lane, spec.max_parallel)
            if busy[lane] >= limit:
                continue
            pack = packed_with(entry, spec, waiting)
            taken.update(name for name, _spec in pack)
            if pack:
                self.start(entry.name, spec, lane, limit, pack=pack)
            else:
                self.start(entry.name, spec, lane, limit)
            busy[lane] += 1
        return True

    def start(self, entry_name: str, spec, lane: str, limit: int, pack=()) -> None:
        from bntui.store.layout import TRAINER_LOG

        if spec.threads == 0 and lane == "cpu" and limit > 1:
            # Split the cores between the runs sharing the CPU instead of oversubscribing them.
            # The spec is rewritten before the trainer claims it (the claim is a rename).
            from bntui.store.layout import atomic_write_model
            from bntui.store.queue import queue_dir

            spec = spec.model_copy(update={"threads": max(1, (os.cpu_count() or 1) // limit)})
            atomic_write_model(queue_dir(self.runs_dir) / entry_name, spec)
        run_dir = self.runs_dir / spec.run_id
        names = [name for name, _spec in pack] or [entry_name]
        process = spawn_detached(
            module_command("bntui.runs.trainer", self.runs_dir, *names),
            log_path=run_dir / TRAINER_LOG,
            cwd=run_dir,
            reap=False,
        )
        for _name, member in pack or [(entry_name, spec)]:
            self.children[member.run_id] = (process, lane)
        packed = f" packed with {len(names) - 1} more" if len(names) > 1 else ""
        print(f"bntui scheduler: started {spec.run_id}{packed} on {lane} (pid {process.pid})", flush=True)

    def refuse(self, entry, reason: str) -> None:
        """A queue entry nobody can use: take it off the queue and store its run as failed."""
        from bntui.store import StoreError
        from bntui.store.queue import withdraw
        from bntui.store.writer import end_unstarted_run

        print(f"bntui scheduler: {reason}", file=sys.stderr, flush=True)
        if not withdraw(self.runs_dir, entry.run_id):
            return
        try:
            end_unstarted_run(self.runs_dir, entry.run_id, "failed", reason)
        except StoreError as exc:
            print(f"bntui scheduler: could not store {entry.run_id} as failed: {exc}", file=sys.stderr, flush=True)

    def serve(self) -> None:
        while self.step():
            time.sleep(POLL_SECONDS)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bntui.runs.scheduler RUNS_DIR", file=sys.stderr)
        return 2
    runs_dir = Path(args[0])
    lock = _lock(runs_dir)
    if lock is None:
        return 0  # another scheduler serves this runs dir
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    print(f"bntui scheduler: serving {runs_dir} (pid {os.getpid()})", flush=True)
    Scheduler(runs_dir).serve()
    print("bntui scheduler: the queue is empty, exiting", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
