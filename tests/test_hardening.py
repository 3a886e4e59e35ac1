"""Issue 12: one test (or a few) per kind of hostile input, each failing before its fix.

The table of single inputs and the one line each must produce is tests/test_adversarial.py;
this file holds the checks that need more than one line of setup (folders outside the store,
child processes, terminal sizes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bntui.settings import SettingsValueError, load_settings
from bntui.store import StoreError, is_store_run, list_runs, remove_run

from test_store_support import make_run


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
