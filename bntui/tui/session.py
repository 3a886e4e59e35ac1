"""What the TUI knows about runs: a plain object the app and its screens share.

Fed only by the store watcher (StoreChanged): every run, this session's included, is shown as
the store has it, so another login sees exactly what the launching one sees. No Textual here."""

from __future__ import annotations

import weakref
from typing import Any

from bntui.store.schema import RunRecord
from bntui.tui.run_view import RunView


class RunSession:
    def __init__(self) -> None:
        self.views: dict[str, RunView] = {}  # by run id, in the order the store listed them
        self.records: dict[str, RunRecord] = {}  # the latest record of each readable run
        self.stored: dict[str, Any] = {}  # bntui.store.StoredRun by run id
        self.launched: list[str] = []  # run ids this session queued, in launch order
        self.to_select: str | None = None  # a run to select once its row exists
        self.dirty: set[str] = set()  # rows to redraw
        self.gone: set[str] = set()  # rows to remove
        # The run ids an open analysis screen was opened on: runs still queued then join it
        # once they have records (analysis.refresh_open_screen).
        self.analysis_ids: weakref.WeakKeyDictionary[Any, list[str]] = weakref.WeakKeyDictionary()

    def apply_store(self, changed: list[Any], removed: list[str]) -> None:
        """Take a poll's news: runs new or changed (bntui.store.StoredRun) and ids removed."""
        for stored in changed:
            self.stored[stored.id] = stored
            if stored.record is not None:
                self.records[stored.id] = stored.record
            self.views[stored.id] = RunView.from_stored(stored)
            self.dirty.add(stored.id)
        for run_id in removed:
            self.stored.pop(run_id, None)
            self.records.pop(run_id, None)
            if self.views.pop(run_id, None) is not None:
                self.dirty.discard(run_id)
                self.gone.add(run_id)

    def touch_all(self) -> None:
        self.dirty.update(self.views)

    def active(self) -> list[RunView]:
        return [view for view in self.views.values() if view.active]

    def twin(self, view: RunView) -> RunView | None:
        return next((other for other in self.views.values() if other.twin_of(view)), None)

    def group_ids(self, group: str) -> list[str]:
        return [run_id for run_id, view in self.views.items() if view.group == group]
