"""The store's listing index: thousands of runs listed without opening a file of each.

<runs_dir>/.index/listing-<format>-<bntui version> holds, for every ended run, the row a listing shows (status, the
numbers `bntui runs` prints...) and, further on in the file, its brief record, read only when
something asks for it (the TUI's row, a filter on a setting). A row is trusted only while the
run's config.json, summary.json, events.jsonl and listing.json are exactly as they were when it
was written (inode, mtime_ns and size of each: `validator`); any other run is read from its
folder, as if there were no index. The run folders stay the source of truth: the index is
rebuilt from them at any time, so a missing, stale, foreign, truncated or garbage one costs a
slower listing, never a wrong one.

Only runs that cannot change by themselves are indexed: those with a summary.json (ended).
A live, queued or crashed run depends on the clock and on other processes; it is read each time.

Safe to share (two TUIs, a CLI and the writers at once, on a network filesystem too): the file
is replaced whole (a temporary file, then os.replace: the last writer wins, a reader sees one
whole file or the other), and a reader keeps the file it loaded open to read briefs from it.

Layout: a header line (JSON: format, version, the bntui that wrote it, the runs dir's inode,
the rows' length and CRC), a line holding every row (a JSON array of arrays, IndexRow's
fields), then one brief per line: the record's JSON, a tab, {"totals", "owner"} as JSON."""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import time
import zlib
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from bntui import __version__
from bntui.store.layout import CONFIG_FILE, EVENTS_FILE, LISTING_FILE, SUMMARY_FILE, ListedRow, Owner
from bntui.store.run_state import RunTotals
from bntui.store.schema import SUPPORTED_SCHEMA_VERSIONS, RunRecord, RunStatus, SchemaVersion

INDEX_DIR = ".index"  # under the runs dir; a "." name is never taken for a run
INDEX_FILE = "listing"
FORMAT = "bntui listing index"
VERSION = 1
STALE_TEMP_SECONDS = 3600.0  # a temporary file this old was left by a writer that died

# The files whose (inode, mtime_ns, size) an index row is checked against, in this order.
_CHECKED = (CONFIG_FILE, SUMMARY_FILE, EVENTS_FILE, LISTING_FILE)
_TOTALS = TypeAdapter(RunTotals)
_TOTALS_FIELDS = tuple(field.name for field in dataclasses.fields(RunTotals))


class IndexRow(NamedTuple):
    """What a listing shows of one ended run, and where its brief lies in the index file."""

    id: str
    validator: str
    status: RunStatus
    damaged: str | None
    created: str | None  # isoformat
    group: str | None
    steps_per_epoch: int | None
    epochs_done: int
    best_val_loss: float | None
    test_accuracy: float | None
    duration_seconds: float | None
    dataset: str | None
    arch: str | None
    bn: bool | None
    norm: str | None
    seed: int | None
    brief_at: int = 0  # offset of its brief line after the rows
    brief_length: int = 0
    brief_crc: int = 0


def index_path(runs_dir: Path | str) -> str:
    """Each bntui version keeps its own index (named after it): two versions sharing a runs dir
    (cluster nodes with different installs) do not rewrite each other's at every listing."""
    return os.path.join(runs_dir, INDEX_DIR, f"{INDEX_FILE}-{VERSION}-{__version__}")


def vouched(check: str) -> str:
    """The part of a run's validator that its own listing.json can vouch for: config.json,
    summary.json and events.jsonl (listing.json, which holds it, changes when it is written)."""
    return check.rsplit(" ", 1)[0]


def validator(folder: str) -> str | None:
    """The state of the files a listing reads, as one string; None when the run has no
    config.json or no summary.json (not indexed: it may change without its files changing)."""
    parts = []
    for name in _CHECKED:
        try:
            stat = os.stat(f"{folder}/{name}")
        except OSError:
            if name in (CONFIG_FILE, SUMMARY_FILE):
                return None
            parts.append("-")
            continue
        parts.append(f"{stat.st_ino}.{stat.st_mtime_ns}.{stat.st_size}")
    return " ".join(parts)


class Brief(NamedTuple):
    record: RunRecord | None
    totals: RunTotals
    owner: Owner | None


def encode_brief(record: RunRecord, totals: RunTotals, owner: Owner | None) -> bytes:
    # Shallow: RunTotals holds plain JSON values (dataclasses.asdict deep-copies them, slowly).
    extra = {
        "totals": {name: getattr(totals, name) for name in _TOTALS_FIELDS},
        "owner": owner.model_dump() if owner is not None else None,
    }
    return record.model_dump_json().encode("utf-8") + b"\t" + json.dumps(extra, separators=(",", ":")).encode("utf-8")


def decode_brief(data: bytes, run_id: str) -> Brief | None:
    """The brief in `data`, None when it is not one of run `run_id` this bntui can read."""
    tab = data.find(b"\t")
    if tab < 0:
        return None
    try:
        record = RunRecord.model_validate_json(data[:tab])
        extra = json.loads(data[tab + 1 :])
        totals = _TOTALS.validate_python(extra["totals"])
        owner = Owner.model_validate(extra["owner"]) if extra["owner"] is not None else None
    except (ValueError, TypeError, KeyError):  # pydantic's ValidationError is a ValueError
        return None
    return Brief(record, totals, owner) if record.id == run_id else None


class _ListingWithRow(BaseModel):
    """What a listing reads of listing.json when it has a row (store.layout.ListingFile)."""

    model_config = ConfigDict(extra="ignore")

    schema_version: SchemaVersion
    id: str
    listed: ListedRow | None = None


_ROW = TypeAdapter(IndexRow)
MAX_LISTING_BYTES = 1 << 20  # a real listing.json holds a few kB


def listed_in_folder(folder: str, name: str, check: str) -> tuple[IndexRow, HeldBrief] | None:
    """The row and brief that run `name`'s listing.json holds (its writer's, once it ended:
    store.indexed.listed_row), when the run's files are still as they were then (`check`:
    their validator now); None otherwise: the listing then reads the run's files."""
    try:
        with open(f"{folder}/{LISTING_FILE}", "rb") as handle:
            data = handle.read(MAX_LISTING_BYTES + 1)
    except OSError:
        return None
    if len(data) > MAX_LISTING_BYTES:
        return None
    try:
        # One pass in pydantic: the other fields are skipped, nested values beyond the row's
        # scalars and the brief's string never kept.
        listing = _ListingWithRow.model_validate_json(data)
        listed = listing.listed
        if listed is None or listed.validator != vouched(check) or listing.id != name:
            return None
        row_text, brief = listed.row.encode("utf-8"), listed.brief.encode("utf-8")
        if zlib.crc32(row_text + b"\n" + brief) != listed.crc:
            return None
        row = _ROW.validate_json(row_text)
        if row.created is not None:
            datetime.fromisoformat(row.created)
    except (ValidationError, ValueError, TypeError):
        return None
    if listing.schema_version not in SUPPORTED_SCHEMA_VERSIONS or row.id != name:
        return None
    return row._replace(validator=check), HeldBrief(brief)


class HeldBrief:
    """A brief in memory, as a run's own listing.json held it (listed_in_folder); read as an
    index's briefs are (ListingIndex.brief), checked when decoded."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def brief_bytes(self, row: IndexRow) -> bytes | None:
        return self._data

    def brief(self, row: IndexRow) -> Brief | None:
        return decode_brief(self._data, row.id)


class ListingIndex:
    """One index file as loaded: its rows by run id, and the file kept open for the briefs."""

    def __init__(self, fd: int, rows: dict[str, IndexRow], base: int, seen: tuple[int, int, int]) -> None:
        self.rows = rows
        self.seen = seen  # (inode, mtime_ns, size) of the file loaded
        self._fd = fd
        self._base = base  # where the briefs start

    def __del__(self) -> None:
        try:
            os.close(self._fd)
        except OSError:
            pass

    def brief_bytes(self, row: IndexRow) -> bytes | None:
        """Row `row`'s brief line as written (checked against its CRC), None if it is not."""
        try:
            data = os.pread(self._fd, row.brief_length, self._base + row.brief_at)
        except OSError:
            return None
        return data if len(data) == row.brief_length and zlib.crc32(data) == row.brief_crc else None

    def brief(self, row: IndexRow) -> Brief | None:
        data = self.brief_bytes(row)
        return None if data is None else decode_brief(data, row.id)


def _header(runs_dir: Path | str) -> dict[str, Any] | None:
    try:
        identity = os.stat(runs_dir).st_ino
    except OSError:
        return None
    return {"format": FORMAT, "version": VERSION, "bntui": __version__, "runs_dir": identity}


def load_index(runs_dir: Path | str) -> ListingIndex | None:
    """The runs dir's index, None when there is none or it cannot be trusted as a whole
    (another bntui's, another runs dir's, cut short or garbage: the next listing rewrites it)."""
    try:
        fd = os.open(index_path(runs_dir), os.O_RDONLY)
    except OSError:
        return None
    try:
        index = _parse(fd, runs_dir)
    except (ValueError, TypeError, KeyError, OSError, RecursionError):
        index = None
    if index is None:
        os.close(fd)
    return index


def _parse(fd: int, runs_dir: Path | str) -> ListingIndex | None:
    stat = os.fstat(fd)
    start = os.pread(fd, 4096, 0)
    end = start.find(b"\n")
    if end < 0:
        return None
    header = json.loads(start[:end])
    expected = _header(runs_dir)
    if not isinstance(header, dict) or expected is None:
        return None
    if any(header.get(key) != value for key, value in expected.items()):
        return None
    length = header["rows_length"]
    if type(length) is not int or not 0 < length <= stat.st_size:
        return None
    blob = os.pread(fd, length, end + 1)
    if len(blob) != length or zlib.crc32(blob) != header["rows_crc"]:
        return None
    rows = {}
    width = len(IndexRow._fields)
    for values in json.loads(blob):
        if type(values) is not list or len(values) != width or not all(type(v) is str for v in values[:3]):
            return None
        row = IndexRow._make(values)
        if row.created is not None:
            datetime.fromisoformat(row.created)  # ValueError, TypeError: not an index this bntui wrote
        rows[row.id] = row
    return ListingIndex(fd, rows, end + 1 + length + 1, (stat.st_ino, stat.st_mtime_ns, stat.st_size))


def index_seen(runs_dir: Path | str) -> tuple[int, int, int] | None:
    try:
        stat = os.stat(index_path(runs_dir))
    except OSError:
        return None
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


def write_index(runs_dir: Path | str, entries: list[tuple[IndexRow, bytes]]) -> bool:
    """Replace the runs dir's index with `entries` (rows, with their briefs); False when it
    cannot be written (a read-only runs dir...): listings then read the runs as they are."""
    header = _header(runs_dir)
    if header is None:
        return False
    rows, briefs, at = [], [], 0
    for row, brief in entries:
        rows.append(list(row._replace(brief_at=at, brief_length=len(brief), brief_crc=zlib.crc32(brief))))
        briefs.append(brief)
        at += len(brief) + 1
    blob = json.dumps(rows, separators=(",", ":")).encode("utf-8")
    header.update(rows_length=len(blob), rows_crc=zlib.crc32(blob))
    data = b"\n".join([json.dumps(header).encode("utf-8"), blob, *briefs]) + b"\n"
    folder = os.path.join(runs_dir, INDEX_DIR)
    temp = os.path.join(folder, f".{INDEX_FILE}.{secrets.token_hex(4)}.tmp")
    try:
        if not os.path.isdir(folder):
            os.mkdir(folder)  # in the runs dir, never creating it
        _remove_stale_temps(folder)
        with open(temp, "wb") as handle:
            handle.write(data)
        os.replace(temp, index_path(runs_dir))
    except OSError:
        try:
            os.unlink(temp)
        except OSError:
            pass
        return False
    return True


def _remove_stale_temps(folder: str) -> None:
    now = time.time()
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(f".{INDEX_FILE}.") and entry.name.endswith(".tmp"):
                try:
                    if now - entry.stat().st_mtime > STALE_TEMP_SECONDS:
                        os.unlink(entry.path)
                except OSError:
                    pass


def listed_row_of(run: Any, check: str) -> ListedRow:
    """What a run's listing.json holds of its row (listed_in_folder reads it back)."""
    row = json.dumps(list(row_of(run, check)), separators=(",", ":"))
    brief = encode_brief(run.brief, run.totals, run.owner).decode("utf-8")
    crc = zlib.crc32(f"{row}\n{brief}".encode())
    return ListedRow(validator=vouched(check), row=row, brief=brief, crc=crc)


def row_of(run: Any, check: str) -> IndexRow:
    """The index row of a run as a listing read it from its folder (a StoredRun)."""
    config = run.config
    return IndexRow(
        id=run.id,
        validator=check,
        status=run.status,
        damaged=run.damaged,
        created=run.created.isoformat() if run.created is not None else None,
        group=run.group,
        steps_per_epoch=run.steps_per_epoch,
        epochs_done=run.epochs_done,
        best_val_loss=run.best_val_loss,
        test_accuracy=run.test_accuracy,
        duration_seconds=run.duration_seconds,
        dataset=config.dataset if config else None,
        arch=config.arch if config else None,
        bn=config.bn if config else None,
        norm=config.norm if config else None,
        seed=config.seed if config else None,
    )
