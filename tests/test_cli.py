"""The command line as a user meets it: fast help, one-line errors, no tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


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
        (["run", "--lr", "-1"], "lr: must be greater than 0"),
        (["run", "--epochs", "0"], "epochs: must be greater than or equal to 1"),
        (["run", "--val-fraction", "1.5"], "val_fraction: must be less than 1"),
        (["run", "--dataset", "imagenet"], "dataset: must be 'mnist-mini'"),
        (["run", "--device", "tpu"], "device: must be auto, cpu, cuda, cuda:N or mps"),
        (["run", "--batch-size", "1"], "batch_size: must be at least 2 with BatchNorm on"),
    ],
)
def test_bad_flags_get_one_line_naming_the_field(args, expected, tmp_path):
    result = bntui(*args, "--runs-dir", str(tmp_path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0]


def test_bad_config_file_is_one_line(tmp_path):
    bad = tmp_path / "config.toml"
    bad.write_text("this is not toml = = =")
    result = bntui("runs", env_extra={"BNTUI_CONFIG_FILE": str(bad)})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"config file {bad}: not valid TOML" in result.stderr
