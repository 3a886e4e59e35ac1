"""The command line as a user meets it: fast help, one-line errors, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from storehelpers import make_run


def bntui(*args: str, env_extra: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "bntui", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def test_help_lists_commands_without_importing_torch():
    probe = (
        "import sys\nfrom bntui.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "run" in result.stdout and "compare" in result.stdout
    assert result.stdout.strip().endswith("NO-TORCH")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "--lr", "-1"], "--lr: must be greater than 0"),
        (["run", "--epochs", "0"], "--epochs: must be greater than or equal to 1"),
        (["run", "--val-fraction", "1.5"], "--val-fraction: must be less than 1"),
        (["run", "--dataset", "imagenet"], "--dataset: must be 'mnist-mini'"),
        (["run", "--device", "tpu"], "--device: must be auto, cpu, cuda, cuda:N or mps"),
        (["run", "--batch-size", "1"], "--batch-size: must be at least 2 with BatchNorm on"),
        (
            ["run", "--norm", "group", "--hidden-sizes", "64", "--norm-groups", "7"],
            "--norm-groups: 7 does not divide layer fc1's width 64; must divide every hidden layer's",
        ),
        (
            ["run", "--norm", "ghost", "--ghost-batch-size", "1"],
            "--ghost-batch-size: must be greater than or equal to 2",
        ),
        (["run", "--norm", "renorm", "--renorm-rmax", "0.5"], "--renorm-rmax: must be greater than or equal to 1"),
        (["run", "--landscape-every", "-1"], "--landscape-every: must be greater than or equal to 0"),
        (["run", "--norm", "weight"], "--norm: must be 'batch', 'group', 'layer', 'renorm' or 'ghost'"),
    ],
)
def test_bad_flags_get_one_line_naming_the_flag(args, expected, tmp_path):
    result = bntui(*args, "--runs-dir", str(tmp_path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"bntui: error: {expected}")


def test_bad_config_file_is_one_line(tmp_path):
    bad = tmp_path / "config.toml"
    bad.write_text("this is not toml = = =")
    result = bntui("runs", env_extra={"BNTUI_CONFIG_FILE": str(bad)})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"config file {bad}: not valid TOML" in result.stderr


# -- in-process: main(argv) as the `bntui` script calls it -----------------------------------------


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    from bntui.cli import main

    try:
        status = main(list(args))
    except SystemExit as exc:  # --help, and argparse's own errors
        status = exc.code
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("where", ["before the command", "after the command"])
def test_runs_dir_works_before_and_after_the_command(where, tmp_path, capsys):
    from storehelpers import make_run

    runs_dir = tmp_path / "store"
    first, second = make_run(runs_dir, seed=1), make_run(runs_dir, seed=2)

    def bntui_with_store(command: str, *rest: str) -> tuple[int, str, str]:
        flag = ("--runs-dir", str(runs_dir))
        args = (*flag, command, *rest) if where == "before the command" else (command, *rest, *flag)
        return run_main(capsys, *args)

    status, out, _ = bntui_with_store("runs", "--json")
    assert status == 0
    assert sorted(row["id"] for row in json.loads(out)["runs"]) == sorted([first.run_id, second.run_id])
    status, out, _ = bntui_with_store("show", first.run_id)
    assert status == 0 and first.run_id in out
    status, _, _ = bntui_with_store("export", first.run_id, "-o", str(tmp_path / "one.json"))
    assert status == 0 and first.run_id in (tmp_path / "one.json").read_text()
    status, _, err = bntui_with_store("rm", "--yes", second.run_id)
    assert status == 0, err
    assert sorted(p.name for p in runs_dir.iterdir()) == [first.run_id]


def test_the_command_s_own_runs_dir_wins_over_the_global_one(tmp_path, capsys):
    status, out, _ = run_main(
        capsys, "--runs-dir", str(tmp_path / "global"), "runs", "--runs-dir", str(tmp_path / "own")
    )
    assert status == 0 and str(tmp_path / "own") in out and "global" not in out


def test_global_data_dir_applies_to_run(tmp_path, capsys):
    empty = tmp_path / "empty-datasets"
    status, _, err = run_main(
        capsys,
        "--data-dir",
        str(empty),
        "run",
        "--dataset",
        "cifar10",
        "--epochs",
        "1",
        "--runs-dir",
        str(tmp_path / "runs"),
    )
    assert status == 1, err
    from bntui.store import list_runs

    (run,) = list_runs(tmp_path / "runs")
    assert run.status == "failed" and str(empty) in run.record.message


def help_entries(capsys, monkeypatch, *command: str) -> dict[str, str]:
    """`bntui COMMAND --help` as {first name of each argument: its whole entry on one line}."""
    monkeypatch.setenv("COLUMNS", "250")  # argparse wraps at COLUMNS
    status, out, _ = run_main(capsys, *command, "--help")
    assert status == 0
    entries: dict[str, str] = {}
    name = None
    for line in out.splitlines():
        if line.startswith("  ") and not line.startswith("   "):  # an argument starts here
            name = line.split()[0].rstrip(",")
            entries[name] = line.strip()
        elif name and line.startswith("   "):  # its help, continued
            entries[name] += " " + line.strip()
        else:
            name = None
    return entries


@pytest.mark.parametrize("command", ["", "run", "runs", "show", "compare", "export", "import", "rm"])
def test_help_shows_each_default_once_and_only_meaningful_ones(command, capsys, monkeypatch):
    entries = help_entries(capsys, monkeypatch, *([command] if command else []))
    assert "--runs-dir" in entries
    for name, text in entries.items():
        assert "(default: None)" not in text and "default factory" not in text, text
        assert text.count("(default") <= 1, text


def test_run_help_keeps_the_real_defaults(capsys, monkeypatch):
    lines = help_entries(capsys, monkeypatch, "run")
    assert lines["--lr"].endswith("(default: 0.001)")
    assert lines["--hidden-sizes"].endswith("(default: 128,64)")
    assert "(default: BNTUI_DEVICE, config file, or auto)" in lines["--device"]
    assert "unset: 10 for mlp, 20 for lenet5" in lines["--epochs"]
    assert "(default" not in lines["--epochs"] and "(default" not in lines["--preset"]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("missing/x.json", "--json: folder {tmp}/missing does not exist"),
        ("folder", "--json: {tmp}/folder is a folder, not a file"),
        ("file/x.json", "--json: {tmp}/file is a file, not a folder"),
    ],
)
def test_run_checks_the_json_file_before_training(target, expected, tmp_path, capsys):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("x")
    status, out, err = run_main(
        capsys, "run", "--epochs", "1", "--runs-dir", str(tmp_path / "runs"), "--json", str(tmp_path / target)
    )
    assert status == 2
    assert err.strip() == "bntui: error: " + expected.format(tmp=tmp_path)
    assert not (tmp_path / "runs").exists() and out == ""  # nothing trained


def test_run_into_a_runs_dir_that_is_a_file_fails_before_training(tmp_path, capsys):
    blocker = tmp_path / "runs"
    blocker.write_text("x")
    status, out, err = run_main(capsys, "run", "--epochs", "1", "--runs-dir", str(blocker))
    assert status == 2
    assert err.strip() == f"bntui: error: runs dir {blocker} is a file, not a folder"
    assert out == "" and blocker.read_text() == "x"


def test_export_help_offers_force_and_the_cli_passes_it(tmp_path):
    assert "--force" in bntui("export", "--help").stdout
    make_run(tmp_path / "runs", epochs=1)
    target = tmp_path / "out.json"
    target.write_text("precious")
    refused = bntui("export", "-o", str(target), "--runs-dir", str(tmp_path / "runs"))
    assert refused.returncode == 1 and target.read_text() == "precious"
    assert len(refused.stderr.strip().splitlines()) == 1
    forced = bntui("export", "-o", str(target), "--force", "--runs-dir", str(tmp_path / "runs"))
    assert forced.returncode == 0, forced.stderr
    assert len(json.loads(target.read_text())["runs"]) == 1
