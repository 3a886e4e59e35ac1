"""RunWriter: the store layout, crash safety, a full disk, concurrent writers."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bntui.config import RunConfig
from bntui.engine.events import event_from_dict
from bntui.store import RunWriter, StoreError, StoreWriteError, list_runs, load_run
from bntui.store import layout as layout_module
from bntui.store import writer as writer_module
from bntui.store.schema import RUN_ID_PATTERN
from bntui.store.writer import reserve_folder

from storehelpers import (
    dead_pid,
    epoch_event,
    finished_event,
    make_run,
    progress_event,
    set_owner,
    started,
    write_events,
)


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_layout_of_a_finished_run(tmp_path):
    writer = make_run(tmp_path, epochs=3, group="g-launch", seed=7, bn=False)
    folder = writer.path
    assert folder.parent == tmp_path
    assert RUN_ID_PATTERN.match(writer.run_id)
    assert "-mnist-mini-mlp-nobn-s7-" in writer.run_id
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "events.jsonl",
        "heartbeat",
        "listing.json",
        "summary.json",
    ]

    config = json.loads((folder / "config.json").read_text())
    assert config["id"] == writer.run_id
    assert config["group"] == "g-launch"
    assert config["config"]["seed"] == 7
    assert config["owner"]["pid"] == os.getpid()
    # RunStarted's device facts reach config.json (second atomic write).
    assert config["environment"]["device_name"] == "Test CPU"
    assert config["environment"]["torch"] == "9.9.9"
    assert config["environment"]["python"]

    lines = read_lines(folder / "events.jsonl")
    kinds = [line["type"] for line in lines]
    assert kinds[0] == "started" and kinds[-1] == "finished"
    assert kinds.count("epoch") == 3
    for line in lines:
        event_from_dict(line)  # every line is a valid event

    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "finished"
    assert summary["final"]["test_accuracy"] == 0.87
    assert summary["timings"]["steps"] == 30
    assert summary["epochs_done"] == 3
    assert summary["split_hash"] == "split-abc"


@pytest.mark.parametrize("status", ["cancelled", "failed", "diverged"])
def test_finish_without_a_terminal_event_appends_one(tmp_path, status):
    writer = RunWriter(tmp_path, RunConfig(epochs=3))
    write_events(writer, 2)
    writer.finish(status, "why it stopped")
    assert read_lines(writer.events_path)[-1]["type"] == status
    run = load_run(tmp_path, writer.run_id)
    assert run.status == status
    assert run.epochs_done == 2
    if status != "cancelled":
        assert run.record.message == "why it stopped"


def test_context_manager_records_an_exception_as_failed(tmp_path):
    with pytest.raises(RuntimeError):
        with RunWriter(tmp_path, RunConfig()) as writer:
            writer.write_event(epoch_event(1))
            raise RuntimeError("boom")
    run = load_run(tmp_path, writer.run_id)
    assert run.status == "failed"
    assert "boom" in run.record.message


def test_context_manager_uses_the_terminal_event(tmp_path):
    with RunWriter(tmp_path, RunConfig(epochs=1)) as writer:
        write_events(writer, 1)
        writer.write_event(finished_event(1))
    assert load_run(tmp_path, writer.run_id).status == "finished"


def test_no_events_after_finish(tmp_path):
    writer = make_run(tmp_path, epochs=1)
    with pytest.raises(StoreError, match="already finished"):
        writer.write_event(epoch_event(2))


def test_heartbeat_is_touched_at_progress(tmp_path):
    writer = RunWriter(tmp_path, RunConfig())
    heartbeat = writer.path / "heartbeat"
    os.utime(heartbeat, (1_000_000, 1_000_000))
    writer.write_event(progress_event(1, 4))
    assert heartbeat.stat().st_mtime > 1_000_000


def test_folder_collision_takes_the_next_candidate(tmp_path):
    (tmp_path / "taken").mkdir()
    run_id, path = reserve_folder(tmp_path, lambda attempt: ["taken", "taken", "free"][attempt])
    assert run_id == "free" and path.is_dir()


def test_same_generated_id_twice_gives_two_folders(tmp_path, monkeypatch):
    drawn = iter(["run-aaaa", "run-aaaa", "run-bbbb"])  # the second writer draws a taken id
    monkeypatch.setattr(writer_module, "new_run_id", lambda config, when: next(drawn))
    first = RunWriter(tmp_path, RunConfig())
    second = RunWriter(tmp_path, RunConfig())
    assert (first.run_id, second.run_id) == ("run-aaaa", "run-bbbb")
    assert json.loads((second.path / "config.json").read_text())["id"] == "run-bbbb"


def test_concurrent_writer_threads_keep_separate_intact_folders(tmp_path):
    events_per_run = 400
    writers: list[RunWriter] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def work(seed: int) -> None:
        start.wait()
        writer = RunWriter(tmp_path, RunConfig(seed=seed, epochs=events_per_run // 100))
        with lock:
            writers.append(writer)
        writer.write_event(started(events_per_run // 100))
        for step in range(1, events_per_run + 1):
            epoch = (step - 1) // 100 + 1
            writer.write_event(progress_event(epoch, step))
            if step % 100 == 0:
                writer.write_event(epoch_event(epoch))
        writer.finish("cancelled")

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len({w.path for w in writers}) == 4
    runs = list_runs(tmp_path)
    assert len(runs) == 4
    for run in runs:
        assert run.damaged is None
        assert run.status == "cancelled"
        assert len(run.record.progress) == events_per_run
        assert run.record.progress.step == list(range(1, events_per_run + 1))
        assert run.epochs_done == events_per_run // 100
    assert {run.record.config.seed for run in runs} == {0, 1, 2, 3}


_WRITER_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[3])
from bntui.config import RunConfig
from bntui.store import RunWriter
from storehelpers import write_events, terminal_event
writer = RunWriter(sys.argv[1], RunConfig(seed=int(sys.argv[2]), epochs=30))
write_events(writer, 30, progress_per_epoch=5)
writer.write_event(terminal_event("finished", 30))
writer.finish()
print(writer.run_id)
"""


def test_concurrent_writer_processes(tmp_path):
    tests_dir = str(Path(__file__).parents[1])  # its helper modules
    repo = str(Path(__file__).parents[2])
    env = {**os.environ, "PYTHONPATH": repo + os.pathsep + os.environ.get("PYTHONPATH", "")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER_SCRIPT, str(tmp_path), str(seed), tests_dir],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for seed in range(3)
    ]
    ids = [proc.communicate()[0].strip() for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    assert len(set(ids)) == 3
    runs = {run.id: run for run in list_runs(tmp_path)}
    assert set(runs) == set(ids)
    for run in runs.values():
        assert run.damaged is None and run.status == "finished"
        assert run.epochs_done == 30
        assert len(run.record.progress) == 150


def _failing_write_all(after_bytes: int):
    """A write_all that writes part of the data, then fails as a full disk does."""

    def write_all(fd: int, data: bytes) -> None:
        os.write(fd, data[:after_bytes])
        raise OSError(errno.ENOSPC, "No space left on device")

    return write_all


def test_full_disk_on_append_keeps_what_is_on_disk(tmp_path, monkeypatch):
    writer = RunWriter(tmp_path, RunConfig(epochs=5))
    write_events(writer, 2)
    before = writer.events_path.read_bytes()

    monkeypatch.setattr(writer_module, "write_all", _failing_write_all(7))
    with pytest.raises(StoreWriteError) as caught:
        writer.write_event(epoch_event(3))
    message = str(caught.value)
    assert "\n" not in message
    assert str(writer.events_path) in message and "no space left on device" in message
    # The half-written line was rolled back: the file is exactly what it was.
    assert writer.events_path.read_bytes() == before

    monkeypatch.undo()  # space is back: the run goes on with whole lines
    writer.write_event(epoch_event(3))
    run = load_run(tmp_path, writer.run_id)
    assert run.damaged is None
    assert run.record.history.epoch == [1, 2, 3]


def test_full_disk_on_summary_keeps_the_events(tmp_path, monkeypatch):
    writer = RunWriter(tmp_path, RunConfig(epochs=2))
    write_events(writer, 2)
    writer.write_event(finished_event(2))
    events = writer.events_path.read_bytes()

    monkeypatch.setattr(layout_module, "write_all", _failing_write_all(10))
    with pytest.raises(StoreWriteError, match="summary.json: no space left on device"):
        writer.finish()
    monkeypatch.undo()
    assert not writer.summary_path.exists()
    assert [p.name for p in writer.path.iterdir() if p.name.startswith(".")] == []  # no temp left
    assert writer.events_path.read_bytes() == events
    # The terminal event was fsync'd before: once the writer is gone the run reads as finished.
    set_owner(writer.path, pid=dead_pid())
    run = load_run(tmp_path, writer.run_id)
    assert run.status == "finished" and run.epochs_done == 2


def test_full_disk_when_creating_the_run_leaves_no_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(layout_module, "write_all", _failing_write_all(3))
    with pytest.raises(StoreWriteError, match="config.json: no space left on device"):
        RunWriter(tmp_path, RunConfig())
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_keeps_the_old_file_when_it_fails(tmp_path, monkeypatch):
    target = tmp_path / "config.json"
    layout_module.atomic_write_bytes(target, b'{"old": true}\n')
    monkeypatch.setattr(layout_module, "write_all", _failing_write_all(4))
    with pytest.raises(StoreWriteError):
        layout_module.atomic_write_bytes(target, b'{"new": true}\n')
    assert target.read_bytes() == b'{"old": true}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_runs_dir_that_is_a_file(tmp_path):
    blocker = tmp_path / "runs"
    blocker.write_text("not a folder")
    with pytest.raises(StoreWriteError) as caught:
        RunWriter(blocker, RunConfig())
    assert str(caught.value) == f"runs dir {blocker} is a file, not a folder"
    assert blocker.read_text() == "not a folder"


def test_runs_dir_under_a_file_names_the_file(tmp_path):
    blocker = tmp_path / "data"
    blocker.write_text("not a folder")
    with pytest.raises(StoreWriteError) as caught:
        RunWriter(blocker / "bntui" / "runs", RunConfig())
    assert str(caught.value) == f"runs dir {blocker / 'bntui' / 'runs'}: {blocker} is a file, not a folder"


def test_model_weights_round_trip_weights_only(tmp_path):
    torch = pytest.importorskip("torch")
    from bntui.store import load_model_state

    writer = RunWriter(tmp_path, RunConfig())
    state = {"layer.weight": torch.arange(6.0).reshape(2, 3)}
    writer.save_model(state)
    writer.finish("cancelled")
    run = load_run(tmp_path, writer.run_id)
    loaded = load_model_state(run)
    assert torch.equal(loaded["layer.weight"], state["layer.weight"])


def test_model_file_with_code_is_refused(tmp_path):
    torch = pytest.importorskip("torch")
    from bntui.store import load_model_state

    writer = make_run(tmp_path, epochs=1)

    class Sneaky:
        def __reduce__(self):
            return (print, ("pickled code ran",))

    torch.save({"x": Sneaky()}, writer.path / "model.pt")
    with pytest.raises(StoreError, match="cannot load the model"):
        load_model_state(load_run(tmp_path, writer.run_id))


def test_summary_is_strict_json_and_events_keep_the_constants_older_readers_expect(tmp_path):
    from bntui.store.schema import RunRecord
    from bntui.store.writer import write_record

    nan = float("nan")
    record = RunRecord.model_validate(
        {
            "id": "r",
            "status": "finished",
            "config": {"dataset": "mnist-mini"},
            "history": {
                "epoch": [1],
                "train_loss": [nan],
                "val_loss": [float("inf")],
                "train_accuracy": [0.1],
                "val_accuracy": [0.1],
            },
            "final": {
                "train_loss": nan,
                "train_accuracy": 0.1,
                "val_loss": float("inf"),
                "val_accuracy": 0.1,
                "test_loss": float("-inf"),
                "test_accuracy": 0.1,
            },
        }
    )
    write_record(tmp_path, record, candidates=lambda attempt: "r")

    def refuse(constant):
        raise ValueError(constant)

    summary = json.loads((tmp_path / "r" / "summary.json").read_text(), parse_constant=refuse)
    assert summary["final"]["train_loss"] == "NaN" and summary["final"]["test_loss"] == "-Infinity"
    assert "NaN" in (tmp_path / "r" / "events.jsonl").read_text()  # bare, as ever
    final = load_run(tmp_path, "r").record.final
    assert final.val_loss == float("inf") and final.test_loss == float("-inf")

    # a summary.json written by an older bntui, with bare constants, still reads
    path = tmp_path / "r" / "summary.json"
    path.write_text(path.read_text().replace('"NaN"', "NaN").replace('"-Infinity"', "-Infinity"))
    reader_final = load_run(tmp_path, "r").record.final
    assert reader_final.test_loss == float("-inf") and reader_final.train_loss != reader_final.train_loss


@pytest.mark.parametrize(
    ("fields", "tag"),
    [
        ({}, "bn"),
        ({"bn": False}, "nobn"),
        ({"norm": "group"}, "gn"),
        ({"norm": "layer"}, "ln"),
        ({"norm": "renorm"}, "brn"),
        ({"norm": "ghost"}, "gbn"),
        ({"norm": "ghost", "bn": False}, "nobn"),
    ],
)
def test_run_ids_name_the_norm(fields, tag):
    from datetime import datetime

    run_id = writer_module.new_run_id(RunConfig(seed=4, **fields), datetime(2026, 1, 2, 3, 4, 5))
    assert run_id.startswith(f"20260102-030405-mnist-mini-mlp-{tag}-s4-")


def test_the_writer_and_the_reader_fold_events_with_the_one_reducer(tmp_path):
    """What the writer knows of its run (for summary.json) is what any reader rebuilds from
    events.jsonl: one RunState, fed the same lines."""
    import dataclasses

    from bntui.store.reader import reader_for
    from bntui.store.run_state import RunState
    from storehelpers import make_run

    writer = make_run(tmp_path, epochs=3, status="cancelled")
    reader = reader_for(tmp_path)
    reader.list_runs()[0].full()
    log = reader._cache[writer.run_id].log
    for spec in dataclasses.fields(RunState):
        assert getattr(writer.state, spec.name) == getattr(log, spec.name), spec.name
    assert writer.state.epochs_done == 3 and writer.state.diagnostics and writer.state.terminal.kind == "cancelled"
