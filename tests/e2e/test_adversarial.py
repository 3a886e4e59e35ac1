"""Hostile inputs and the one line each must produce: a table anyone can extend.

Each row is an input a careless or malicious file, flag or variable can hold, and the exact
line bntui must answer with: never a traceback, never a second line for one problem, never
data lost. Three tables, one per way in:

- IMPORT_FILES: the bytes of a file given to `bntui import`; the line names the file (the
  whole file refused) or the run (`rejected ID: reason`, the other runs still imported).
- STORE_FILES: one file of a stored run replaced; `bntui runs` must list every run and say
  `damaged ID: reason` for this one.
- CLI_INPUTS: flags, BNTUI_* variables and config files; the line goes to stderr.

To add a case, add a row: an id, the input, and the line (with {file}, {runs} or {tmp} for
the paths of the test)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

from storehelpers import make_run

# -- helpers -----------------------------------------------------------------------------------


def run_cli(capsys, *args: str) -> tuple[int, list[str], list[str]]:
    from bntui.cli import main

    try:
        status = main(list(args))
    except SystemExit as exc:  # argparse's own errors
        status = exc.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return status, [line for line in out.splitlines() if line], [line for line in err.splitlines() if line]


def exported(tmp: Path, change: Callable[[dict], Any] | None = None) -> bytes:
    """A real export of one run, with `change` applied to its run (a dict) first."""
    from bntui.store import export_document, export_text, list_runs

    source = tmp / "source-runs"
    if not source.exists():
        make_run(source, epochs=2)
    document = json.loads(export_text(export_document(list_runs(source))))
    if change is not None:
        change(document["runs"][0])
    return json.dumps(document).encode()


def setter(dotted: str, value: Any) -> Callable[[dict], None]:
    def change(run: dict) -> None:
        *parents, last = dotted.split(".")
        target: Any = run
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        target[int(last) if isinstance(target, list) else last] = value

    return change


def deleter(dotted: str) -> Callable[[dict], None]:
    def change(run: dict) -> None:
        *parents, last = dotted.split(".")
        target: Any = run
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        del target[last]

    return change


# -- import files --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportCase:
    id: str
    content: Callable[[Path], bytes]
    line: str  # stderr when the whole file is refused, else the run's `rejected` line on stdout
    whole_file: bool = True


def envelope(**fields: Any) -> Callable[[Path], bytes]:
    return lambda tmp: json.dumps({"schema_version": 2, "runs": [], **fields}).encode()


IMPORT_FILES = [
    ImportCase(
        "not JSON", lambda tmp: b"hello", "bntui: error: {file}: not valid JSON (line 1 column 1: Expecting value)"
    ),
    ImportCase("not UTF-8", lambda tmp: b"\xff\xfe{}", "bntui: error: {file}: not a bntui export (not UTF-8 text)"),
    ImportCase(
        "nested 100,000 deep",
        lambda tmp: b"[" * 100_000,
        "bntui: error: {file}: not usable JSON (nested deeper than 64 levels)",
    ),
    ImportCase(
        "a 5,000-digit integer",
        lambda tmp: b'{"schema_version": ' + b"7" * 5000 + b', "runs": []}',
        "bntui: error: {file}: not usable JSON (a number of more than 4300 digits)",
    ),
    ImportCase(
        "endless (/dev/zero)",
        lambda tmp: b"\0" * (2 * 2**20),
        "bntui: error: {file}: larger than 1 MiB, not a bntui export (export fewer runs per file)",
    ),
    ImportCase(
        "a list",
        lambda tmp: b"[]",
        "bntui: error: {file}: not a bntui export (expected a JSON object with schema_version and runs)",
    ),
    ImportCase(
        "schema_version true",
        envelope(schema_version=True),
        "bntui: error: {file}: schema_version True is not supported (this bntui reads 1, 2, 3)",
    ),
    ImportCase(
        "schema_version 99",
        envelope(schema_version=99),
        "bntui: error: {file}: schema_version 99 is not supported (this bntui reads 1, 2, 3)",
    ),
    ImportCase("runs not a list", envelope(runs={}), "bntui: error: {file}: runs must be a list"),
    ImportCase(
        "created in year 1",
        envelope(created="0001-01-01T00:00:00Z"),
        "bntui: error: {file}: created: 0001-01-01T00:00:00+00:00 is not a time bntui can store: "
        "must be between 1970 and 9998",
    ),
    # one run refused, named by its id; the file's other runs would still be imported
    ImportCase(
        "diagnostics step 'x'",
        lambda tmp: exported(tmp, setter("diagnostics.points.0.step", "x")),
        "rejected {id}: diagnostics.points: step: must be a valid integer",
        whole_file=False,
    ),
    ImportCase(
        "diagnostics point without epoch",
        lambda tmp: exported(tmp, deleter("diagnostics.points.0.epoch")),
        "rejected {id}: diagnostics.points: without 'epoch'",
        whole_file=False,
    ),
    ImportCase(
        "step 1e22",
        lambda tmp: exported(tmp, setter("history.step", [10**22, 10**22])),
        "rejected {id}: history.step: must be less than or equal to 1000000000000; "
        "history.step: must be less than or equal to 1000000000000",
        whole_file=False,
    ),
    ImportCase(
        "epoch 1e30",
        lambda tmp: exported(tmp, setter("progress.epoch.0", 10**30)),
        "rejected {id}: progress.epoch: must be less than or equal to 1000000000000",
        whole_file=False,
    ),
    ImportCase(
        "elapsed 1e300",
        lambda tmp: exported(tmp, setter("history.elapsed.0", 1e300)),
        "rejected {id}: history.elapsed: 1e+300 is not a duration: must be finite and at most 1e+09 seconds",
        whole_file=False,
    ),
    ImportCase(
        "started in year 1",
        lambda tmp: exported(tmp, setter("timings.started_at", "0001-01-01T00:00:00Z")),
        "rejected {id}: timings.started_at: 0001-01-01T00:00:00+00:00 is not a time bntui can store: "
        "must be between 1970 and 9998",
        whole_file=False,
    ),
    ImportCase(
        "a 20,000-character message",
        lambda tmp: exported(tmp, setter("message", "m" * 20_000)),
        "rejected {id}: message: String should have at most 10000 characters",
        whole_file=False,
    ),
    ImportCase(
        "an id with a path",
        lambda tmp: exported(tmp, setter("id", "../../etc")),
        "rejected ../../etc: id: run id must be 1-128 letters, digits, '.', '-' or '_' (no path separators, no '..')",
        whole_file=False,
    ),
    ImportCase(
        "accuracy 97.5",
        lambda tmp: exported(tmp, setter("final.test_accuracy", 97.5)),
        "rejected {id}: final.test_accuracy: 97.5 is not an accuracy: must be between 0 and 1 "
        "(a fraction, not a percentage)",
        whole_file=False,
    ),
]


@pytest.fixture
def small_import_cap(monkeypatch):
    monkeypatch.setattr("bntui.store.exchange.MAX_IMPORT_BYTES", 2**20)  # /dev/zero stops at 1 MiB


@pytest.mark.parametrize("case", IMPORT_FILES, ids=[case.id for case in IMPORT_FILES])
def test_hostile_import_files(case: ImportCase, tmp_path, capsys, small_import_cap):
    from bntui.store import list_runs

    path = tmp_path / "hostile.json"
    path.write_bytes(case.content(tmp_path))
    runs = tmp_path / "runs"
    run_id = next((r.get("id") for r in _runs_in(path)), None)
    status, out, err = run_cli(capsys, "import", str(path), "--runs-dir", str(runs))
    expected = case.line.format(file=path, id=run_id, runs=runs, tmp=tmp_path)
    assert status != 0
    if case.whole_file:
        assert err == [expected] and out == []
    else:
        assert expected in out and err == []
    assert list_runs(runs) == []  # nothing half-written


def _runs_in(path: Path) -> list[dict]:
    try:
        data = json.loads(path.read_bytes())
        return [run for run in data["runs"] if isinstance(run, dict)]
    except Exception:  # noqa: BLE001 - most rows are not even JSON
        return []


# -- store files ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreCase:
    id: str
    file: str  # in the run's folder
    content: Callable[[bytes], bytes]  # the file's new content, from its old one
    reason: str  # after "damaged ID: "


def replace_json(key: str, value: Any) -> Callable[[bytes], bytes]:
    def change(old: bytes) -> bytes:
        data = json.loads(old)
        data[key] = value
        return json.dumps(data).encode()

    return change


def first_event(change: Callable[[dict], None]) -> Callable[[bytes], bytes]:
    def rewrite(old: bytes) -> bytes:
        lines = old.splitlines()
        data = json.loads(lines[0])
        change(data)
        return b"\n".join([json.dumps(data).encode(), *lines[1:]]) + b"\n"

    return rewrite


STORE_FILES = [
    StoreCase(
        "config.json not JSON",
        "config.json",
        lambda old: b"{",
        "config.json is not valid JSON (line 1 column 2: Expecting property name enclosed in double quotes)",
    ),
    StoreCase(
        "config.json 5,000 digits",
        "config.json",
        lambda old: b'{"schema_version": ' + b"1" * 5000 + b"}",
        "config.json is not usable JSON (a number of more than 4300 digits)",
    ),
    StoreCase(
        "config.json nested 100,000 deep",
        "config.json",
        lambda old: b"[" * 100_000 + b"]" * 100_000,
        "config.json is not usable JSON (nested deeper than 64 levels)",
    ),
    StoreCase(
        "config.json created in year 1",
        "config.json",
        replace_json("created", "0001-01-01T00:00:00+05:00"),
        "config.json: created: 0001-01-01T00:00:00+05:00 is not a time bntui can store: must be between 1970 and 9998",
    ),
    StoreCase(
        "config.json schema_version true",
        "config.json",
        replace_json("schema_version", True),
        "config.json: schema_version True is not supported (this bntui reads 1, 2, 3)",
    ),
    StoreCase(
        "summary.json epochs_done 1e30",
        "summary.json",
        replace_json("epochs_done", 10**30),
        "summary.json: epochs_done: must be less than or equal to 1000000000000",
    ),
    StoreCase(
        "summary.json a huge duration",
        "summary.json",
        replace_json("timings", {"total_seconds": 1e300}),
        "summary.json: timings.total_seconds: 1e+300 is not a duration: must be finite and at most 1e+09 seconds",
    ),
    StoreCase(
        "events.jsonl started in year 1",
        "events.jsonl",
        first_event(lambda e: e.update(time=-62135596800)),
        "events.jsonl line 1: started event: time: must be greater than or equal to 86400",
    ),
    StoreCase(
        "events.jsonl step 1e22",
        "events.jsonl",
        lambda old: (
            old + b'{"type": "progress", "epoch": 1, '
            b'"step": 10000000000000000000000, "train_loss": 1, "steps_per_second": 1, "elapsed": 1}\n'
        ),
        "events.jsonl line 15: progress event: step: must be less than or equal to 1000000000000",
    ),
    StoreCase(
        "events.jsonl a line nested 100,000 deep",
        "events.jsonl",
        lambda old: old + b"[" * 100_000 + b"\n",
        "events.jsonl line 15: not usable JSON (nested deeper than 64 levels)",
    ),
    StoreCase(
        "events.jsonl diagnostics step 'x'",
        "events.jsonl",
        lambda old: old + b'{"type": "diagnostics", "step": "x", "epoch": 1}\n',
        "events.jsonl line 15: diagnostics event: step: must be a valid integer",
    ),
    StoreCase(
        "events.jsonl cut short at a line",
        "events.jsonl",
        lambda old: b"".join(old.splitlines(keepends=True)[:8]),
        "events.jsonl holds 1 of the 3 epochs summary.json records (cut short)",
    ),
]


@pytest.mark.parametrize("case", STORE_FILES, ids=[case.id for case in STORE_FILES])
def test_hostile_store_files(case: StoreCase, tmp_path, capsys):
    runs = tmp_path / "runs"
    good = make_run(runs, epochs=3)
    bad = make_run(runs, epochs=3)
    path = bad.path / case.file
    path.write_bytes(case.content(path.read_bytes()))
    status, out, err = run_cli(capsys, "runs", "--runs-dir", str(runs))
    assert status == 0 and err == []
    assert any(good.run_id in line for line in out)  # the rest of the store is still listed
    damaged = [line for line in out if line.startswith("damaged ")]
    assert damaged == [f"damaged {bad.run_id}: {case.reason}"]


# -- flags, variables and config files -----------------------------------------------------------


@dataclass(frozen=True)
class CliCase:
    id: str
    args: tuple[str, ...]  # {tmp} is the test's folder
    line: str  # the one line on stderr
    env: dict[str, str | None] = field(default_factory=dict)  # None: unset
    config: str | None = None  # the config file's text
    setup: Callable[[Path], None] | None = None


def foreign_folder(tmp: Path) -> None:
    (tmp / "runs" / "photos").mkdir(parents=True)
    (tmp / "runs" / "photos" / "holiday.jpg").write_bytes(b"\xff\xd8")


CLI_INPUTS = [
    CliCase(
        "--runs-dir ''",
        ("runs", "--runs-dir", ""),
        "bntui: error: --runs-dir: must not be empty: give a folder (an empty path means no folder)",
    ),
    CliCase(
        "BNTUI_RUNS_DIR=''",
        ("runs",),
        "bntui: error: BNTUI_RUNS_DIR: must not be empty: give a folder (an empty path means no folder)",
        env={"BNTUI_RUNS_DIR": ""},
    ),
    CliCase(
        "BNTUI_DATA_DIR=''",
        ("runs",),
        "bntui: error: BNTUI_DATA_DIR: must not be empty: give a folder (an empty path means no folder)",
        env={"BNTUI_DATA_DIR": ""},
    ),
    CliCase(
        "runs_dir = '' in the config file",
        ("runs",),
        "bntui: error: config file {tmp}/config.toml: runs_dir: must not be empty: give a folder "
        "(an empty path means no folder)",
        config='runs_dir = ""\n',
        env={"BNTUI_RUNS_DIR": None},
    ),
    CliCase(
        "a config file nested 100,000 deep",
        ("runs",),
        "bntui: error: config file {tmp}/config.toml: not usable TOML (nested too deeply)",
        config="runs_dir = " + "[" * 100_000 + "]" * 100_000 + "\n",
    ),
    CliCase(
        "export -o ''",
        ("export", "-o", "", "--runs-dir", "{tmp}/runs"),
        "bntui: error: -o: give a file name (or - for stdout)",
    ),
    CliCase(
        "run --json under /proc",
        ("run", "--epochs", "1", "--runs-dir", "{tmp}/runs", "--json", "/proc/x.json"),
        "bntui: error: --json: cannot write /proc/x.json: No such file or directory",
    ),
    CliCase(
        "rm a folder the store did not create",
        ("rm", "--yes", "--runs-dir", "{tmp}/runs", "photos"),
        "bntui: error: not removed: {tmp}/runs/photos holds no readable config.json: not a run bntui can "
        "prove it created (remove it by hand if it is yours)",
        setup=foreign_folder,
    ),
    CliCase(
        "import /dev/zero",
        ("import", "/dev/zero", "--runs-dir", "{tmp}/runs"),
        "bntui: error: /dev/zero: larger than 1 MiB, not a bntui export (export fewer runs per file)",
    ),
]


@pytest.mark.parametrize("case", CLI_INPUTS, ids=[case.id for case in CLI_INPUTS])
def test_hostile_flags_variables_and_config_files(case: CliCase, tmp_path, capsys, monkeypatch, small_import_cap):
    config = tmp_path / "config.toml"
    monkeypatch.setenv("BNTUI_CONFIG_FILE", str(config))
    if case.config is not None:
        config.write_text(case.config)
    for name, value in case.env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    if case.setup is not None:
        case.setup(tmp_path)
    monkeypatch.setattr("sys.stdin", open("/dev/null"))
    status, out, err = run_cli(capsys, *(arg.format(tmp=tmp_path) for arg in case.args))
    assert status != 0
    assert err == [case.line.format(tmp=tmp_path)]
