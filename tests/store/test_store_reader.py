"""Reading the store: damaged runs, crashed detection, whole lines only, lookups, caching."""

from __future__ import annotations

import json
import os
import threading

import pytest

from bntui.config import RunConfig
from bntui.store import (
    AmbiguousRun,
    RunNotFound,
    RunStoreReader,
    RunWriter,
    StoreError,
    list_runs,
    load_run,
    runs_in_group,
)
from bntui.store.owner import process_start_ticks

from storehelpers import (
    dead_pid,
    epoch_event,
    make_run,
    progress_event,
    set_mtime,
    set_owner,
)


def open_run(runs_dir, epochs=2, **config) -> RunWriter:
    """A run still being written by this (alive) process."""
    return make_run(runs_dir, epochs=epochs, status=None, **config)


def kill_owner(writer: RunWriter) -> None:
    writer.close()
    set_owner(writer.path, pid=dead_pid())


# -- statuses ----------------------------------------------------------------------------------


def test_finished_run_reads_back(tmp_path):
    writer = make_run(tmp_path, epochs=3, group="g1")
    [run] = list_runs(tmp_path)
    assert run.id == writer.run_id and run.path == writer.path
    assert (run.status, run.damaged, run.live) == ("finished", None, False)
    record = run.record
    assert record.history.epoch == [1, 2, 3]
    assert record.history.step == [10, 20, 30]
    assert len(record.progress) == 6
    assert [p["step"] for p in record.diagnostics.points] == [10, 20, 30]
    assert record.final.test_accuracy == 0.87
    assert record.environment.device_name == "Test CPU"
    assert record.split_hash == "split-abc"
    assert run.group == record.group == "g1"
    assert run.best_val_loss == min(record.history.val_loss)


def test_open_run_of_a_live_process_is_running(tmp_path):
    writer = open_run(tmp_path)
    run = load_run(tmp_path, writer.run_id)
    assert (run.status, run.live, run.damaged) == ("running", True, None)
    assert run.epochs_done == 2


def test_dead_owner_means_crashed_with_its_epochs(tmp_path):
    writer = open_run(tmp_path, epochs=3)
    kill_owner(writer)
    run = load_run(tmp_path, writer.run_id)
    assert (run.status, run.live, run.damaged) == ("crashed", False, None)
    assert run.record.history.epoch == [1, 2, 3]
    assert run.record.final is None


def test_reused_pid_is_not_the_owner(tmp_path):
    """Our own pid, but a different process start time: the pid was reused -> crashed."""
    if process_start_ticks(os.getpid()) is None:
        pytest.skip("needs /proc")
    writer = open_run(tmp_path)
    writer.close()
    set_owner(writer.path, start_ticks=process_start_ticks(os.getpid()) + 1)
    assert load_run(tmp_path, writer.run_id).status == "crashed"


def test_previous_boot_is_not_alive(tmp_path):
    writer = open_run(tmp_path)
    writer.close()
    data = json.loads((writer.path / "config.json").read_text())
    if not data["owner"]["boot_id"]:
        pytest.skip("no boot id on this platform")
    set_owner(writer.path, boot_id="another-boot")
    assert load_run(tmp_path, writer.run_id).status == "crashed"


def test_owner_on_another_host_is_judged_by_its_heartbeat(tmp_path):
    writer = open_run(tmp_path)
    writer.close()
    set_owner(writer.path, host="some-other-host", pid=1)
    assert load_run(tmp_path, writer.run_id).status == "running"  # heartbeat just touched
    set_mtime(writer.path / "heartbeat", seconds_ago=600)
    assert load_run(tmp_path, writer.run_id).status == "crashed"


def test_terminal_event_without_summary_gives_the_status(tmp_path):
    writer = make_run(tmp_path, epochs=2, status="diverged")
    (writer.path / "summary.json").unlink()
    set_owner(writer.path, pid=dead_pid())
    run = load_run(tmp_path, writer.run_id)
    assert run.status == "diverged"
    assert run.record.message == "loss is nan"


# -- whole lines only ----------------------------------------------------------------------------


def test_partial_last_line_is_ignored_while_running(tmp_path):
    writer = open_run(tmp_path, epochs=2)
    line = json.dumps(epoch_event(3).to_dict())
    with open(writer.events_path, "a") as handle:
        handle.write(line[:20])  # the writer is in the middle of a line
    run = load_run(tmp_path, writer.run_id)
    assert (run.status, run.damaged) == ("running", None)
    assert run.epochs_done == 2

    with open(writer.events_path, "a") as handle:
        handle.write(line[20:] + "\n")  # ... and completes it
    assert load_run(tmp_path, writer.run_id).epochs_done == 3


def test_truncated_last_line_of_a_crashed_run_is_damage_but_keeps_the_prefix(tmp_path):
    writer = open_run(tmp_path, epochs=2)
    with open(writer.events_path, "a") as handle:
        handle.write('{"type": "epoch", "epo')
    kill_owner(writer)
    run = load_run(tmp_path, writer.run_id)
    assert run.status == "crashed"
    assert run.damaged == "truncated last line in events.jsonl"
    assert run.record.history.epoch == [1, 2]


def test_reader_during_writing_sees_whole_lines_only(tmp_path):
    writer = RunWriter(tmp_path, RunConfig(epochs=50))
    total = 3000
    done = threading.Event()

    def write() -> None:
        for step in range(1, total + 1):
            writer.write_event(progress_event(step // 60 + 1, step))
            if step % 60 == 0:
                writer.write_event(epoch_event(step // 60))
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    reader = RunStoreReader(tmp_path)
    seen = []
    while not done.is_set() or not seen or len(seen[-1].record.progress) < total:
        run = reader.list_runs()[0].full()  # the series as read now: a snapshot of its own
        assert run.damaged is None, run.damaged
        steps = run.record.progress.step
        assert steps == list(range(1, len(steps) + 1))  # a prefix, never a torn line
        assert run.record.history.epoch == list(range(1, run.epochs_done + 1))
        seen.append(run)
    thread.join()
    assert len(seen[-1].record.progress) == total
    # A fresh reader (no incremental state) agrees with the incremental one.
    assert RunStoreReader(tmp_path).list_runs()[0].record == seen[-1].record


# -- damaged runs --------------------------------------------------------------------------------


def test_corrupt_line_in_the_middle_keeps_the_valid_prefix(tmp_path):
    writer = make_run(tmp_path, epochs=3)
    lines = writer.events_path.read_text().splitlines(keepends=True)
    first_epoch = next(i for i, line in enumerate(lines) if '"type":"epoch"' in line)
    lines[first_epoch + 1] = "{not json\n"
    writer.events_path.write_text("".join(lines))
    run = load_run(tmp_path, writer.run_id)
    assert run.damaged.startswith(f"events.jsonl line {first_epoch + 2}: not valid JSON")
    assert run.record.history.epoch == [1]
    assert run.status == "finished"  # summary.json still says how it ended


def test_event_with_wrong_field_types_is_damage(tmp_path):
    writer = make_run(tmp_path, epochs=1)
    with open(writer.events_path, "a") as handle:
        handle.write('{"type": "epoch", "epoch": "two", "train_loss": 1}\n')
    run = load_run(tmp_path, writer.run_id)
    assert "epoch" in run.damaged and "line" in run.damaged
    assert run.epochs_done == 1


def test_unknown_event_types_are_skipped(tmp_path):
    writer = open_run(tmp_path, epochs=1)
    with open(writer.events_path, "a") as handle:
        handle.write('{"type": "from-the-future", "x": 1}\n')
    writer.write_event(epoch_event(2))
    run = load_run(tmp_path, writer.run_id)
    assert run.damaged is None and run.epochs_done == 2


def test_corrupt_config_still_lists_the_run(tmp_path):
    bad = make_run(tmp_path, epochs=2)
    good = make_run(tmp_path, epochs=1)
    (bad.path / "config.json").write_text("{ this is not json")
    runs = {run.id: run for run in list_runs(tmp_path)}
    assert set(runs) == {bad.run_id, good.run_id}
    assert runs[bad.run_id].damaged.startswith("config.json is not valid JSON")
    assert runs[bad.run_id].record is None
    assert runs[good.run_id].damaged is None


def test_unknown_schema_version_is_damage_but_readable(tmp_path):
    writer = make_run(tmp_path, epochs=2)
    path = writer.path / "config.json"
    data = json.loads(path.read_text())
    data["schema_version"] = 99
    path.write_text(json.dumps(data))
    run = load_run(tmp_path, writer.run_id)
    assert "config.json: schema_version 99 is not supported" in run.damaged
    assert run.record.history.epoch == [1, 2]


def test_invalid_config_values_are_named(tmp_path):
    writer = make_run(tmp_path, epochs=1)
    path = writer.path / "config.json"
    data = json.loads(path.read_text())
    data["config"]["lr"] = -1
    path.write_text(json.dumps(data))
    run = load_run(tmp_path, writer.run_id)
    assert "config.json: config.lr" in run.damaged
    assert run.record is None


def test_corrupt_summary_falls_back_to_the_events(tmp_path):
    writer = make_run(tmp_path, epochs=2, status="failed")
    (writer.path / "summary.json").write_text("[1, 2")
    set_owner(writer.path, pid=dead_pid())
    run = load_run(tmp_path, writer.run_id)
    assert run.damaged.startswith("summary.json is not valid JSON")
    assert run.status == "failed" and run.epochs_done == 2


@pytest.mark.parametrize("missing", ["config.json", "events.jsonl"])
def test_missing_files_are_named(tmp_path, missing):
    writer = make_run(tmp_path, epochs=2)
    (writer.path / missing).unlink()
    run = load_run(tmp_path, writer.run_id)
    assert f"{missing} missing" in run.damaged


def test_folders_that_are_not_runs(tmp_path):
    make_run(tmp_path, epochs=1)
    (tmp_path / "empty-folder").mkdir()  # being created: not listed yet
    (tmp_path / ".stage-x").mkdir()  # hidden: staging / trash
    (tmp_path / "stray-file.txt").write_text("hello")
    (tmp_path / "odd folder").mkdir()
    (tmp_path / "odd folder" / "notes.txt").write_text("x")
    runs = {run.id: run for run in list_runs(tmp_path)}
    assert len(runs) == 2
    assert runs["odd folder"].damaged == "config.json missing"
    assert runs["odd folder"].status == "crashed"


def test_missing_runs_dir_is_an_empty_store(tmp_path):
    assert list_runs(tmp_path / "nothing-here") == []


def test_runs_dir_that_is_a_file_is_a_clear_error(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(StoreError) as caught:
        list_runs(path)
    assert str(caught.value) == f"runs dir {path} is a file, not a folder"


# -- lookups, groups, cache ------------------------------------------------------------------------


def test_lookup_by_id_and_unique_prefix(tmp_path):
    a = make_run(tmp_path, epochs=1, seed=1)
    b = make_run(tmp_path, epochs=1, seed=2)
    assert load_run(tmp_path, a.run_id).id == a.run_id
    common = os.path.commonprefix([a.run_id, b.run_id])
    assert load_run(tmp_path, b.run_id[: len(common) + 1]).id == b.run_id
    with pytest.raises(AmbiguousRun, match="matches 2 runs"):
        load_run(tmp_path, common)
    with pytest.raises(RunNotFound, match="no run 'zzz'"):
        load_run(tmp_path, "zzz")
    with pytest.raises(RunNotFound):
        load_run(tmp_path, "")


def test_exact_id_wins_over_a_longer_one(tmp_path):
    a = make_run(tmp_path, epochs=1)
    (tmp_path / (a.run_id + "-import2")).mkdir()
    (tmp_path / (a.run_id + "-import2") / "events.jsonl").write_text("")
    assert load_run(tmp_path, a.run_id).id == a.run_id


def test_listing_is_sorted_by_creation_and_groups_filter(tmp_path):
    writers = [make_run(tmp_path, epochs=1, seed=s, group="gA" if s % 2 else None) for s in range(4)]
    runs = list_runs(tmp_path)
    assert [run.id for run in runs] == [w.run_id for w in writers]
    assert [run.record.config.seed for run in runs_in_group(runs, "gA")] == [1, 3]


def test_unchanged_runs_come_back_as_the_same_objects(tmp_path):
    make_run(tmp_path, epochs=1)
    writer = open_run(tmp_path, epochs=1)
    reader = RunStoreReader(tmp_path)
    first = reader.list_runs()
    second = reader.list_runs()
    assert all(a is b for a, b in zip(first, second))
    writer.write_event(epoch_event(2))
    third = reader.list_runs()
    assert third[0] is first[0]  # the finished run was not parsed again
    assert third[1] is not first[1] and third[1].epochs_done == 2


def test_rewritten_events_file_is_read_again(tmp_path):
    writer = make_run(tmp_path, epochs=3)
    reader = RunStoreReader(tmp_path)
    assert reader.list_runs()[0].epochs_done == 3
    lines = writer.events_path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if '"epoch":3,' not in line or '"type":"epoch"' not in line]
    writer.events_path.write_text("".join(kept))
    assert reader.list_runs()[0].epochs_done == 2


def test_imported_runs_without_optional_history_read_back(tmp_path):
    writer = make_run(tmp_path, epochs=2)
    lines = [json.loads(line) for line in writer.events_path.read_text().splitlines()]
    for line in lines:
        if line["type"] == "epoch":
            del line["epoch_seconds"], line["step"], line["elapsed"]
    writer.events_path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    run = load_run(tmp_path, writer.run_id)
    assert run.damaged is None
    assert run.record.history.epoch == [1, 2]
    assert run.record.history.epoch_seconds == []


def test_same_length_rewrite_is_noticed(tmp_path):
    writer = make_run(tmp_path, epochs=2)
    reader = RunStoreReader(tmp_path)
    before = reader.list_runs()[0]
    text = writer.events_path.read_text()
    changed = text.replace('"val_accuracy":0.55,', '"val_accuracy":0.66,', 1)
    assert changed != text and len(changed) == len(text)
    writer.events_path.write_text(changed)
    os.utime(writer.events_path, ns=(1, writer.events_path.stat().st_mtime_ns + 10**9))
    after = reader.list_runs()[0]
    assert after is not before
    assert after.record.history.val_accuracy[0] == 0.66
