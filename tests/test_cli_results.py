"""The results table that `bntui run` prints after training."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from bntui.commands.run import _print_results
from bntui.config import RunConfig
from bntui.engine.events import RunFinished, RunResult
from bntui.execute import StoredOutcome


def finished(config: RunConfig, run_id: str | None) -> StoredOutcome:
    final = RunFinished(
        train_loss=643376499.84, train_accuracy=0.9062, val_loss=0.5708, val_accuracy=0.8825,
        test_loss=0.5976, test_accuracy=0.863, steps=100, train_seconds=1.0, total_seconds=2.0,
    )
    return StoredOutcome(config, run_id, RunResult(status="finished", final=final), stored=run_id is not None)


@pytest.mark.parametrize("width", [80, 100, 200])
def test_results_keep_each_run_id_whole_on_one_line(width):
    outcomes = [
        finished(RunConfig(dataset="fashion-mnist", arch="lenet5", bn=False, seed=123),
                 "20261126-193121-fashion-mnist-lenet5-nobn-s123-4b0a"),
        finished(RunConfig(seed=0), "20261126-193115-mnist-mini-mlp-bn-s0-3f0e"),
        finished(RunConfig(seed=1), None),  # the store failed: the run has no id, its label stands in
    ]
    console = Console(file=io.StringIO(), width=width, color_system=None)
    _print_results(console, outcomes)
    text = console.file.getvalue()
    results = text.split("Per arm")[0]
    lines = results.splitlines()
    assert any(line.split()[:2] == ["run", "status"] for line in lines), text
    for name in ("20261126-193121-fashion-mnist-lenet5-nobn-s123-4b0a",
                 "20261126-193115-mnist-mini-mlp-bn-s0-3f0e", "mnist-mini/mlp/bn/s1"):
        assert sum(name in line for line in lines) == 1, text
    assert all(len(line) <= width for line in text.splitlines()), text
    # Where train / val / test fit they are all shown, else the test numbers, never cut.
    expected = "90.62 / 88.25 / 86.30" if width >= 160 else "86.30"
    assert sum(expected in line and "finished" in line for line in lines) == 3, text


def _header(outcomes, width: int) -> list[str]:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    _print_results(console, outcomes)
    return [line for line in console.file.getvalue().splitlines() if line.split()[:2] == ["run", "status"]]


@pytest.mark.parametrize("width", [80, 120, 200])
def test_results_header_does_not_depend_on_whether_a_run_finished(width):
    run_id = "20261126-193115-mnist-mini-mlp-bn-s0-3f0e"
    cancelled = StoredOutcome(RunConfig(seed=0), run_id, RunResult(status="cancelled"), stored=True)
    done = _header([finished(RunConfig(seed=0), run_id)], width)
    stopped = _header([cancelled], width)
    assert done and [h.split() for h in stopped] == [h.split() for h in done]
