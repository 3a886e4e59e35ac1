"""The store's listing index (runs_dir/.index/listing-*): ended runs listed without opening their
files, and a listing that stays right whatever happened to the index (the property test in
test_store_listing damages it at random; here, each bad input of issue 17 on its own)."""

from __future__ import annotations

import io
import json
import os
import shutil
import threading
from pathlib import Path

import pytest
from rich.console import Console
from test_store_listing import _full_reads, _listed
from storehelpers import epoch_event, make_run, progress_event

from bntui.config import RunConfig
from bntui.store import RunWriter
from bntui.store.indexed import IndexedRun
from bntui.store.listing_index import index_path, load_index
from bntui.store.reader import RunStoreReader

RUN_FILES = {"config.json", "summary.json", "events.jsonl", "listing.json"}


@pytest.fixture(autouse=True)
def _index_every_store(monkeypatch):
    """The index is written for 100 ended runs or more: here, for any store."""
    monkeypatch.setattr("bntui.store.indexed.MIN_INDEXED_RUNS", 1)


def _index(runs_dir: Path) -> Path:
    return Path(index_path(runs_dir))


def _listing(runs_dir: Path) -> dict:
    return {run.id: _listed(run) for run in RunStoreReader(runs_dir).list_runs()}


@pytest.fixture
def store(tmp_path):
    runs_dir = tmp_path / "runs"
    for status, epochs in (("finished", 3), ("failed", 1), ("cancelled", 2), ("diverged", 2)):
        make_run(runs_dir, epochs=epochs, status=status, group="g")
    return runs_dir


def _opened(monkeypatch) -> list[str]:
    opened: list[str] = []
    real_open, real_os_open = open, os.open
    monkeypatch.setattr(
        "builtins.open", lambda path, *a, **k: opened.append(Path(path).name) or real_open(path, *a, **k)
    )
    monkeypatch.setattr(os, "open", lambda path, *a, **k: opened.append(Path(path).name) or real_os_open(path, *a, **k))
    return opened


def test_ended_runs_are_listed_from_the_index_without_opening_their_files(store, monkeypatch):
    expected = _full_reads(store)
    assert _listing(store) == expected  # the first listing reads the folders and writes the index
    assert _index(store).is_file()

    opened = _opened(monkeypatch)
    runs = RunStoreReader(store).list_runs()
    assert all(isinstance(run, IndexedRun) for run in runs)
    assert all(run.overview() == {key: expected[run.id][key] for key in run.overview()} for run in runs)
    assert not RUN_FILES & set(opened)
    # Their briefs (the TUI's rows, a filter on a setting) come from the index too, checked.
    assert {run.id: _listed(run) for run in runs} == expected
    assert not RUN_FILES & set(opened)


def test_the_series_are_still_read_from_the_run_folder(store):
    RunStoreReader(store).list_runs()
    run = RunStoreReader(store).list_runs()[0]
    assert isinstance(run, IndexedRun) and not run.complete
    assert run.record.history.epoch == [1, 2, 3] and run.full().complete


def test_a_run_changed_behind_the_index_is_read_again(store):
    _listing(store)
    run_dir = sorted(path for path in store.iterdir() if not path.name.startswith("."))[0]
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["status"] = "cancelled"
    (run_dir / "summary.json").write_text(json.dumps(summary))  # in place, same inode
    listed = _listing(store)
    assert listed[run_dir.name]["status"] == "cancelled"
    assert listed == _full_reads(store)


def test_live_runs_are_not_indexed_and_show_their_progress(tmp_path):
    writer = RunWriter(tmp_path, RunConfig(epochs=5))
    writer.write_event(progress_event(1, 3))
    make_run(tmp_path, epochs=1)
    _listing(tmp_path)
    index = load_index(tmp_path)
    assert index is not None and writer.run_id not in index.rows and len(index.rows) == 1
    writer.write_event(epoch_event(1))
    assert _listing(tmp_path)[writer.run_id]["epochs_done"] == 1
    writer.close()


@pytest.mark.parametrize(
    "damage",
    [
        "another bntui version",
        "another bntui format",
        "another runs dir",
        "truncated",
        "garbage",
        "empty",
        "a brief damaged",
        "rows damaged",
    ],
)
def test_a_bad_index_is_never_trusted_and_is_rewritten(store, tmp_path, damage, capsys):
    expected = _full_reads(store)
    _listing(store)
    index = _index(store)
    data = index.read_bytes()
    header, rows, briefs = data.split(b"\n", 2)
    if damage == "another bntui version":
        index.write_bytes(header.replace(b'"bntui": "', b'"bntui": "0.0.0-') + b"\n" + rows + b"\n" + briefs)
    elif damage == "another bntui format":
        index.write_bytes(header.replace(b'"version": 1', b'"version": 2') + b"\n" + rows + b"\n" + briefs)
    elif damage == "another runs dir":
        other = tmp_path / "other"
        make_run(other, epochs=1)
        _listing(other)
        shutil.copy(_index(other), index)
    elif damage == "truncated":
        index.write_bytes(data[: len(data) // 3])
    elif damage == "garbage":
        index.write_bytes(os.urandom(5000))
    elif damage == "empty":
        index.write_bytes(b"")
    elif damage == "a brief damaged":  # same length, one byte changed: the brief's CRC tells
        at = len(data) - 100
        index.write_bytes(data[:at] + bytes([data[at] ^ 0x04]) + data[at + 1 :])
    elif damage == "rows damaged":
        at = len(header) + 30
        index.write_bytes(data[:at] + bytes([data[at] ^ 0x04]) + data[at + 1 :])
    assert _listing(store) == expected
    assert _listing(store) == expected
    if damage != "a brief damaged":  # (a bad brief is read from its folder; the rows still hold)
        assert load_index(store) is not None and len(load_index(store).rows) == 4  # rewritten
    assert capsys.readouterr() == ("", "")  # not a word: the run folders said it all


def _read_only(monkeypatch) -> None:
    """Writing anywhere fails as on a read-only filesystem (chmod does not stop root)."""

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Read-only file system")

    real_open = open
    monkeypatch.setattr(os, "mkdir", refuse)
    monkeypatch.setattr(
        "builtins.open", lambda path, mode="r", *a, **k: refuse() if "w" in mode else real_open(path, mode, *a, **k)
    )


def test_a_read_only_runs_dir_lists_right_and_writes_no_index(store, monkeypatch, capsys):
    expected = _full_reads(store)
    _read_only(monkeypatch)
    assert _listing(store) == expected
    assert _listing(store) == expected
    assert not (store / ".index").exists() and capsys.readouterr() == ("", "")


def test_a_read_only_index_that_is_stale_is_not_trusted(store, monkeypatch):
    _listing(store)
    newcomer = make_run(store, epochs=2, status="failed")
    (store / sorted(os.listdir(store))[1] / "summary.json").write_text("{broken")
    _read_only(monkeypatch)
    listed = _listing(store)
    assert newcomer.run_id in listed and listed == _full_reads(store)


def test_runs_json_from_the_index_prints_the_same(store, tmp_path, monkeypatch):
    from bntui.commands.store_commands import cmd_runs
    from bntui.settings import AppSettings

    monkeypatch.setenv("BNTUI_CONFIG_FILE", str(tmp_path / "no-config.toml"))
    settings = AppSettings(runs_dir=store, data_dir=tmp_path / "data")
    printed = []
    for _ in range(2):  # the folders, then the index (another process: another reader)
        console = Console(file=io.StringIO(), width=250, color_system=None)
        monkeypatch.setattr("bntui.store.reader._readers", {})
        assert cmd_runs(settings, console, as_json=True) == 0
        printed.append(console.file.getvalue())
    assert printed[0] == printed[1] and len(json.loads(printed[1])["runs"]) == 4


def test_two_tuis_and_writers_at_once_keep_the_listing_right(tmp_path):
    """Two readers (two TUIs) list over and over while runs are written, end and are added:
    each rewrites the index when it differs; neither ever fails, and once the writers stop
    both list exactly what the run folders hold."""
    for _ in range(3):
        make_run(tmp_path, epochs=1)
    readers = [RunStoreReader(tmp_path), RunStoreReader(tmp_path)]
    stop = threading.Event()
    failures: list[BaseException] = []

    def keep_listing(reader: RunStoreReader) -> None:
        while not stop.is_set():
            try:
                for run in reader.list_runs():
                    run.overview()
                    _ = run.brief
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(exc)
                return

    threads = [threading.Thread(target=keep_listing, args=(reader,)) for reader in readers]
    for thread in threads:
        thread.start()
    try:
        for index in range(6):
            live = RunWriter(tmp_path, RunConfig(epochs=3))
            live.write_event(progress_event(1, 2))
            live.write_event(epoch_event(1))
            make_run(tmp_path, epochs=2, status=("finished", "failed")[index % 2])
            live.write_event(epoch_event(2))
            live.close()  # ends without a summary: a run the index must never take
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    expected = _full_reads(tmp_path)
    for reader in [*readers, RunStoreReader(tmp_path)]:
        assert {run.id: _listed(run) for run in reader.list_runs()} == expected


def test_an_indexed_run_whose_folder_vanished_still_answers(store):
    RunStoreReader(store).list_runs()
    run = RunStoreReader(store).list_runs()[0]
    shutil.rmtree(run.path)
    assert run.full() is run and run.record is not None and run.record.history.epoch == []


def test_a_small_store_gets_no_index(store, monkeypatch):
    monkeypatch.setattr("bntui.store.indexed.MIN_INDEXED_RUNS", 5)
    assert _listing(store) == _full_reads(store)
    assert not (store / ".index").exists()
    make_run(store, epochs=1)
    assert _listing(store) == _full_reads(store) and _index(store).is_file()


def test_an_index_with_rows_of_the_wrong_kind_is_not_used(store):
    """Rows whose CRC holds but whose values are not what bntui writes (a hand-made index)."""
    from bntui.store.listing_index import IndexRow, load_index, write_index

    expected = _full_reads(store)
    _listing(store)
    index = load_index(store)
    entries = [(row._replace(created="yesterday"), index.brief_bytes(row)) for row in index.rows.values()]
    assert write_index(store, entries)
    assert load_index(store) is None and _listing(store) == expected
    assert len(IndexRow._fields) == len(next(iter(load_index(store).rows.values())))
