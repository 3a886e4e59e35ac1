"""Notice runs that appear, change or vanish in the run store: the TUI's only source of runs,
its own launches included. Polled about once a second from a thread worker.

bntui.store's reader keeps parsed runs between calls and hands back the same StoredRun object
while a run's files are unchanged, so "changed" is an identity check. A poll costs the same
whatever the size of the store: the runs dir is listed again only when its mtime changes (a
run added or removed); runs that may still change (queued, running) are read at every poll,
and the ended ones a few at a time in turn (SWEEP_PER_POLL), so that a file edited or
damaged by hand still shows, later. Polling, not inotify: it works on network filesystems."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

RACY_SECONDS = 2.0  # a runs dir changed this recently is listed again at the next poll
SWEEP_PER_POLL = 64  # ended runs re-read per poll: a store of 6,400 is looked over every 100 s


class StoreWatcher:
    def __init__(self, runs_dir: Path) -> None:
        self.runs_dir = Path(runs_dir)
        self._last: dict[str, Any] = {}
        self._names: list[str] | None = None  # the run folders, as of _dir_seen
        self._dir_seen: tuple[int, int] | None = None
        self._sweep = 0  # where the next sweep of ended runs starts in _names
        self._racy = False
        self._active: set[str] = set()  # runs that may still change: read at every poll
        self._waiting: set[str] = set()  # folders that held no run yet

    def poll(self) -> tuple[list[Any], list[str]]:
        """(runs that are new or changed, ids of runs that vanished) since the last poll.
        Raises bntui.store.StoreError when the runs dir cannot be read."""
        from bntui.store import (
            StoreError,  # no torch; imported here to keep start-up lean
        )

        try:
            return self._poll()
        except StoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported like a store problem: the watcher lives on
            raise StoreError(f"cannot read the run store: unexpected {type(exc).__name__}: {exc}") from None

    def _poll(self) -> tuple[list[Any], list[str]]:
        from bntui.store import list_runs
        from bntui.store.reader import reader_for

        try:
            stat = os.stat(self.runs_dir)
            dir_seen: tuple[int, int] | None = (stat.st_ino, stat.st_mtime_ns)
        except OSError:
            dir_seen = None  # missing or unreadable: list_runs says which
        if self._names is None or dir_seen is None or dir_seen != self._dir_seen or self._racy:
            listed_at = time.time()
            runs = {run.id: run for run in list_runs(self.runs_dir)}  # the first poll, or runs came or went
            names = reader_for(self.runs_dir).folder_names()
            # A folder made in the same mtime tick as this listing would leave the mtime as it
            # is (coarse clocks, NFS): list again until the mtime is safely older.
            self._racy = dir_seen is not None and dir_seen[1] / 1e9 > listed_at - RACY_SECONDS
            self._names, self._dir_seen = names, dir_seen
            self._waiting = {name for name in names if name not in runs}  # empty folders, for now
            self._active = {run_id for run_id, run in runs.items() if run.active or run.live}
            changed = [run for run_id, run in runs.items() if self._last.get(run_id) is not run]
            removed = [run_id for run_id in self._last if run_id not in runs]
            self._last = runs
            for run in changed:
                run.brief  # noqa: B018 - a run listed from the store's index reads it when asked: here, not on the UI's loop
            return changed, removed
        # Only the runs that may change, and a few ended ones in turn: the same work whatever
        # the size of the store.
        names = self._names
        start = self._sweep % max(len(names), 1)
        turn = names[start : start + SWEEP_PER_POLL] + names[: max(start + SWEEP_PER_POLL - len(names), 0)]
        self._sweep = start + SWEEP_PER_POLL  # wraps around: every ended run in turn
        wanted = list(dict.fromkeys([*sorted(self._active | self._waiting), *turn]))
        changed, removed = [], []
        for name, found in zip(wanted, reader_for(self.runs_dir).read_runs(wanted)):
            if found is None:
                self._active.discard(name)
                if self._last.pop(name, None) is not None:
                    removed.append(name)
                continue
            run = found
            self._waiting.discard(name)
            if self._last.get(name) is not run:
                changed.append(run)
                self._last[name] = run
            if run.active or run.live:
                self._active.add(name)
            else:
                self._active.discard(name)
        return changed, removed
