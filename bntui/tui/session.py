"""What the TUI knows about runs: a plain object the app and its screens share.

Fed only by the store watcher (StoreChanged): every run, this session's included, is shown as
the store has it, so another login sees exactly what the launching one sees. No Textual here."""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Mapping
from typing import Any

from bntui.store.schema import RunRecord
from bntui.tui.run_view import RunView


class StoredRecords(Mapping):
    """The records of the runs in `stored` (run id -> bntui.store.StoredRun) that `keep`
    accepts; each is read from the store when looked up (a listing holds no series)."""

    def __init__(self, stored: dict[str, Any], keep=lambda stored: True) -> None:
        self._stored = stored
        self._keep = keep

    def _kept(self, run_id: str) -> Any:
        stored = self._stored.get(run_id)
        return stored if stored is not None and stored.brief is not None and self._keep(stored) else None

    def __getitem__(self, run_id: str) -> RunRecord:
        stored = self._kept(run_id)
        record = stored.record if stored is not None else None
        if record is None:
            raise KeyError(run_id)
        return record

    def __iter__(self) -> Iterator[str]:
        return (run_id for run_id in list(self._stored) if self._kept(run_id) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class RunSession:
    def __init__(self) -> None:
        self.views: dict[str, RunView] = {}  # by run id, in the order the store listed them
        self.stored: dict[str, Any] = {}  # bntui.store.StoredRun by run id
        self.records = StoredRecords(self.stored)  # the latest record of each readable run
        self._full: dict[str, tuple[Any, RunView]] = {}  # run id -> (StoredRun, its view with curves)
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
            self.views[stored.id] = RunView.from_stored(stored)
            self.dirty.add(stored.id)
        for run_id in removed:
            self.stored.pop(run_id, None)
            self._full.pop(run_id, None)
            if self.views.pop(run_id, None) is not None:
                self.dirty.discard(run_id)
                self.gone.add(run_id)

    def full_view(self, view: RunView) -> RunView:
        """`view` with its curves (the series are read for the runs a screen shows only), the
        same object while its run is unchanged in the store."""
        stored = self.stored.get(view.key)
        if stored is None or stored.complete:
            return view
        kept = self._full.get(view.key)
        if kept is None or kept[0] is not stored:
            kept = self._full[view.key] = (stored, RunView.from_stored(stored.full()))
        return kept[1]

    def touch_all(self) -> None:
        self.dirty.update(self.views)

    def active(self) -> list[RunView]:
        return [view for view in self.views.values() if view.active]

    def twin(self, view: RunView) -> RunView | None:
        if view.group is None:
            return None  # a twin is in the same group: no need to look over thousands of runs
        return next((other for other in self.views.values() if other.twin_of(view)), None)

    def group_ids(self, group: str) -> list[str]:
        return [run_id for run_id, view in self.views.items() if view.group == group]
