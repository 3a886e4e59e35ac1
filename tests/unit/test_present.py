"""bntui.present: what the CLI and the TUI both show, written once (issue 16)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from bntui.commands.progress import FittedProgress
from bntui.config import MAX_SEEDS, default_seeds
from bntui.present import units
from bntui.present.statuses import STATUS_ROLE, TERMINAL_COLOURS, status_markup, status_role
from bntui.present.words import counted


def progress_lines(width: int) -> list[str]:
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None)
    progress = FittedProgress(console=console)
    progress.add_task(
        "mnist-mini/lenet5/bn/s10", total=15000, completed=5321, epoch="5/30", loss="0.1234", speed="1234"
    )
    progress.add_task("mnist-mini/mlp/no-bn/s12 finished", total=None, epoch="-", loss="-", speed="-")
    console.print(progress.make_tasks_table(progress.tasks))
    return out.getvalue().splitlines()


@pytest.mark.parametrize("width", [60, 80, 100])
def test_the_run_progress_leaves_columns_out_whole_at_narrow_widths(width):
    lines = progress_lines(width)
    assert all("…" not in line and len(line) <= width for line in lines), lines
    assert "epoch 5/30" in lines[0] and lines[1].startswith("mnist-mini/mlp/no-bn/s12 finished")


def test_the_run_progress_shows_every_column_where_there_is_room():
    line = progress_lines(140)[0]
    assert "5321/15000" in line and "1234 steps/s" in line and "loss 0.1234" in line
    assert "5321/15000" not in progress_lines(80)[0]  # the first column to go


@pytest.mark.parametrize("seconds, text", [
    (None, "-"), (0.04, "0.0s"), (12.34, "12.3s"), (59.96, "60.0s"), (65, "1m 05s"), (3600, "1h 00m"),
    (7384, "2h 03m"), (-3, "0.0s"), (float("nan"), "-"),
])  # fmt: skip
def test_durations_are_written_one_way(seconds, text):
    assert units.duration(seconds) == text


def test_differences_of_accuracies_are_in_points_everywhere():
    assert units.metric_delta("accuracy", 0.0125) == "+1.25 pt"
    assert units.metric_delta("loss", -0.01) == "-0.0100"
    assert units.metric_value("accuracy", 0.5) == "50.00%"
    assert units.metric_value("accuracy", None) == "-"
    assert units.setting(True) == "on" and units.setting([100, 100]) == "100,100"


def test_every_status_has_a_theme_role_and_a_terminal_colour():
    for status in ("queued", "running", "finished", "cancelled", "failed", "diverged", "crashed"):
        assert status_role(status) in TERMINAL_COLOURS
    assert set(STATUS_ROLE.values()) <= set(TERMINAL_COLOURS)
    assert status_markup("failed") == "[red]failed[/]"
    assert status_markup("[odd]") == r"\[odd]"  # a status read from a file is escaped


def test_counted_words():
    assert [counted(n, "run") for n in (0, 1, 2)] == ["0 runs", "1 run", "2 runs"]


def test_seeds_default_to_three_pairs_with_both_in_the_cli_and_the_form(tmp_path):
    from bntui.cli import RunCommand
    from bntui.commands.run import build_plan
    from bntui.settings import AppSettings

    settings = AppSettings(data_dir=tmp_path, runs_dir=tmp_path / "runs")
    plan, _ = build_plan(RunCommand(bn="both"), settings)
    assert len(plan.configs) == 2 * default_seeds("both") == 6
    plan, _ = build_plan(RunCommand(), settings)
    assert len(plan.configs) == default_seeds("on") == 1
    assert RunCommand.model_fields["seeds"].metadata[-1].le == MAX_SEEDS
