"""The results table that `bntui run` prints once its runs have ended (read from the store)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from bntui.commands.run import _print_results
from bntui.config import RunConfig
from bntui.engine.events import RunFinished
from bntui.store import RunWriter, StoredRun, list_runs


def finished(runs_dir: Path, config: RunConfig) -> str:
    writer = RunWriter(runs_dir, config)
    writer.write_event(
        RunFinished(
            train_loss=643376499.84,
            train_accuracy=0.9062,
            val_loss=0.5708,
            val_accuracy=0.8825,
            test_loss=0.5976,
            test_accuracy=0.863,
            steps=100,
            train_seconds=1.0,
            total_seconds=2.0,
        )
    )
    writer.finish()
    return writer.run_id


def cancelled(runs_dir: Path, config: RunConfig) -> str:
    writer = RunWriter(runs_dir, config)
    writer.finish("cancelled")
    return writer.run_id


def stored(runs_dir: Path) -> list[StoredRun]:
    return list_runs(runs_dir)


@pytest.mark.parametrize("width", [80, 100, 200])
def test_results_keep_each_run_id_whole_on_one_line(width, tmp_path):
    ids = [
        finished(tmp_path, RunConfig(dataset="fashion-mnist", arch="lenet5", bn=False, seed=123)),
        finished(tmp_path, RunConfig(seed=0)),
        finished(tmp_path, RunConfig(seed=1)),
    ]
    console = Console(file=io.StringIO(), width=width, color_system=None)
    _print_results(console, stored(tmp_path))
    text = console.file.getvalue()
    results = text.split("Per arm")[0]
    lines = results.splitlines()
    assert any(line.split()[:2] == ["run", "status"] for line in lines), text
    for name in ids:
        assert sum(name in line for line in lines) == 1, text
    assert all(len(line) <= width for line in text.splitlines()), text
    # Where train / val / test fit they are all shown, else the test numbers, never cut.
    expected = "90.62 / 88.25 / 86.30" if width >= 160 else "86.30"
    assert sum(expected in line and "finished" in line for line in lines) == 3, text


def _header(runs: list[StoredRun], width: int) -> list[str]:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    _print_results(console, runs)
    return [line for line in console.file.getvalue().splitlines() if line.split()[:2] == ["run", "status"]]


@pytest.mark.parametrize("width", [80, 120, 200])
def test_results_header_does_not_depend_on_whether_a_run_finished(width, tmp_path):
    finished(tmp_path / "a", RunConfig(seed=0))
    cancelled(tmp_path / "b", RunConfig(seed=0))
    done = _header(stored(tmp_path / "a"), width)
    stopped = _header(stored(tmp_path / "b"), width)
    assert done and [h.split() for h in stopped] == [h.split() for h in done]
