"""The store's CLI commands, called as the CLI calls them: settings + console -> exit status."""

from __future__ import annotations

import io
import json
import re
import shutil

import pytest
from rich.console import Console

from bntui.commands.store_commands import (
    cmd_compare,
    cmd_export,
    cmd_import,
    cmd_rm,
    cmd_runs,
    cmd_schema,
    cmd_show,
)
from bntui.settings import AppSettings
from bntui.store import list_runs
from bntui.store.schema import ExportDocument, json_schema

from storehelpers import dead_pid, make_run, set_owner


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.setenv("BNTUI_CONFIG_FILE", str(tmp_path / "no-config.toml"))
    return AppSettings(runs_dir=tmp_path / "runs", data_dir=tmp_path / "data")


@pytest.fixture
def console():
    return Console(file=io.StringIO(), width=250, color_system=None)


def output(console: Console) -> str:
    return console.file.getvalue()


def test_runs_json_has_the_documented_fields(settings, console):
    finished = make_run(settings.runs_dir, epochs=3, group="g-7", seed=3, bn=False)
    crashed = make_run(settings.runs_dir, epochs=2, status=None)
    crashed.close()
    set_owner(crashed.path, pid=dead_pid())

    assert cmd_runs(settings, console, as_json=True) == 0
    rows = {row["id"]: row for row in json.loads(output(console))["runs"]}
    row = rows[finished.run_id]
    assert set(row) == {
        "id",
        "status",
        "epochs_done",
        "dataset",
        "arch",
        "bn",
        "norm",
        "seed",
        "best_val_loss",
        "test_accuracy",
        "duration_seconds",
        "group",
        "damaged",
    }
    run = {r.id: r for r in list_runs(settings.runs_dir)}[finished.run_id]
    assert row == {
        "id": finished.run_id,
        "status": "finished",
        "epochs_done": 3,
        "dataset": "mnist-mini",
        "arch": "mlp",
        "bn": False,
        "norm": "batch",
        "seed": 3,
        "best_val_loss": min(run.record.history.val_loss),
        "test_accuracy": run.record.final.test_accuracy,
        "duration_seconds": run.record.timings.total_seconds,
        "group": "g-7",
        "damaged": None,
    }
    assert rows[crashed.run_id]["status"] == "crashed"
    assert rows[crashed.run_id]["epochs_done"] == 2


def test_runs_table_shows_damaged_reason(settings, console):
    make_run(settings.runs_dir, epochs=1)
    broken = make_run(settings.runs_dir, epochs=1)
    (broken.path / "config.json").write_text("garbage")
    assert cmd_runs(settings, console) == 0
    text = output(console)
    assert broken.run_id in text
    assert "config.json is not valid JSON" in text
    assert "finished" in text


def test_runs_on_an_empty_store(settings, console):
    assert cmd_runs(settings, console) == 0
    assert "no runs" in output(console)
    console.file.truncate(0)
    console.file.seek(0)
    assert cmd_runs(settings, console, as_json=True) == 0
    assert json.loads(output(console)) == {"runs": []}


def test_unreadable_runs_dir_is_one_line_error(settings, console, capsys):
    settings.runs_dir.parent.mkdir(parents=True, exist_ok=True)
    settings.runs_dir.write_text("a file, not a folder")
    assert cmd_runs(settings, console) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"bntui: error: runs dir {settings.runs_dir} is a file, not a folder"


def test_show_prints_config_epochs_and_final(settings, console):
    writer = make_run(settings.runs_dir, epochs=3, lr=0.0123)
    assert cmd_show(settings, console, writer.run_id[:-2]) == 0
    text = output(console)
    assert "0.0123" in text and "Epochs" in text and "Final metrics" in text
    assert "87.00%" in text  # test accuracy of the helper's RunFinished


def test_show_unknown_and_ambiguous_runs(settings, console, capsys):
    make_run(settings.runs_dir, epochs=1, seed=1)
    make_run(settings.runs_dir, epochs=1, seed=2)
    assert cmd_show(settings, console, "nope") == 1
    assert "no run 'nope'" in capsys.readouterr().err
    assert cmd_show(settings, console, "2") == 1
    assert "matches 2 runs" in capsys.readouterr().err


def test_compare_shows_deltas_and_only_differing_config(settings, console):
    a = make_run(settings.runs_dir, epochs=2, seed=1, lr=0.001)
    b = make_run(settings.runs_dir, epochs=2, seed=1, lr=0.01, bn=False)
    assert cmd_compare(settings, console, [a.run_id, b.run_id]) == 0
    text = output(console)
    assert "lr" in text and "0.01" in text and "bn" in text
    assert "hidden_sizes" not in text and "optimizer" not in text
    assert "(+0 pt)" not in text and "(+0.00 pt)" in text  # same final test accuracy: delta shown
    console.file.truncate(0)
    console.file.seek(0)
    assert cmd_compare(settings, console, [a.run_id, b.run_id], show_all=True) == 0
    assert "hidden_sizes" in output(console) and "optimizer" in output(console)


def test_compare_a_run_without_record_is_an_error(settings, console, capsys):
    a = make_run(settings.runs_dir, epochs=1)
    b = make_run(settings.runs_dir, epochs=1)
    (b.path / "config.json").unlink()
    assert cmd_compare(settings, console, [a.run_id, b.run_id]) == 1
    assert "config.json missing" in capsys.readouterr().err


def test_export_to_stdout_prints_only_the_document(settings, console, capsys):
    make_run(settings.runs_dir, epochs=1)
    broken = make_run(settings.runs_dir, epochs=1)
    (broken.path / "config.json").write_text("{")
    assert cmd_export(settings, console, [], "-") == 0
    captured = capsys.readouterr()
    doc = ExportDocument.model_validate_json(captured.out)
    assert len(doc.runs) == 1
    assert output(console) == ""
    assert f"skipped run {broken.run_id}" in captured.err


def test_export_named_runs_to_a_file_then_import(settings, console, tmp_path):
    a = make_run(settings.runs_dir, epochs=1, seed=1)
    make_run(settings.runs_dir, epochs=1, seed=2)
    target = tmp_path / "out.json"
    assert cmd_export(settings, console, [a.run_id], str(target)) == 0
    assert "exported 1 run to" in output(console)
    assert [run.id for run in ExportDocument.model_validate_json(target.read_text()).runs] == [a.run_id]

    assert cmd_import(settings, console, target) == 0
    text = output(console)
    assert f"already in the store: {a.run_id}" in text
    assert "0 imported, 1 already in the store, 0 rejected" in text
    assert len(list_runs(settings.runs_dir)) == 2


def test_export_into_a_missing_folder_is_one_line_error(settings, console, capsys, tmp_path):
    make_run(settings.runs_dir, epochs=1)
    assert cmd_export(settings, console, [], str(tmp_path / "no" / "such" / "dir.json")) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("bntui: error: -o: folder") and err.endswith("does not exist") and "\n" not in err


def test_export_of_an_empty_store_writes_nothing_and_says_why(settings, console, capsys, tmp_path):
    target = tmp_path / "e.json"
    assert cmd_export(settings, console, [], str(target)) == 1
    assert capsys.readouterr().err.strip() == f"bntui: error: no runs to export in {settings.runs_dir}: nothing written"
    assert not target.exists()


def test_import_reports_rejections(settings, console, tmp_path, capsys):
    doc = {
        "schema_version": 2,
        "runs": [
            {"id": "../escape", "status": "finished", "config": {}},
            {"id": "fine", "status": "finished", "config": {}},
        ],
    }
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(doc))
    assert cmd_import(settings, console, path) == 1
    text = output(console)
    assert "imported fine" in text
    assert "rejected ../escape: id: run id must be" in text
    assert "1 imported, 1 rejected" in text


def test_import_of_a_bad_file_is_one_line_error(settings, console, tmp_path, capsys):
    path = tmp_path / "doc.json"
    path.write_text(json.dumps({"schema_version": 42, "runs": []}))
    assert cmd_import(settings, console, path) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"bntui: error: {path}: schema_version 42 is not supported (this bntui reads 1, 2, 3)"


def test_rm_asks_and_respects_no(settings, console):
    writer = make_run(settings.runs_dir, epochs=1)
    questions = []
    assert cmd_rm(settings, console, [writer.run_id], confirm=lambda q: questions.append(q) or False) == 1
    assert writer.path.exists() and writer.run_id in questions[0]
    assert cmd_rm(settings, console, [writer.run_id], confirm=lambda q: True) == 0
    assert not writer.path.exists()
    assert [p.name for p in settings.runs_dir.iterdir()] == []  # no trash left behind


def test_rm_yes_does_not_ask(settings, console):
    writer = make_run(settings.runs_dir, epochs=1)

    def never(question: str) -> bool:
        raise AssertionError("asked")

    assert cmd_rm(settings, console, [writer.run_id], yes=True, confirm=never) == 0
    assert list_runs(settings.runs_dir) == []


def test_rm_refuses_a_running_run(settings, console, capsys):
    live = make_run(settings.runs_dir, epochs=1, status=None)
    done = make_run(settings.runs_dir, epochs=1)
    assert cmd_rm(settings, console, [live.run_id, done.run_id], yes=True) == 1
    assert f"run {live.run_id} is running" in capsys.readouterr().err
    assert live.path.exists() and not done.path.exists()


def test_rm_unknown_run_removes_nothing(settings, console):
    writer = make_run(settings.runs_dir, epochs=1)
    assert cmd_rm(settings, console, [writer.run_id, "nope"], yes=True) == 1
    assert writer.path.exists()


def test_schema_prints_the_json_schema(console):
    assert cmd_schema(console) == 0
    assert json.loads(output(console)) == json_schema()


@pytest.mark.parametrize("width", [80, 60, 40])
def test_runs_keeps_each_id_whole_on_one_line_on_narrow_terminals(settings, width):
    # Ids are what the user copies into `bntui show`: never wrapped, folded or cut.
    ids = [
        make_run(settings.runs_dir, epochs=1, dataset="fashion-mnist", arch="lenet5", bn=False, seed=123).run_id,
        make_run(settings.runs_dir, epochs=1, seed=0).run_id,
    ]
    narrow = Console(file=io.StringIO(), width=width, color_system=None)
    assert cmd_runs(settings, narrow) == 0
    lines = output(narrow).splitlines()
    for run_id in ids:
        assert sum(run_id in line for line in lines) == 1, output(narrow)
    if width >= 80:  # the other columns shrink instead, and all of them fit
        assert all(len(line) <= width for line in lines), output(narrow)
        assert "finished" in output(narrow) or "finish" in output(narrow)


def test_import_into_a_runs_dir_that_is_a_file_is_one_line_error(settings, console, tmp_path, capsys):
    doc = {
        "schema_version": 2,
        "runs": [
            {"id": "one", "status": "finished", "config": {}},
            {"id": "two", "status": "finished", "config": {}},
        ],
    }
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(doc))
    settings.runs_dir.write_text("x")
    assert cmd_import(settings, console, path) == 1
    assert capsys.readouterr().err.strip() == f"bntui: error: runs dir {settings.runs_dir} is a file, not a folder"
    assert output(console) == ""


def test_export_refuses_to_overwrite_a_file_unless_forced(settings, console, capsys, tmp_path):
    make_run(settings.runs_dir, epochs=1)
    target = tmp_path / "existing.json"
    target.write_text("precious")
    assert cmd_export(settings, console, [], str(target)) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(target) in err and "--force" in err
    assert target.read_text() == "precious"

    assert cmd_export(settings, console, [], str(target), force=True) == 0
    assert len(ExportDocument.model_validate_json(target.read_text()).runs) == 1


def _an_ordinary_store(runs_dir):
    """What the tester had: lenet5 runs of 150 epochs, -importN copies, one damaged run."""
    ids = []
    for seed in range(3):
        for bn in (True, False):
            ids.append(make_run(runs_dir, epochs=2, dataset="cifar10", arch="lenet5", bn=bn, seed=seed).run_id)
    ids.append(make_run(runs_dir, epochs=1, status="cancelled", seed=9).run_id)
    long_one = make_run(runs_dir, epochs=150, seed=4)
    shutil.copytree(long_one.path, runs_dir / f"{long_one.run_id}-import2")
    ids += [long_one.run_id, f"{long_one.run_id}-import2"]
    broken = make_run(runs_dir, epochs=1, seed=7)
    (broken.path / "summary.json").write_text("{")
    ids.append(broken.run_id)
    return ids, broken.run_id


@pytest.mark.parametrize("width", [80, 60])
def test_runs_table_is_readable_on_narrow_terminals(settings, width):
    ids, broken = _an_ordinary_store(settings.runs_dir)
    narrow = Console(file=io.StringIO(), width=width, color_system=None)
    assert cmd_runs(settings, narrow) == 0
    text = output(narrow)
    lines = text.splitlines()
    # every line fits but the damaged run's: one line the terminal wraps, not cut or folded
    assert all(len(line) <= width for line in lines if not line.startswith("damaged")), text
    assert "…" not in text  # nothing is cut: a column that does not fit is left out whole
    for run_id in ids:
        assert sum(re.search(rf"(^|\s){re.escape(run_id)}(\s|$)", line) is not None for line in lines) >= 1, text
    table_rows = [line for line in lines if line.startswith("2026") and "damaged" not in line]
    assert len(table_rows) == len(ids), text
    assert len(lines) < len(ids) + 10, text  # one line a run, plus title, header, damaged list
    assert all("finished" in row or "cancelled" in row for row in table_rows), text
    if "epochs" in lines[1]:
        assert "150/150" in text
    # the damaged run's reason: below the table, on one line naming the run
    [reason] = [line for line in lines if "summary.json" in line]
    assert broken in reason and lines.index(reason) > max(lines.index(r) for r in table_rows)
    # every column left out is named, and where to find it
    note = " ".join(text[text.index("not shown at this width:") :].split())
    rule = next(index for index, line in enumerate(lines) if line.startswith("─"))
    header = " ".join(lines[max(rule - 2, 0) : rule])  # the header: one or two lines above the rule
    for column in ("dataset", "arch", "norm", "seed", "status", "epochs", "test acc", "time"):
        assert column in header or column in note, (column, text)
    if "dataset" not in header:
        assert "(the run id says them)" in note
