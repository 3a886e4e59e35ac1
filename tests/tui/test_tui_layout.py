"""Layout at the sizes people use: what is on screen, read back as text, at 80x24 and wider."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from textual.app import App, ComposeResult

from bntui.config import RunConfig
from bntui.settings import AppSettings
from bntui.tui.app import BntuiApp
from bntui.tui.devices import DeviceChoice
from bntui.tui.keys import BUILTIN_KEYS
from bntui.tui.run_view import RunView
from bntui.present.units import metric_delta, metric_value
from bntui.tui.screens.compare import CompareScreen
from bntui.tui.screens.help import HelpScreen
from bntui.tui.widgets.figure import FigureRequest, draw
from bntui.tui.widgets.metric_plot import Curve, metric_figure
from bntui.tui.widgets.progress_line import ProgressLine
from bntui.tui.widgets.run_table import RunTable
from tuihelpers import fixture_records, plots_drawn, screen_lines, wait_for

CSS = Path(__file__).parents[2] / "bntui" / "tui" / "app.tcss"


class ScreenApp(App):
    CSS_PATH = str(CSS)

    def __init__(self, screen_factory) -> None:
        super().__init__()
        self.screen_factory = screen_factory

    def on_mount(self) -> None:
        self.push_screen(self.screen_factory())


# -- run list -----------------------------------------------------------------------------------


class RunTableApp(App):
    def compose(self) -> ComposeResult:
        yield RunTable(id="runs")


async def test_run_list_columns_widen_as_a_run_moves_on() -> None:
    app = RunTableApp()
    async with app.run_test(size=(200, 10)) as pilot:
        table = app.query_one(RunTable)
        view = RunView("job-1", RunConfig(arch="lenet5", epochs=500), "queued")
        table.upsert(view)  # added while queued: "(queued)", "0/500"
        await pilot.pause()
        run_id = "20261126-101112-mnist-mini-lenet5-nobn-s0-8f3a"
        view.run_id, view.status = run_id, "cancelled"
        view.curves.epoch = list(range(1, 57))
        table.upsert(view)
        await pilot.pause()
        row = next(line for line in screen_lines(app) if "cancel" in line)
        assert re.search(rf"\bcancelled\b.*\b56/500\b.*{run_id}", row), row


async def test_a_run_id_cut_by_a_narrow_run_list_ends_in_an_ellipsis() -> None:
    app = RunTableApp()
    run_id = "20261126-101112-mnist-mini-lenet5-nobn-s0-8f3a"
    async with app.run_test(size=(100, 10)) as pilot:
        table = app.query_one(RunTable)
        table.upsert(RunView("job-1", RunConfig(arch="lenet5", epochs=500), "finished", run_id=run_id))
        await pilot.pause()
        row = next(line for line in screen_lines(app) if "finished" in line)
        shown = row.split()[-1]
        assert shown.endswith("…") and run_id.startswith(shown[:-1]) and len(shown) >= 10, row
        assert table.virtual_size.width <= table.scrollable_content_region.width  # no sideways scroll

        await pilot.resize_terminal(200, 10)
        await pilot.pause()
        assert run_id in next(line for line in screen_lines(app) if "finished" in line)


class ProgressApp(App):
    CSS_PATH = str(CSS)

    def compose(self) -> ComposeResult:
        yield ProgressLine(id="progress")


async def test_a_progress_line_too_long_drops_its_last_parts_whole() -> None:
    app = ProgressApp()
    async with app.run_test(size=(80, 5)) as pilot:
        view = RunView("k", RunConfig(epochs=10), "finished", run_id="20261126-194954-mnist-mini-mlp-bn-s0-b260")
        view.device = "cpu"
        app.query_one(ProgressLine).show(view)
        await pilot.pause()
        line = screen_lines(app)[0].rstrip()
        assert "finished · epoch 0/10" in line
        assert line.endswith("· cpu"), line  # the run id (last, and in the run list) is dropped whole
        assert "…" not in line and "2026" not in line


# -- compare view -------------------------------------------------------------------------------


async def test_compare_view_fits_80x24_with_its_numbers_visible() -> None:
    bn, nobn = fixture_records("fx-bn-s0", "fx-nobn-s0")
    app = ScreenApp(lambda: CompareScreen([bn, nobn]))
    async with app.run_test(size=(80, 24)) as pilot:
        await plots_drawn(pilot)
        lines = screen_lines(app)
        assert lines[0].strip().startswith("2 runs · metric: loss")  # the status line
        assert "loss: validation and training" in lines[1]  # the plot's title
        text = "\n".join(lines)
        rows = app.screen.rows
        for number in (
            metric_value("loss", rows[1].values.final),
            metric_delta("loss", rows[1].deltas.final),
            metric_value("loss", rows[1].values.best),
        ):
            assert number in text
        assert "Close" in lines[-1]  # the footer is still the last line

        # the rest of the table is a scroll away; the # column stays
        await pilot.press("right", "right", "right", "right", "right", "right", "right", "right")
        await pilot.pause()
        text = "\n".join(screen_lines(app))
        assert metric_value("loss", rows[1].values.test) in text
        assert "◆1" in text


# -- help ---------------------------------------------------------------------------------------


async def test_help_wraps_its_lines_and_keeps_the_close_hint_at_80x24() -> None:
    app = ScreenApp(HelpScreen)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        text = " ".join(screen_lines(app))
        assert "What the plots draw" in text and "esc closes" in text
        seen = text
        for _ in range(6):
            await pilot.press(*["down"] * 8)
            await pilot.pause()
            text = " ".join(screen_lines(app))
            assert "esc closes" in text  # the close hint stays in the border
            seen += text
        words = " ".join(seen.replace("█", " ").split())
        assert "Start the runs set up on the left (they queue)" in words  # wrapped, not cut
        assert BUILTIN_KEYS[-1][1] in text  # the last key, scrolled to


# -- plots --------------------------------------------------------------------------------------

CAPTION = "mnist-mini/mlp seed 0: BN vs no BN"


def plot_lines(metric: str, width: int, height: int) -> list[str]:
    xs = [float(epoch) for epoch in range(1, 11)]
    bn = Curve(xs, [0.80 + 0.015 * i for i in range(10)], "BN val", (255, 0, 0), "braille")
    no_bn = Curve(xs, [0.60 + 0.03 * i for i in range(10)], "no BN val", (0, 255, 0), "dot")
    request = FigureRequest(metric_figure(metric, CAPTION, (bn, no_bn)), width, height, (200, 200, 200), (0, 0, 0))
    return [strip.text for strip in draw(request)]


@pytest.mark.parametrize("width", [47, 60])
def test_a_long_plot_title_is_kept_or_loses_whole_parts(width: int) -> None:
    # 47: the accuracy plot of a BN / no-BN pair at 140 columns, where plotext dropped it
    title = plot_lines("accuracy", width, 14)[0].strip()
    full = f"accuracy - {CAPTION}"
    assert "…" not in title and full.startswith(title)
    assert title == full or full[len(title)] in " :(-"  # cut between parts, never inside a word


def test_a_plot_title_too_long_for_the_plot_keeps_its_metric_whole() -> None:
    assert plot_lines("accuracy", 24, 14)[0].strip() == "accuracy"


def test_loss_and_accuracy_titles_differ_however_narrow_the_plots() -> None:
    for width in range(20, 80):
        loss, accuracy = (plot_lines(metric, width, 14)[0].strip() for metric in ("loss", "accuracy"))
        assert loss.startswith("loss") and accuracy.startswith("accuracy") and loss != accuracy


@pytest.mark.parametrize("height", range(9, 31))  # 8: the key line leaves 3 canvas rows
def test_y_tick_labels_are_evenly_spaced(height: int) -> None:
    ticks = []  # (row, value) of every labelled row
    for row, line in enumerate(plot_lines("accuracy", 42, height)):
        match = re.match(r"\s*(-?\d+\.\d+)┤", line)
        if match:
            ticks.append((row, float(match.group(1))))
    assert len(ticks) >= 3
    row_gaps = {b[0] - a[0] for a, b in zip(ticks, ticks[1:])}
    value_gaps = [a[1] - b[1] for a, b in zip(ticks, ticks[1:])]
    assert len(row_gaps) == 1, ticks
    precision = 10 ** -len(str(ticks[0][1]).split(".")[1])  # the labels are rounded
    assert max(value_gaps) - min(value_gaps) <= 2 * precision + 1e-9, ticks


async def test_the_loss_acc_key_is_offered_only_where_one_plot_shows_at_a_time(tmp_path: Path) -> None:
    app = BntuiApp(
        AppSettings(runs_dir=tmp_path / "runs", data_dir=tmp_path / "data"), devices=[DeviceChoice("cpu", "test CPU")]
    )

    def footer_labels() -> list[str]:
        return [str(key.description) for key in app.screen.query("FooterKey")]

    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: "Start" in footer_labels(), "the footer")
        assert "Loss/Acc" not in footer_labels()  # wide: both plots are shown
        await pilot.resize_terminal(100, 30)
        await wait_for(pilot, lambda: "Loss/Acc" in footer_labels(), "^g in the footer")
        await pilot.press("ctrl+g")
        assert app.main.has_class("show-accuracy")


def test_the_main_plots_epoch_axis_has_whole_numbers() -> None:
    xs = [1 + 39 * i / 99 for i in range(100)]  # 40 epochs with points between them
    curve = Curve(xs, [1.0 / x for x in xs], "BN val", (255, 0, 0), "braille")
    request = FigureRequest(metric_figure("loss", CAPTION, (curve,)), 70, 16, (200, 200, 200), (0, 0, 0))
    lines = [strip.text for strip in draw(request)]
    tick_line = next(
        line for line in reversed(lines) if re.search(r"\d", line) and "┬" not in line and "epoch" not in line
    )
    labels = tick_line.split()
    assert len(labels) >= 3 and all(label.isdigit() for label in labels), tick_line
