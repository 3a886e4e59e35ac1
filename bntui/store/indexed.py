"""Listing through the store's index (store.listing_index): what RunStoreReader.list_runs does
with it, and the runs it lists from it (IndexedRun: a StoredRun whose record is read from the
index only when something asks for it)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from bntui.store.layout import ListedRow, Owner
from bntui.store.listing_index import (
    Brief,
    HeldBrief,
    IndexRow,
    ListingIndex,
    encode_brief,
    index_seen,
    listed_in_folder,
    listed_row_of,
    load_index,
    row_of,
    validator,
    write_index,
)
from bntui.store.reader import RunStoreReader, StoredRun
from bntui.store.run_state import RunTotals
from bntui.store.schema import RunRecord

# Below this many ended runs a listing reads their folders (a few ms) and writes no index: a
# small runs dir (a checkout's test fixtures, a first experiment) is left as it was.
MIN_INDEXED_RUNS = 100

ReadRun = Callable[[str], "StoredRun | None"]  # a run folder read by a listing, as it is now
BriefSource = ListingIndex | HeldBrief  # where an indexed run's brief is read from


class IndexedRun(StoredRun):
    """An ended run listed from its row (in the index, or in its own listing.json): what a
    listing shows is in the row; the brief record, totals and owner are read (once) when first
    asked for. Thousands are made at each listing: the few attributes they hold are the row,
    where its brief is and the creation time."""

    _row: IndexRow
    _index: BriefSource
    _listing: IndexedListing

    def __init__(self, row: IndexRow, index: BriefSource, listing: IndexedListing) -> None:
        put = object.__setattr__  # StoredRun is frozen
        put(self, "_row", row)
        put(self, "_index", index)
        put(self, "_listing", listing)
        put(self, "created", datetime.fromisoformat(row.created) if row.created else None)

    # What StoredRun holds as fields, read from the row (or fixed: an indexed run has ended).
    id = property(lambda self: self._row.id)
    status = property(lambda self: self._row.status)
    damaged = property(lambda self: self._row.damaged)
    group = property(lambda self: self._row.group)
    steps_per_epoch = property(lambda self: self._row.steps_per_epoch)
    path = property(lambda self: self._listing.runs_dir / self._row.id)
    loader = property(lambda self: partial(self._listing.full_run, self._row.id))
    live = complete = stop_requested = False
    queue_place = None

    def full(self) -> StoredRun:
        """This run read in full from its folder now (kept); itself if the folder is gone."""
        loaded = self.__dict__.get("_full")
        if loaded is None:
            loaded = self._listing.full_run(self._row.id) or self
            object.__setattr__(self, "_full", loaded)
        return loaded

    def _brief(self) -> Brief:
        brief = self.__dict__.get("_read")
        if brief is None:
            brief = self._listing.brief(self._index, self._row)
            object.__setattr__(self, "_read", brief)
        return brief

    @property
    def brief(self) -> RunRecord | None:
        return self._brief().record

    @property
    def totals(self) -> RunTotals:
        return self._brief().totals

    @property
    def owner(self) -> Owner | None:
        return self._brief().owner

    @property
    def epochs_done(self) -> int:
        return self._row.epochs_done

    @property
    def best_val_loss(self) -> float | None:
        return self._row.best_val_loss

    @property
    def test_accuracy(self) -> float | None:
        return self._row.test_accuracy

    @property
    def duration_seconds(self) -> float | None:
        return self._row.duration_seconds  # an ended run's: it no longer moves

    def overview(self) -> dict[str, Any]:
        row = self._row
        return {
            "id": row.id,
            "status": row.status,
            "epochs_done": row.epochs_done,
            "dataset": row.dataset,
            "arch": row.arch,
            "bn": row.bn,
            "norm": row.norm,
            "seed": row.seed,
            "best_val_loss": row.best_val_loss,
            "test_accuracy": row.test_accuracy,
            "duration_seconds": row.duration_seconds,
            "group": row.group,
            "damaged": row.damaged,
        }


class IndexedListing:
    """One reader's use of the index: which runs it may list from it, which it read from their
    folders, and when to write the index again."""

    def __init__(self, runs_dir: Path, read: ReadRun, full: ReadRun, indexable: Callable[[StoredRun], bool]) -> None:
        self.runs_dir = runs_dir
        self._read = read
        self._full = full
        self._indexable = indexable
        self._index: ListingIndex | None = None
        self._seen: tuple[int, int, int] | None = None
        # run id -> (its validator, the run listed, (brief source, row) it was listed from or
        # None: read from its files)
        self._listed: dict[str, tuple[str, StoredRun, tuple[BriefSource, IndexRow] | None]] = {}
        self._unwritten: Any = None  # rows that could not be written: not tried again

    def refresh(self) -> None:
        """Load the index again if another process replaced it."""
        seen = index_seen(self.runs_dir)
        if seen != self._seen:
            self._index = load_index(self.runs_dir) if seen is not None else None
            self._seen = self._index.seen if self._index is not None else seen

    def forget(self, name: str) -> None:
        self._listed.pop(name, None)

    def run(self, name: str, read: Callable[[], StoredRun | None], *, queued: bool) -> StoredRun | None:
        """Run `name` as a listing shows it: from the index when its row still holds, else
        `read` from its folder (and kept for the next index when it is an ended run)."""
        folder = f"{self.runs_dir}/{name}"
        check = None if queued else validator(folder)  # taken before any read: never newer than it
        if check is None:
            self._listed.pop(name, None)
            return read()
        kept = self._listed.get(name)
        if kept is not None and kept[0] == check:
            return kept[1]  # the same object while unchanged
        index = self._index
        row = index.rows.get(name) if index is not None else None
        if index is not None and row is not None and row.validator == check:
            run: StoredRun | None = IndexedRun(row, index, self)
            self._listed[name] = (row.validator, run, (index, row))  # type: ignore[assignment]
            return run
        held = listed_in_folder(folder, name, check)
        if held is not None:
            row, brief = held
            run = IndexedRun(row, brief, self)
            self._listed[name] = (check, run, (brief, row))
            return run
        run = read()
        if run is not None and self._indexable(run):
            self._listed[name] = (check, run, None)
        else:
            self._listed.pop(name, None)
        return run

    def full_run(self, name: str) -> StoredRun | None:
        return self._full(name)

    def brief(self, index: BriefSource, row: IndexRow) -> Brief:
        brief = index.brief(row)
        if brief is None:  # damaged since it was loaded: the folder says it
            run = self._read(row.id)
            brief = Brief(None, RunTotals(), None) if run is None else Brief(run.brief, run.totals, run.owner)
        return brief

    def save(self, names: list[str]) -> None:
        """Write the index again when the runs `names` (a whole listing) differ from it."""
        listed = {name: kept[0] for name in names if (kept := self._listed.get(name)) is not None}
        if len(listed) < MIN_INDEXED_RUNS:
            return
        index = self._index
        if index is not None and listed == {name: row.validator for name, row in index.rows.items()}:
            return
        if index is None and not listed:
            return  # nothing to index (and an empty store's runs dir may not even exist)
        key = tuple(listed.items())
        if key == self._unwritten:
            return
        entries = []
        for name, check in listed.items():
            _, run, source = self._listed[name]
            if source is not None:
                data = source[0].brief_bytes(source[1])
                if data is not None:
                    entries.append((source[1], data))
            elif run.brief is not None:
                entries.append((row_of(run, check), encode_brief(run.brief, run.totals, run.owner)))
        self._unwritten = None if write_index(self.runs_dir, entries) else key


def listed_row(runs_dir: Path, run_id: str) -> ListedRow | None:
    """Ended run `run_id`'s listing row, read back from its folder as a listing reads it, for
    its listing.json (RunWriter.finish): a later listing then takes the row from there, one
    file, instead of reading config.json, summary.json and listing.json. None when the run
    cannot be listed from a row (not ended, or its record unreadable)."""
    folder = runs_dir / run_id
    check = validator(str(folder))
    run = RunStoreReader(runs_dir).read_folder(run_id)  # a reader of its own: nothing cached
    if check is None or run is None or run.brief is None or run.live or run.queue_place is not None:
        return None
    return listed_row_of(run, check)
