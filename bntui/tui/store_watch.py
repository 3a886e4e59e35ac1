"""Notice runs that appear, change or vanish in the run store: the TUI's only source of runs,
its own launches included. Polled about once a second from a thread worker.

bntui.store's reader keeps parsed runs between calls and hands back the same StoredRun object
while a run's files are unchanged, so a poll costs a few stats per run and "changed" is an
identity check."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class StoreWatcher:
    def __init__(self, runs_dir: Path) -> None:
        self.runs_dir = Path(runs_dir)
        self._last: dict[str, Any] = {}

    def poll(self) -> tuple[list[Any], list[str]]:
        """(runs that are new or changed, ids of runs that vanished) since the last poll.
        Raises bntui.store.StoreError when the runs dir cannot be read."""
        from bntui.store import StoreError, list_runs  # no torch; imported here to keep start-up lean

        try:
            runs = {run.id: run for run in list_runs(self.runs_dir)}
        except StoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported like a store problem: the watcher lives on
            raise StoreError(f"cannot read the run store: unexpected {type(exc).__name__}: {exc}") from None
        changed = [run for run_id, run in runs.items() if self._last.get(run_id) is not run]
        removed = [run_id for run_id in self._last if run_id not in runs]
        self._last = runs
        return changed, removed
