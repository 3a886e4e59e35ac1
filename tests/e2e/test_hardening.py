"""Issue 12: one test (or a few) per kind of hostile input, each failing before its fix.

The table of single inputs and the one line each must produce is tests/e2e/test_adversarial.py;
this file holds the checks that need more than one line of setup (folders outside the store,
child processes, terminal sizes)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bntui.settings import SettingsValueError, load_settings
from bntui.store import StoreError, list_runs, remove_run

from storehelpers import make_run


# -- 1. deleting what is not a run ---------------------------------------------------------------


@pytest.mark.parametrize("source", ["flag", "env", "file"])
@pytest.mark.parametrize("key", ["runs_dir", "data_dir"])
def test_an_empty_folder_setting_is_an_error_wherever_it_comes_from(source, key, monkeypatch, tmp_path):
    config = tmp_path / "config.toml"
    monkeypatch.setenv("BNTUI_CONFIG_FILE", str(config))
    monkeypatch.delenv(f"BNTUI_{key.upper()}", raising=False)
    overrides = {}
    if source == "flag":
        overrides[key] = ""
    elif source == "env":
        monkeypatch.setenv(f"BNTUI_{key.upper()}", "")
    else:
        config.write_text(f'{key} = ""\n')
    with pytest.raises(SettingsValueError, match="must not be empty"):
        load_settings(**overrides)


def test_rm_removes_only_folders_the_store_created(tmp_path, monkeypatch, capsys):
    runs_dir = tmp_path / "runs"
    run = make_run(runs_dir, epochs=1)
    mine = runs_dir / "photos"  # the runs dir pointed at a folder of other things
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"\xff\xd8")
    impostor = runs_dir / "impostor"  # a config.json naming another run
    impostor.mkdir()
    (impostor / "config.json").write_text(json.dumps({"id": run.run_id}))
    listed = {r.id: r for r in list_runs(runs_dir)}
    assert {"photos", "impostor"} <= set(listed)  # still listed, as damaged

    from bntui.cli import main

    monkeypatch.setattr("sys.stdin", open(os.devnull))
    status = main(["rm", "--yes", "--runs-dir", str(runs_dir), "photos", "impostor"])
    err = capsys.readouterr().err
    assert status == 1
    assert (mine / "holiday.jpg").exists() and (impostor / "config.json").exists()
    assert [line for line in err.splitlines() if line] == [
        f"bntui: error: not removed: {mine} holds no readable config.json: not a run bntui can "
        "prove it created (remove it by hand if it is yours)",
        f"bntui: error: not removed: {impostor}: its config.json does not name this folder: not a "
        "run bntui created (remove it by hand if it is yours)",
    ]
    from bntui.store import is_store_run

    assert is_store_run(run.path)
    remove_run(run.path)
    assert not run.path.exists()


def test_remove_run_refuses_a_link_to_a_run(tmp_path):
    run = make_run(tmp_path / "elsewhere", epochs=1)
    link = tmp_path / "runs" / run.run_id
    link.parent.mkdir()
    link.symlink_to(run.path)
    with pytest.raises(StoreError, match="not a run folder"):
        remove_run(link)
    assert run.path.is_dir()


# -- 2. running code from the working folder ------------------------------------------------------

BAIT_MODULES = ("torch", "numpy", "json", "runpy", "bntui")


def modules_run_from(folder: Path, command: list[str], stdin: str = "") -> list[str]:
    """Run `command` in `folder`, which is first filled with modules named like the ones a
    bntui child imports (torch.py, json.py, a bntui/ package...), each leaving a mark when it
    runs; the names of those that ran. Any helper process's command line can be checked so."""
    marks = folder / ".marks"
    marks.mkdir()
    for name in BAIT_MODULES:
        bait = f"open({str(marks / name)!r}, 'w').close()\n"
        if name == "bntui":
            (folder / "bntui").mkdir()
            (folder / "bntui" / "__init__.py").write_text(bait)
        else:
            (folder / f"{name}.py").write_text(bait)
    subprocess.run(command, cwd=folder, input=stdin, capture_output=True, text=True, timeout=300)
    return sorted(path.name for path in marks.iterdir())


def test_the_bait_works_on_a_plain_python_command(tmp_path):
    # the check itself can fail: plain `python -c` does import from the working folder
    assert modules_run_from(tmp_path, [sys.executable, "-c", "import json"]) == ["json"]


@pytest.mark.parametrize("pretend_310", [False, True], ids=["3.11+ (-P)", "3.10 (path pop)"])
def test_python_command_keeps_the_working_folder_off_the_path(pretend_310, tmp_path, monkeypatch):
    from bntui import child_python

    if pretend_310:
        monkeypatch.setattr(child_python.sys, "version_info", (3, 10, 13))
        code = child_python.python_command("-c", "import json, runpy")
        module = child_python.python_command("-m", "json.tool")
        monkeypatch.undo()
    else:
        code = child_python.python_command("-c", "import json, runpy")
        module = child_python.python_command("-m", "json.tool")
    (tmp_path / "c").mkdir()
    (tmp_path / "m").mkdir()
    assert modules_run_from(tmp_path / "c", code) == []
    assert modules_run_from(tmp_path / "m", module, stdin="{}") == []


def test_the_device_probe_never_imports_from_the_working_folder(tmp_path):
    from bntui.tui.devices import detect_command

    assert modules_run_from(tmp_path, detect_command()) == []


@pytest.mark.parametrize("module", ["bntui.runs.scheduler", "bntui.runs.trainer"])
def test_the_scheduler_and_trainer_never_import_from_the_working_folder(tmp_path, module):
    from bntui.runs.detach import module_command

    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    bait = tmp_path / "work"
    bait.mkdir()
    args = (runs_dir,) if module.endswith("scheduler") else (runs_dir, "00000000000000001-gone.json")
    assert modules_run_from(bait, module_command(module, *args)) == []


# -- 3. one bad file never takes the store offline -------------------------------------------------

STORE_FILES = ("config.json", "summary.json", "events.jsonl")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


def hostile_json(draw_value) -> bytes:
    return json.dumps(draw_value).encode()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    file=st.sampled_from(STORE_FILES),
    content=st.one_of(
        json_values.map(lambda v: json.dumps(v).encode()),
        # a valid file with one value replaced: the shapes a reader has to expect
        st.tuples(
            st.sampled_from(
                ["epoch", "step", "time", "created", "schema_version", "elapsed", "status", "id", "layers", "final"]
            ),
            json_values,
        ),
        st.sampled_from(
            [b"[" * 100_000, b"1" * 5000, b'{"a": ' * 70 + b"1" + b"}" * 70, b"\xff\xfe", b"", b"\x00" * 100]
        ),
    ),
)
def test_any_content_of_any_store_file_damages_only_its_run(tmp_path_factory, file, content):
    runs_dir = tmp_path_factory.mktemp("runs")
    good = make_run(runs_dir, epochs=2)
    bad = make_run(runs_dir, epochs=2)
    path = bad.path / file
    if isinstance(content, tuple):  # replace `key` wherever it occurs in the file's JSON
        key, value = content
        if file == "events.jsonl":
            lines = path.read_bytes().splitlines()
            content = b"".join(json.dumps(_replace(json.loads(line), key, value)).encode() + b"\n" for line in lines)
        else:
            content = json.dumps(_replace(json.loads(path.read_bytes()), key, value)).encode()
    path.write_bytes(content)

    runs = {run.id: run for run in list_runs(runs_dir)}  # never raises

    assert runs[good.run_id].damaged is None
    shown = runs[bad.run_id]
    if shown.damaged is not None:
        assert file in shown.damaged, shown.damaged
    # whatever it holds, a listed run can be printed, exported and shown
    from bntui.store import export_document, export_text

    export_text(export_document(list(runs.values())))
    shown.overview()


def test_the_store_watcher_outlives_any_error_and_recovers(tmp_path, monkeypatch):
    from bntui.tui.store_watch import StoreWatcher

    run = make_run(tmp_path / "runs", epochs=1)
    watcher = StoreWatcher(tmp_path / "runs")

    def broken(_runs_dir):
        raise RecursionError("maximum recursion depth exceeded")

    with monkeypatch.context() as patched:
        patched.setattr("bntui.store.list_runs", broken)
        with pytest.raises(StoreError, match="unexpected RecursionError"):  # reported like a runs dir problem
            watcher.poll()
    changed, removed = watcher.poll()
    assert [r.id for r in changed] == [run.run_id] and removed == []


def _replace(data, key, value):
    if isinstance(data, dict):
        return {k: (value if k == key else _replace(v, key, value)) for k, v in data.items()}
    if isinstance(data, list):
        return [_replace(v, key, value) for v in data]
    return data


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (
            b'{"type": "progress", "epoch": 1, "step": ' + b"1" * 5000 + b"}\n",
            "events.jsonl line 1: not usable JSON (a number of more than 4300 digits)",
        ),
        (b"[" * 100_000 + b"\n", "events.jsonl line 1: not usable JSON (nested deeper than 64 levels)"),
    ],
    ids=["5000 digits", "100000 levels"],
)
def test_a_hostile_events_line_names_the_file_and_line(tmp_path, content, reason):
    run = make_run(tmp_path / "runs", epochs=1)
    (run.path / "events.jsonl").write_bytes(content)
    [shown] = list_runs(tmp_path / "runs")
    assert shown.damaged is not None and shown.damaged.startswith(reason), shown.damaged


def test_a_timestamp_in_year_1_damages_one_run_instead_of_every_listing(tmp_path, capsys):
    runs_dir = tmp_path / "runs"
    good, bad = make_run(runs_dir, epochs=1), make_run(runs_dir, epochs=1)
    config = json.loads((bad.path / "config.json").read_text())
    config["created"] = "0001-01-01T00:00:00+05:00"
    (bad.path / "config.json").write_text(json.dumps(config))
    runs = {run.id: run for run in list_runs(runs_dir)}
    assert runs[good.run_id].damaged is None
    assert runs[bad.run_id].damaged.startswith("config.json: created: ")


def test_an_unreadable_run_folder_is_listed_as_damaged(tmp_path, monkeypatch):
    runs_dir = tmp_path / "runs"
    run = make_run(runs_dir, epochs=1)
    real_stat, real_scandir = os.stat, os.scandir

    # chmod 000 does not stop root (the test may run as root): refuse as a kernel would
    def refusing(path, *args, **kwargs):
        if str(path).startswith(str(run.path)):
            raise PermissionError(13, "Permission denied", str(path))
        return (real_scandir if refusing.scandir else real_stat)(path, *args, **kwargs)

    monkeypatch.setattr("bntui.store.reader.os.stat", lambda p, *a, **k: _call(refusing, False, p, *a, **k))
    monkeypatch.setattr("bntui.store.reader.os.scandir", lambda p=".": _call(refusing, True, p))
    [shown] = list_runs(runs_dir)
    assert (shown.id, shown.damaged) == (run.run_id, "cannot read the folder (Permission denied)")


def _call(function, scandir, *args, **kwargs):
    function.scandir = scandir
    return function(*args, **kwargs)


def test_events_cut_at_a_line_boundary_before_the_epochs_summary_records_are_flagged(tmp_path):
    run = make_run(tmp_path / "runs", epochs=3)
    events = run.path / "events.jsonl"
    lines = events.read_bytes().splitlines(keepends=True)
    last_epoch = max(i for i, line in enumerate(lines) if json.loads(line)["type"] == "epoch")
    events.write_bytes(b"".join(lines[:last_epoch]))
    [shown] = list_runs(tmp_path / "runs")
    assert shown.damaged == "events.jsonl holds 2 of the 3 epochs summary.json records (cut short)"


def test_schema_version_true_is_not_version_1(tmp_path):
    run = make_run(tmp_path / "runs", epochs=1)
    for name in ("config.json", "summary.json"):
        data = json.loads((run.path / name).read_text())
        data["schema_version"] = True
        (run.path / name).write_text(json.dumps(data))
    [shown] = list_runs(tmp_path / "runs")
    assert shown.damaged.startswith("config.json: schema_version True is not supported"), shown.damaged


# -- 4 and 5. one event model for import and reading; numbers the plots can take ------------------


def exported_run(tmp_path: Path, **changes) -> dict:
    """One run as `bntui export` writes it, with `changes` applied (dotted paths)."""
    from bntui.store import export_document, export_text

    runs_dir = tmp_path / "source"
    make_run(runs_dir, epochs=2)
    document = json.loads(export_text(export_document(list_runs(runs_dir))))
    run = document["runs"][0]
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        target = run
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        index = int(last) if isinstance(target, list) else last
        if value is _DELETE:
            del target[index]
        else:
            target[index] = value
    return document


_DELETE = object()


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"diagnostics.points.0.step": "x"}, "step: must be a valid integer"),
        ({"diagnostics.points.0.epoch": _DELETE}, "without 'epoch'"),
        ({"history.step": [10**22, 2 * 10**22]}, "history.step: must be less than or equal to 1000000000000"),
        ({"history.epoch": [1e30, 2e30]}, "history.epoch: "),
        ({"progress.step": [10**22] * 4}, "progress.step: must be less than or equal to 1000000000000"),
        ({"timings.started_at": "0001-01-01T00:00:00Z"}, "timings.started_at: 0001-01-01T00:00:00+00:00 is not a time"),
    ],
)
def test_import_refuses_what_the_reader_would_refuse(tmp_path, changes, reason):
    from bntui.store import import_runs

    source = tmp_path / "export.json"
    source.write_text(json.dumps(exported_run(tmp_path, **changes)))
    report = import_runs(tmp_path / "runs", source)
    assert report.imported == [] and len(report.rejected) == 1
    assert reason in report.rejected[0][1], report.rejected


def test_every_event_the_engine_writes_passes_the_event_model_unchanged():
    from bntui.store.event_model import to_event, validate_event
    from storehelpers import diagnostics_event, epoch_event, progress_event, started, terminal_event

    events = [
        started(),
        progress_event(1, 4),
        diagnostics_event(1, 10),
        epoch_event(1),
        epoch_event(2, bn=False),
        *(terminal_event(status, 2) for status in ("finished", "failed", "cancelled", "diverged")),
    ]
    for event in events:
        assert to_event(validate_event(json.loads(json.dumps(event.to_dict())))) == event


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(
        [
            "history.step.0",
            "history.epoch.1",
            "progress.step.0",
            "progress.elapsed.1",
            "diagnostics.points.0.step",
            "diagnostics.points.0.epoch",
            "diagnostics.points.0.layers",
            "timings.steps",
            "timings.total_seconds",
            "timings.started_at",
            "message",
            "environment.device_name",
            "final.test_loss",
        ]
    ),
    value=json_values,
)
def test_whatever_import_accepts_reads_back_identically(tmp_path_factory, path, value):
    from bntui.store import import_runs
    from bntui.store.schema import RunRecord

    tmp_path = tmp_path_factory.mktemp("roundtrip")
    document = exported_run(tmp_path, **{path: value})
    source = tmp_path / "export.json"
    source.write_text(json.dumps(document))
    report = import_runs(tmp_path / "runs", source)
    if not report.imported:
        return  # refused, with a reason: nothing written
    [(_, new_id)] = report.imported
    [stored] = [run for run in list_runs(tmp_path / "runs") if run.id == new_id]
    assert stored.damaged is None, stored.damaged
    expected = RunRecord.model_validate(document["runs"][0]).model_copy(update={"id": new_id})
    if expected.status == "running":
        expected = expected.model_copy(update={"status": "crashed"})
    assert stored.record.model_dump_json() == expected.model_dump_json()


@pytest.mark.parametrize("low, high", [(0, 1e22), (1, 1e30), (-1e300, 1e300), (5, 5), (1e30, 1e30 + 1)])
def test_integer_ticks_are_total(low, high):
    from bntui.present.plots import integer_ticks

    ticks = integer_ticks(low, high)
    assert 1 <= len(ticks) <= 5
    assert all(isinstance(t, int) for t in ticks)


@given(low=st.floats(), high=st.floats(), rows=st.integers(-2, 200), most=st.integers(1, 12))
def test_the_tick_helpers_never_raise(low, high, rows, most):
    from bntui.present.plots import even_yticks, integer_ticks

    ticks = integer_ticks(low, high, most)
    assert len(ticks) <= max(most, 1)
    assert all(math.isfinite(t) for t in even_yticks(low, high, rows))


def test_plots_draw_steps_and_values_at_the_float_limits():
    from bntui.series import downsample, ema, log_safe
    from bntui.tui.widgets.figure import FigureRequest, draw
    from bntui.tui.widgets.metric_plot import Curve, metric_figure

    xs = [1.0, 1e22, 1e30, 10**400, 5.0]
    ys = [1.0, 2.0, 0.5, 3.0, 1e308]  # 10**400 has no float; 1e308's span overflows
    assert downsample(xs, ys, 10) == ([1.0, 1e22, 1e30], [1.0, 2.0, 0.5])
    assert len(ema([*ys, 10**400], 0.5)) == len(log_safe([*ys, 10**400])) == 6
    curve = Curve([1.0, 1e22, 1e30], [1e308, -1e308, 0.5], "val", (255, 0, 0), "braille")
    assert draw(FigureRequest(metric_figure("loss", "x", (curve,)), 70, 16, (200, 200, 200), (0, 0, 0)))


# -- 7. small ones ---------------------------------------------------------------------------------


def test_stored_strings_reach_the_terminal_as_visible_text(tmp_path, capsys):
    from bntui.cli import main

    run = make_run(tmp_path / "runs", epochs=1, status="failed")
    summary = json.loads((run.path / "summary.json").read_text())
    summary["message"] = "boom \x1b]0;pwned\x07 \x1b[2J"
    (run.path / "summary.json").write_text(json.dumps(summary))
    hostile = tmp_path / "runs" / "evil\x1b[31m"
    hostile.mkdir()
    (hostile / "events.jsonl").write_text("x\n")
    for command in (["runs"], ["show", run.run_id]):
        assert main([*command, "--runs-dir", str(tmp_path / "runs")]) in (0, 1)
        out, err = capsys.readouterr()
        assert "\x1b" not in out + err and "\x07" not in out + err
        assert "\\x1b" in out + err

    from bntui.present.text import printable

    assert printable("a\x1b[2Jb\x07\u202ec\n") == "a\\x1b[2Jb\\x07\\u202ec\\x0a"


async def test_the_tui_shows_stored_control_characters_as_text(tmp_path):
    from bntui.settings import AppSettings
    from bntui.tui.app import BntuiApp
    from bntui.tui.devices import DeviceChoice
    from tuihelpers import screen_lines as screen_text
    from tuihelpers import wait_for

    runs_dir = tmp_path / "runs"
    run = make_run(runs_dir, epochs=1, status="failed")
    summary = json.loads((run.path / "summary.json").read_text())
    summary["message"] = "boom \x1b[2J\x07"
    (run.path / "summary.json").write_text(json.dumps(summary))
    hostile = runs_dir / "evil\x1b[31mred"
    hostile.mkdir()
    (hostile / "events.jsonl").write_text("x\n")
    app = BntuiApp(
        AppSettings(runs_dir=runs_dir, data_dir=tmp_path / "data"), devices=[DeviceChoice("cpu", "test CPU")]
    )
    async with app.run_test(size=(200, 48)) as pilot:
        await wait_for(pilot, lambda: "evil" in "".join(screen_text(app)), "the hostile run listed")
        app.notify("from a file: \x1b[2J")
        await pilot.pause()
        text = "\n".join(screen_text(app))
        assert "\x1b" not in text and "evil\\x1b[31mred" in text


# -- 8. a terminal too small for the workbench -----------------------------------------------------


@pytest.mark.parametrize(
    ("size", "too_small"), [((40, 12), True), ((69, 30), True), ((120, 19), True), ((80, 24), False)]
)
async def test_a_small_terminal_gets_a_message_not_a_broken_layout(tmp_path, size, too_small):
    from bntui.settings import AppSettings
    from bntui.tui.app import BntuiApp
    from bntui.tui.devices import DeviceChoice
    from tuihelpers import screen_lines as screen_text

    app = BntuiApp(
        AppSettings(runs_dir=tmp_path / "runs", data_dir=tmp_path / "data"), devices=[DeviceChoice("cpu", "test CPU")]
    )
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        text = "\n".join(screen_text(app))
        message = "Make the terminal at least 70x20"  # bntui.tui.screens.main.MIN_WIDTH, MIN_HEIGHT
        assert (message in text) is too_small
        assert (f"(it is {size[0]}x{size[1]})" in text) is too_small
        assert ("─ Runs" in text) is not too_small  # the run list's title (the footer has "^l Runs")
        if too_small:
            await pilot.resize_terminal(100, 30)
            await pilot.pause()
            assert "Make the terminal" not in "\n".join(screen_text(app))


@pytest.mark.parametrize(
    ("labels", "count", "problem"),
    [
        ([3, 11], 300, "holds the label 11: labels must be 0..9"),
        ([0, 1], 299, "holds 299 labels for the 300 images of"),
    ],
    ids=["label 11", "299 labels"],
)
def test_mnist_files_with_foreign_labels_fail_at_load_naming_the_file(tmp_path, labels, count, problem):
    import numpy as np

    from bntui.engine.data import DatasetMissing, load_raw
    from datafixtures import write_idx, write_mnist

    write_mnist(tmp_path)
    label_file = tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    write_idx(label_file, np.resize(np.array(labels, dtype=np.uint8), count))
    with pytest.raises(DatasetMissing) as caught:
        load_raw("mnist", tmp_path)
    message = str(caught.value)
    assert problem in message and str(label_file) in message and "\n" not in message


# -- the limits never refuse what bntui itself writes ---------------------------------------------


def test_a_run_failing_with_a_huge_message_and_a_clock_set_back_reads_back_clean(tmp_path, monkeypatch):
    from datetime import datetime, timedelta

    from bntui.engine.events import RunFailed
    from storehelpers import make_run as make

    run = make(tmp_path / "runs", epochs=1, status=None)
    run.write_event(RunFailed(message="ValueError: " + "x" * 50_000))
    run.created = datetime.now().astimezone() + timedelta(hours=1)  # ended "before" it started
    monkeypatch.setattr(run.state, "started", None)
    run.finish()
    [shown] = list_runs(tmp_path / "runs")
    assert shown.damaged is None and shown.status == "failed"
    assert len(shown.record.message) == 10_000 and shown.record.message.endswith("...")
    assert shown.record.timings.total_seconds < 0
