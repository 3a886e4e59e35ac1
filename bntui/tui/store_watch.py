"""Notice runs that appear or change in the run store (this session's, or another process's).

Polled about once a second from a thread worker. Each poll only stats the files of each run
folder; a run is loaded again only when its files changed (or, while it claims to be running,
every few seconds, so that a run whose process died shows up as crashed)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

RECHECK_RUNNING_SECONDS = 5.0


def _signature(folder: Path) -> tuple[tuple[str, int, int], ...]:
    entries = []
    try:
        with os.scandir(folder) as scan:
            for entry in scan:
                if entry.is_file():
                    info = entry.stat()
                    entries.append((entry.name, info.st_mtime_ns, info.st_size))
    except OSError:
        return ()
    return tuple(sorted(entries))


class StoreWatcher:
    def __init__(self, runs_dir: Path) -> None:
        self.runs_dir = Path(runs_dir)
        self._seen: dict[str, tuple[tuple[str, int, int], ...]] = {}
        self._running_checked: dict[str, float] = {}

    def poll(self) -> tuple[list[Any], list[str]]:
        """(runs that are new or changed, ids of runs that vanished) since the last poll."""
        from bntui.store import load_run  # cheap (no torch); imported here to keep start-up lean

        try:
            folders = {
                entry.name: Path(entry.path)
                for entry in os.scandir(self.runs_dir)
                if entry.is_dir() and not entry.name.startswith(".")
            }
        except OSError:
            folders = {}
        changed = []
        now = time.monotonic()
        for run_id, folder in sorted(folders.items()):
            signature = _signature(folder)
            recheck = now - self._running_checked.get(run_id, now) >= RECHECK_RUNNING_SECONDS
            if signature == self._seen.get(run_id) and not recheck:
                continue
            self._seen[run_id] = signature
            try:
                stored = load_run(self.runs_dir, run_id)
            except Exception:  # a half-written folder: read it again on the next change
                self._seen.pop(run_id, None)
                continue
            if getattr(stored, "status", None) == "running":
                self._running_checked.setdefault(run_id, now)
                if recheck:
                    self._running_checked[run_id] = now
            else:
                self._running_checked.pop(run_id, None)
            changed.append(stored)
        removed = [run_id for run_id in self._seen if run_id not in folders]
        for run_id in removed:
            self._seen.pop(run_id, None)
            self._running_checked.pop(run_id, None)
        return changed, removed
