"""A listing reads each run's small files (listing.json, not the whole events.jsonl) and must
still show exactly what a full read of the run folders shows, whatever happened to them."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from storehelpers import (
    dead_pid,
    epoch_event,
    make_run,
    progress_event,
    set_owner,
    write_events,
)

from bntui.config import RunConfig
from bntui.store import RunWriter, list_runs, load_run
from bntui.store.listing_index import index_path
from bntui.store.reader import RunStoreReader


@pytest.fixture(autouse=True)
def _index_every_store(monkeypatch):
    """The index is written for 100 ended runs or more: here, for any store."""
    monkeypatch.setattr("bntui.store.indexed.MIN_INDEXED_RUNS", 1)


STATUSES = ("finished", "failed", "cancelled", "diverged", None)  # None: live, its writer open

# What can happen to an ended run's folder: (name, how).
DAMAGE = (
    "cut events",
    "cut events at a line",
    "garbage line",
    "flip a byte",
    "drop events",
    "drop summary",
    "drop listing",
    "garbage listing",
    "listing of another run",
    "truncated listing",
    "old listing",
    "writer died",
    "edited row",
    "row of another run",
    "summary rewritten",
)


def _live_run(runs_dir: Path, epochs: int) -> RunWriter:
    writer = RunWriter(runs_dir, RunConfig(epochs=20))
    write_events(writer, epochs)
    return writer


def _listed(run) -> dict:
    brief = run.brief
    return {
        **run.overview(),
        "duration_seconds": None if run.live else run.duration_seconds,  # the clock moves on
        "live": run.live,
        "created": run.created,
        "owner": run.owner,
        "steps_per_epoch": run.steps_per_epoch,
        "queue_place": run.queue_place,
        "last_epoch": run.last_epoch,
        "brief": None
        if brief is None
        else brief.model_dump(exclude={"history", "progress", "diagnostics", "landscape"}),
    }


# What can happen to the store's listing index behind a listing's back: (name, how).
INDEX_DAMAGE = (
    "none",
    "garbage index",
    "truncated index",
    "index of another runs dir",
    "index of another version",
    "index emptied",
    "flip a byte in the index",
    "run removed",
    "run added",
    "run replaced",
)


def _damage_index(runs_dir: Path, how: str, where: float, elsewhere: Path, factory) -> None:
    index = Path(index_path(runs_dir))
    data = index.read_bytes() if index.exists() else b""
    if "index" in how:
        index.parent.mkdir(exist_ok=True)  # a store of live runs only has none yet
    if how == "garbage index":
        index.write_bytes(b"\x00{not json\n[[" * 5)
    elif how == "truncated index":
        index.write_bytes(data[: int(len(data) * where)])
    elif how == "index of another runs dir":
        shutil.copy(index_path(elsewhere), index)
    elif how == "index of another version":
        header, _, rest = data.partition(b"\n")
        index.write_bytes(header.replace(b'"version": 1', b'"version": 99') + b"\n" + rest)
    elif how == "index emptied":
        index.write_bytes(b"")
    elif how == "flip a byte in the index" and data:
        at = min(int(len(data) * where), len(data) - 1)
        index.write_bytes(data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :])
    elif how in ("run removed", "run replaced"):
        ended = sorted(path for path in runs_dir.iterdir() if (path / "summary.json").exists())
        if ended:
            victim = ended[int(where * (len(ended) - 1))]
            shutil.rmtree(victim)
            if how == "run replaced":  # another run under the same id
                shutil.copytree(make_run(factory.mktemp("other"), epochs=1, status="failed").path, victim)
                for name in ("config.json", "summary.json", "listing.json"):
                    path = victim / name
                    path.write_text(path.read_text().replace(path.parent.parent.name, "x"))
    elif how == "run added":
        make_run(runs_dir, epochs=2, status="cancelled")


def _full_reads(runs_dir: Path) -> dict:
    fresh = RunStoreReader(runs_dir)  # no cache: everything read from the files as they are now
    return {name: _listed(run) for name in fresh.folder_names() if (run := fresh.full_run(name))}


def _damage(folder: Path, how: str, where: float, other: Path) -> None:
    events, listing = folder / "events.jsonl", folder / "listing.json"
    data = events.read_bytes()
    cut = int(len(data) * where)
    if how == "cut events":
        events.write_bytes(data[:cut])
    elif how == "cut events at a line":
        events.write_bytes(data[: data.rfind(b"\n", 0, max(cut, 1)) + 1])
    elif how == "garbage line":
        at = data.rfind(b"\n", 0, max(cut, 1)) + 1
        events.write_bytes(data[:at] + b'{"type": "epoch", "epoch": "x"}\n' + data[at:])
    elif how == "flip a byte" and data:
        events.write_bytes(data[:cut] + bytes([data[min(cut, len(data) - 1)] ^ 0x20]) + data[cut + 1 :])
    elif how == "drop events":
        events.unlink()
    elif how == "drop summary":
        (folder / "summary.json").unlink()
    elif how == "drop listing":
        listing.unlink()
    elif how == "garbage listing":
        listing.write_bytes(b"\x00{not json" * 3)
    elif how == "listing of another run":
        shutil.copy(other / "listing.json", listing)
    elif how == "truncated listing":
        listing.write_bytes(listing.read_bytes()[: int(listing.stat().st_size * where)])
    elif how == "old listing":  # from another bntui: an unknown schema version
        try:
            payload = json.loads(listing.read_bytes())
        except ValueError:
            return  # already garbage
        if isinstance(payload, dict):
            payload["schema_version"] = 99
            listing.write_text(json.dumps(payload))
    elif how == "writer died":
        (folder / "summary.json").unlink()
        set_owner(folder, pid=dead_pid())
    elif how in ("edited row", "row of another run"):  # listing.json still parses, and fits the log
        try:
            payload = json.loads(listing.read_bytes())
        except ValueError:
            return  # already garbage
        if not isinstance(payload, dict) or not isinstance(payload.get("listed"), dict):
            return
        if how == "edited row":
            row = json.loads(payload["listed"]["row"])
            row[2] = "failed" if row[2] != "failed" else "cancelled"  # the status
            payload["listed"]["row"] = json.dumps(row)
        else:
            payload["listed"] = json.loads((other / "listing.json").read_bytes())["listed"]
        listing.write_text(json.dumps(payload))
    elif how == "summary rewritten":  # by hand, after the writer wrote the run's row
        payload = json.loads((folder / "summary.json").read_bytes())
        payload["status"], payload["message"] = "failed", "rewritten"
        (folder / "summary.json").write_text(json.dumps(payload))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    runs=st.lists(st.tuples(st.sampled_from(STATUSES), st.integers(0, 4)), min_size=1, max_size=5),
    damage=st.lists(st.tuples(st.integers(0, 4), st.sampled_from(DAMAGE), st.floats(0, 1)), max_size=4),
    appends=st.lists(st.tuples(st.integers(0, 4), st.integers(1, 3)), max_size=3),
    warm=st.booleans(),
    index_damage=st.tuples(st.sampled_from(INDEX_DAMAGE), st.floats(0, 1)),
)
def test_a_listing_shows_what_a_full_read_shows(tmp_path_factory, runs, damage, appends, warm, index_damage):
    runs_dir = tmp_path_factory.mktemp("runs")
    writers = [
        make_run(runs_dir, epochs=epochs, status=status) if status else _live_run(runs_dir, epochs)
        for status, epochs in runs
    ]
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    other = make_run(elsewhere, epochs=2)  # a run of another store
    RunStoreReader(elsewhere).list_runs()  # ...and that store's index
    RunStoreReader(runs_dir).list_runs()  # the index as of now: stale after the changes below
    reader = RunStoreReader(runs_dir)
    if warm:
        reader.list_runs()  # a listing before the changes: it must follow them
    ended = [w for w in writers if w.finished]
    for index, how, where in damage:
        if ended:
            victim = ended[index % len(ended)]
            if all((victim.path / name).exists() for name in ("events.jsonl", "listing.json", "summary.json")):
                _damage(victim.path, how, where, other.path)
    live = [w for w in writers if not w.finished]
    for index, count in appends:  # the live runs go on: progress points, then whole epochs
        if live:
            writer = live[index % len(live)]
            for _ in range(count):
                done = writer.state.epochs_done
                writer.write_event(progress_event(done + 1, done * 10 + 3))
                writer.write_event(epoch_event(done + 1))
    for writer in live[:1]:
        with open(writer.events_path, "ab") as handle:  # a line being written right now
            handle.write(b'{"type": "progress", "ep')
    _damage_index(runs_dir, *index_damage, elsewhere, tmp_path_factory)
    expected = _full_reads(runs_dir)
    listed = {run.id: _listed(run) for run in reader.list_runs()}
    assert listed == expected
    # A new reader (another process): the index as this listing rewrote it, or as damaged.
    assert {run.id: _listed(run) for run in RunStoreReader(runs_dir).list_runs()} == expected
    for writer in live:
        writer.close()


def test_listing_needs_no_series_and_reads_them_once_asked(tmp_path):
    writer = make_run(tmp_path, epochs=3)
    [run] = list_runs(tmp_path)
    assert not run.complete and run.brief.history.epoch == [] and run.epochs_done == 3
    assert run.record.history.epoch == [1, 2, 3] and run.record.diagnostics is not None
    assert run.record is run.full().brief  # read once, then kept
    assert load_run(tmp_path, writer.run_id).complete


def _files_opened(monkeypatch, read):
    """The names of the files `read()` opens, and what it returned."""
    opened = []
    real_open = open

    def spying_open(path, *args, **kwargs):
        opened.append(Path(path).name)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", spying_open)
    try:
        return opened, read()
    finally:
        monkeypatch.setattr("builtins.open", real_open)


def _without_row(folder: Path) -> None:
    """listing.json as an older bntui wrote it: without the run's row."""
    listing = folder / "listing.json"
    stat = listing.stat()
    payload = json.loads(listing.read_bytes())
    del payload["listed"]
    listing.write_text(json.dumps(payload))
    os.utime(listing, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_a_listing_does_not_read_the_log_an_exact_listing_json_covers(tmp_path, monkeypatch):
    writer = make_run(tmp_path, epochs=3)
    _without_row(writer.path)  # the run state in listing.json, not the row: the folded log's path
    opened, [run] = _files_opened(monkeypatch, RunStoreReader(tmp_path).list_runs)
    assert run.epochs_done == 3 and run.status == "finished"
    assert "events.jsonl" not in opened and "listing.json" in opened and "summary.json" in opened


def test_an_ended_run_is_listed_from_the_row_its_writer_left_in_listing_json(tmp_path, monkeypatch):
    """A store's first listing (no index yet: a new store, another bntui's index) reads one
    file of each ended run, not its config.json and summary.json."""
    writer = make_run(tmp_path, epochs=3, seed=4)
    listed = json.loads((writer.path / "listing.json").read_bytes())["listed"]
    assert json.loads(listed["row"])[0] == writer.run_id
    opened, [run] = _files_opened(monkeypatch, RunStoreReader(tmp_path).list_runs)
    assert [name for name in opened if not name.startswith(".listing.")] == ["listing.json"]  # and the index
    assert run.status == "finished" and run.epochs_done == 3 and run.brief.config.seed == 4
    assert _listed(run) == _full_reads(tmp_path)[writer.run_id]


@pytest.mark.parametrize("changed", ["config.json", "summary.json", "events.jsonl"])
def test_the_row_in_listing_json_is_not_used_once_the_runs_files_changed(tmp_path, changed):
    writer = make_run(tmp_path, epochs=3)
    path = writer.path / changed
    if changed == "events.jsonl":
        with open(path, "ab") as handle:  # an epoch more than the row says
            handle.write(json.dumps(epoch_event(4).to_dict()).encode() + b"\n")
    else:
        payload = json.loads(path.read_bytes())
        if changed == "config.json":
            payload["group"] = "renamed"
        else:
            payload["status"] = "cancelled"
        path.write_text(json.dumps(payload))
    [run] = RunStoreReader(tmp_path).list_runs()
    assert _listed(run) == _full_reads(tmp_path)[writer.run_id]
    assert (run.group, run.status, run.epochs_done) == {
        "config.json": ("renamed", "finished", 3),
        "summary.json": (None, "cancelled", 3),
        "events.jsonl": (None, "finished", 4),
    }[changed]


def test_a_live_run_is_listed_from_listing_json_and_the_lines_after_it(tmp_path):
    writer = _live_run(tmp_path, 2)
    writer.write_event(progress_event(3, 24))  # after the last listing.json
    [run] = RunStoreReader(tmp_path).list_runs()
    assert run.live and run.epochs_done == 2 and run.totals.last_progress["step"] == 24
    writer.write_event(epoch_event(3))
    writer.close()


def test_a_read_only_runs_dir_lists_as_usual(tmp_path):
    make_run(tmp_path, epochs=2)
    os.chmod(tmp_path, 0o555)
    try:
        [run] = RunStoreReader(tmp_path).list_runs()
        assert run.status == "finished" and run.damaged is None and run.epochs_done == 2
    finally:
        os.chmod(tmp_path, 0o755)


def test_the_tui_watcher_reads_only_what_may_change_and_still_notices_everything(tmp_path, monkeypatch):
    from bntui.store.reader import reader_for
    from bntui.store.writer import remove_run
    from bntui.tui import store_watch

    monkeypatch.setattr(store_watch, "SWEEP_PER_POLL", 2)
    monkeypatch.setattr(store_watch, "RACY_SECONDS", -1e9)  # trust the runs dir's mtime at once
    ended = [make_run(tmp_path, epochs=1) for _ in range(6)]
    live = _live_run(tmp_path, 1)
    watcher = store_watch.StoreWatcher(tmp_path)
    changed, removed = watcher.poll()
    assert len(changed) == 7 and removed == []

    reader = reader_for(tmp_path)
    read = []
    real_read = reader._read
    monkeypatch.setattr(reader, "_read", lambda name, *a, **k: read.append(name) or real_read(name, *a, **k))
    assert watcher.poll() == ([], [])
    assert live.run_id in read and len(read) <= 1 + 2  # the live run, and two runs in turn, not 7

    live.write_event(epoch_event(2))
    [run], _ = watcher.poll()
    assert run.id == live.run_id and run.epochs_done == 2

    remove_run(ended[0].path)
    newcomer = make_run(tmp_path, epochs=1)
    changed, removed = watcher.poll()
    assert [run.id for run in changed] == [newcomer.run_id] and removed == [ended[0].run_id]

    (ended[3].path / "summary.json").write_text("{broken")  # edited by hand: seen in a sweep
    seen = []
    for _ in range(4):
        seen += [run.id for run in watcher.poll()[0]]
    assert seen == [ended[3].run_id]
    live.close()


def test_a_run_added_within_the_runs_dirs_mtime_tick_is_still_found(tmp_path):
    """A coarse mtime (NFS) may not change when a run is added right after a listing: the
    watcher lists again while the runs dir's mtime is that recent."""
    from bntui.tui.store_watch import StoreWatcher

    make_run(tmp_path, epochs=1)
    watcher = StoreWatcher(tmp_path)
    assert len(watcher.poll()[0]) == 1
    mtime = tmp_path.stat().st_mtime_ns
    newcomer = make_run(tmp_path, epochs=1)
    os.utime(tmp_path, ns=(mtime, mtime))  # as if in the same tick
    assert [run.id for run in watcher.poll()[0]] == [newcomer.run_id]


def test_a_listing_leaves_the_garbage_collector_as_it_found_it(tmp_path):
    """The listing pauses the collector and moves what it made to the oldest generation: on
    again afterwards, nothing left frozen (a long-lived TUI must still collect those objects)."""
    import gc

    make_run(tmp_path, epochs=2)
    assert gc.isenabled()
    RunStoreReader(tmp_path).list_runs()
    assert gc.isenabled() and gc.get_freeze_count() == 0
    gc.disable()
    try:
        RunStoreReader(tmp_path).list_runs()
        assert not gc.isenabled()  # a caller that turned it off keeps it off
    finally:
        gc.enable()
