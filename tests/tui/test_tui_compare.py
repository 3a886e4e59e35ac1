"""The compare view, the group view and the export dialog, driven by keyboard in a tiny app
over the fixture runs dir tests/fixtures/compare_runs (see its generate.py)."""

from __future__ import annotations

import re

import math

from pathlib import Path

import pytest
from textual.app import App
from textual.widgets import DataTable, Static

from bntui.present.cards import group_card_text
from bntui.config import RunConfig
from bntui.series import ema
from bntui.stats import BN_BETTER, summarize_group
from bntui.store import import_runs, list_runs
from bntui.store.schema import RunRecord
from bntui.present.compare import config_diff, run_labels
from bntui.present.units import metric_delta
from bntui.tui.screens.compare import CompareScreen
from bntui.tui.screens.export_dialog import ExportDialog, default_export_path
from bntui.tui.screens.group import GroupScreen
from bntui.tui.widgets.band_plot import BandPlot
from bntui.tui.widgets.overlay_plot import OverlayPlot
from tuihelpers import COMPARE_RUNS as FIXTURE_RUNS, plots_drawn, screen_lines, export_written
from tuihelpers import fixture_records

CSS = Path(__file__).parents[2] / "bntui" / "tui" / "app.tcss"
SIZE = (150, 45)


def group_records() -> list[RunRecord]:
    return [run.record for run in list_runs(FIXTURE_RUNS) if run.group == "fx-group"]


class ScreenApp(App):
    """Opens one screen on start; `results` collects what it was dismissed with."""

    CSS_PATH = str(CSS)

    def __init__(self, screen_factory) -> None:
        super().__init__()
        self.screen_factory = screen_factory
        self.results: list[object] = []

    def on_mount(self) -> None:
        self.push_screen(self.screen_factory(), self.results.append)


def curves_ys(plot: OverlayPlot) -> set[tuple[float, ...]]:
    return {tuple(series.ys) for series in plot.series}


# -- compare view ------------------------------------------------------------------------------


async def test_metric_and_log_scale_toggles_change_the_plot():
    bn, nobn = fixture_records("fx-bn-s0", "fx-nobn-s0")
    app = ScreenApp(lambda: CompareScreen([bn, nobn]))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        plot = app.screen.query_one("#compare-plot", OverlayPlot)
        loss = {tuple(r.history.val_loss) for r in (bn, nobn)} | {tuple(r.history.train_loss) for r in (bn, nobn)}
        assert curves_ys(plot) == loss
        await plots_drawn(pilot)
        assert "┤" in plot.text and not plot.figure.log_y

        await pilot.press("m")
        accuracy = {tuple(r.history.val_accuracy) for r in (bn, nobn)} | {
            tuple(r.history.train_accuracy) for r in (bn, nobn)
        }
        assert curves_ys(plot) == accuracy
        assert plot.figure.ylabel == "accuracy"

        await pilot.press("l")
        await pilot.pause()
        assert plot.figure.log_y
        await plots_drawn(pilot)
        ticks = y_ticks(plot)
        assert evenly_spaced([math.log(t) for t in ticks]) and not evenly_spaced(ticks), ticks  # a log axis
        await pilot.press("l")
        await plots_drawn(pilot)
        assert evenly_spaced(y_ticks(plot)), y_ticks(plot)


async def test_smoothing_keys_apply_a_debiased_ema_and_stop_at_0_9():
    bn, nobn = fixture_records("fx-bn-s0", "fx-nobn-s0")
    app = ScreenApp(lambda: CompareScreen([bn, nobn]))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen, plot = app.screen, app.screen.query_one("#compare-plot", OverlayPlot)
        assert screen.smoothing == 0  # off by default
        await pilot.press("s")
        assert tuple(ema(bn.history.val_loss, screen.smoothing)) in curves_ys(plot)
        assert tuple(bn.history.val_loss) not in curves_ys(plot)
        for _ in range(5):
            await pilot.press("plus")
        assert screen.smoothing == pytest.approx(0.9)
        assert tuple(ema(nobn.history.val_loss, 0.9)) in curves_ys(plot)
        for _ in range(9):
            await pilot.press("minus")
        assert screen.smoothing == 0
        assert tuple(bn.history.val_loss) in curves_ys(plot)


async def test_hiding_the_training_curves_drops_them_from_the_legend():
    bn, nobn = fixture_records("fx-bn-s0", "fx-nobn-s0")
    app = ScreenApp(lambda: CompareScreen([bn, nobn]))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        legend = app.screen.query_one("#compare-legend", Static)
        assert "training:" in str(legend.content)
        await pilot.press("t")
        plot = app.screen.query_one("#compare-plot", OverlayPlot)
        assert curves_ys(plot) == {tuple(r.history.val_loss) for r in (bn, nobn)}
        assert "validation:" in str(legend.content) and "training" not in str(legend.content)
        await pilot.press("t")
        assert "training:" in str(legend.content)


@pytest.mark.parametrize("width", [80, 100, 150])
async def test_legend_entries_are_never_split_across_lines(width):
    records = group_records()
    app = ScreenApp(lambda: CompareScreen(records))
    async with app.run_test(size=(width, 30)) as pilot:
        await pilot.pause()
        lines = screen_lines(app)
        for index, label in enumerate(run_labels(app.screen.records)):
            entry = f"#{index + 1} {label}"
            assert any(entry in line for line in lines), (entry, lines)


def y_ticks(plot) -> list[float]:
    """The values on the y axis, top to bottom, as the plot shows them."""
    return [float(m.group(1)) for line in plot.text.splitlines() if (m := re.match(r"\s*([-\d.e]+)┤", line))]


def evenly_spaced(values: list[float]) -> bool:
    gaps = [a - b for a, b in zip(values, values[1:])]
    return len(gaps) >= 2 and max(gaps) - min(gaps) <= 0.05 * abs(values[0] - values[-1])


def x_tick_labels(lines: list[str], xlabel: str) -> list[str]:
    """The x tick labels: the line above the one naming the axes (y label first)."""
    row = next(i for i, line in enumerate(lines) if line.lstrip().startswith("loss") and xlabel in line)
    return lines[row - 1].replace("│", " ").split()


async def test_the_step_axis_has_integer_ticks():
    records = fixture_records("fx-bn-s0", "fx-nobn-s0")
    app = ScreenApp(lambda: CompareScreen(records))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("x")
        await plots_drawn(pilot)
        labels = x_tick_labels(screen_lines(app), "optimizer step")
        assert len(labels) >= 3, labels
        assert all(label.isdigit() for label in labels), labels


async def test_x_axis_cycles_through_step_and_wall_time():
    (bn,) = fixture_records("fx-bn-s0")
    app = ScreenApp(lambda: CompareScreen([bn]))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        plot = app.screen.query_one("#compare-plot", OverlayPlot)
        await pilot.press("x")
        xs = {tuple(series.xs) for series in plot.series}
        # validation per epoch at its step; training loss at every progress point
        assert xs == {tuple(map(float, bn.history.step)), tuple(map(float, bn.progress.step))}
        await pilot.press("x")
        xs = {tuple(series.xs) for series in plot.series}
        assert xs == {tuple(bn.history.elapsed), tuple(bn.progress.elapsed)}
        assert plot.figure.xlabel.startswith("wall time")


async def test_table_deltas_are_differences_to_the_reference_run():
    bn, nobn = fixture_records("fx-bn-s0", "fx-nobn-s0")
    app = ScreenApp(lambda: CompareScreen([bn, nobn]))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.screen
        table = screen.query_one("#compare-table", DataTable)
        final_gap = nobn.history.val_loss[-1] - bn.history.val_loss[-1]
        best_gap = min(nobn.history.val_loss) - min(bn.history.val_loss)
        test_gap = nobn.final.test_loss - bn.final.test_loss
        row = screen.rows[1]
        assert row.deltas.final == pytest.approx(final_gap)
        assert row.deltas.best == pytest.approx(best_gap)
        assert row.deltas.test == pytest.approx(test_gap)
        assert str(table.get_cell(nobn.id, "d_final")) == metric_delta("loss", final_gap)
        assert str(table.get_cell(bn.id, "d_final")) == "ref"

        # the selected row becomes the reference: the signs flip
        await pilot.press("down", "r")
        assert screen.reference_index == 1
        assert screen.rows[0].deltas.final == pytest.approx(-final_gap)
        assert str(table.get_cell(bn.id, "d_final")) == metric_delta("loss", -final_gap)

        await pilot.press("m")  # accuracy: deltas in percentage points
        acc_gap = bn.history.val_accuracy[-1] - nobn.history.val_accuracy[-1]
        assert screen.rows[0].deltas.final == pytest.approx(acc_gap)
        assert str(table.get_cell(bn.id, "d_final")) == metric_delta("accuracy", acc_gap)
        assert str(table.get_cell(bn.id, "d_final")).endswith(" pt")


async def test_settings_diff_shows_only_differences_until_toggled():
    bn, other = fixture_records("fx-bn-s0", "fx-lr-nodiag")
    differing = [
        name for name in RunConfig.model_fields
        if getattr(bn.config, name) != getattr(other.config, name)
    ]  # fmt: skip
    assert set(differing) == {"lr", "diagnostics_every"}  # what the fixture is built to differ in
    app = ScreenApp(lambda: CompareScreen([bn, other]))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.screen
        table = screen.query_one("#compare-settings", DataTable)
        assert [setting.name for setting in screen.settings] == differing
        assert [key.value for key in table.rows] == differing
        assert table.get_row("lr")[1:] == [str(bn.config.lr), str(other.config.lr)]

        await pilot.press("a")
        assert [key.value for key in table.rows] == list(RunConfig.model_fields)
        assert [s.name for s in screen.settings if s.differs] == differing
        await pilot.press("a")
        assert [key.value for key in table.rows] == differing


def test_identical_settings_give_an_empty_diff():
    bn, again = fixture_records("fx-bn-s0", "fx-bn-s0")
    assert config_diff([bn, again]) == []
    assert len(config_diff([bn, again], show_all=True)) == len(RunConfig.model_fields)


async def test_escape_closes_the_compare_view():
    records = fixture_records("fx-bn-s0", "fx-nobn-s0")
    app = ScreenApp(lambda: CompareScreen(records))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, CompareScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, CompareScreen)


async def test_one_run_is_counted_in_the_singular():
    (bn,) = fixture_records("fx-bn-s0")
    app = ScreenApp(lambda: CompareScreen([bn]))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        status = str(app.screen.query_one("#compare-status", Static).content)
        assert status.startswith("1 run · "), status


# -- group view --------------------------------------------------------------------------------


async def test_group_screen_shows_bands_and_the_card_with_its_verdict():
    records = group_records()
    summary = summarize_group(records)
    app = ScreenApp(lambda: GroupScreen(records))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.screen
        card = str(screen.query_one("#group-card", Static).content)
        assert card == group_card_text(summary)
        assert summary.verdict == BN_BETTER  # the fixture's BN arm is ahead on every seed
        assert f"Verdict: {summary.verdict}" in card
        assert "one standard deviation" in str(screen.query_one("#group-status", Static).content)

        loss_plot = screen.query_one("#group-loss", BandPlot)
        bands = {band.label: band for band in loss_plot.bands}
        assert bands["BN mean"].mid == summary.bn.val_loss.mean
        assert bands["BN mean"].low == summary.bn.val_loss.low
        assert bands["no BN mean"].high == summary.no_bn.val_loss.high
        accuracy_plot = screen.query_one("#group-accuracy", BandPlot)
        accuracy_bands = {band.label: band for band in accuracy_plot.bands}
        assert accuracy_bands["no BN mean"].mid == summary.no_bn.val_accuracy.mean

        await pilot.press("m")  # loss only
        assert loss_plot.display and not accuracy_plot.display


# -- export dialog -----------------------------------------------------------------------------


async def test_a_group_of_one_seed_pair_is_counted_in_the_singular():
    records = fixture_records("fx-bn-s0", "fx-nobn-s0")
    assert summarize_group(records).k == 1
    app = ScreenApp(lambda: GroupScreen(records))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        status = str(app.screen.query_one("#group-status", Static).content)
        assert " · 1 seed pair · " in status, status
        assert app.screen.query_one("#group-loss", BandPlot).figure.title.endswith(" over 1 seed")


async def test_export_writes_a_file_that_imports_back_equal(tmp_path):
    ids = ["fx-bn-s0", "fx-nobn-s0"]
    target = tmp_path / "runs.json"
    app = ScreenApp(lambda: ExportDialog(ids, target, runs_dir=FIXTURE_RUNS))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("enter")
        await export_written(pilot)
        assert app.results == [target]
    assert target.is_file()

    fresh = tmp_path / "store"
    report = import_runs(fresh, target)
    assert not report.rejected
    imported = {run.record.config.label: run.record for run in list_runs(fresh)}
    for original in fixture_records(*ids):
        back = imported[original.config.label]
        assert back.model_dump(exclude={"id"}) == original.model_dump(exclude={"id"})


@pytest.mark.parametrize(
    "make_path, expected",
    [
        (lambda tmp: tmp / "no-such-folder" / "runs.json", "does not exist"),
        (lambda tmp: tmp, "is a folder"),
        (lambda tmp: tmp / "a-file.txt" / "runs.json", "is a file, not a folder"),
    ],
)
async def test_a_bad_path_shows_an_error_in_the_dialog(tmp_path, make_path, expected):
    (tmp_path / "a-file.txt").write_text("not a folder")
    app = ScreenApp(lambda: ExportDialog(["fx-bn-s0"], make_path(tmp_path), runs_dir=FIXTURE_RUNS))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("enter")
        await export_written(pilot)
        dialog = app.screen
        assert isinstance(dialog, ExportDialog)  # still open, nothing raised
        assert expected in str(dialog.query_one("#export-error", Static).content)
        assert app.results == []
        await pilot.press("escape")
        assert app.results == [None]


async def test_write_errors_from_the_store_are_shown_not_raised(tmp_path, monkeypatch):
    import bntui.tui.screens.export_dialog as export_dialog
    from bntui.store import StoreWriteError

    def full_disk(document, path):
        raise StoreWriteError(f"cannot write {path}: no space left on device")

    monkeypatch.setattr(export_dialog, "write_export", full_disk)
    app = ScreenApp(lambda: ExportDialog(["fx-bn-s0"], tmp_path / "runs.json", runs_dir=FIXTURE_RUNS))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("enter")
        await export_written(pilot)
        assert isinstance(app.screen, ExportDialog)
        assert "no space left" in str(app.screen.query_one("#export-error", Static).content)
        assert app.results == []


async def test_an_existing_file_is_replaced_only_on_a_second_enter(tmp_path):
    target = tmp_path / "runs.json"
    target.write_text("keep me")
    app = ScreenApp(lambda: ExportDialog(["fx-bn-s0"], target, runs_dir=FIXTURE_RUNS))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("enter")
        await export_written(pilot)
        assert target.read_text() == "keep me"
        assert "exists" in str(app.screen.query_one("#export-error", Static).content)
        await pilot.press("enter")
        await export_written(pilot)
        assert app.results == [target]
    assert "fx-bn-s0" in target.read_text()


async def test_an_unknown_run_is_reported_in_the_dialog(tmp_path):
    app = ScreenApp(lambda: ExportDialog(["no-such-run"], tmp_path / "runs.json", runs_dir=FIXTURE_RUNS))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("enter")
        await export_written(pilot)
        assert "no-such-run" in str(app.screen.query_one("#export-error", Static).content)
    assert not (tmp_path / "runs.json").exists()


def test_default_export_path_is_timestamped_json_in_the_folder(tmp_path):
    from datetime import datetime

    path = default_export_path(tmp_path, datetime(2026, 3, 4, 5, 6, 7))
    assert path == tmp_path / "bntui-export-20260304-050607.json"


def test_without_colour_every_curve_gets_its_own_marker():
    from bntui.themes import load_themes, plot_theme_for
    from bntui.tui.widgets.overlay_plot import CurvePainter

    theme = plot_theme_for(load_themes(), "bntui-dark")
    painter = CurvePainter(theme, no_color=True)
    markers = [painter.marker(run, split) for run in range(3) for split in ("val", "train")]
    assert len(set(markers)) == len(markers)
    assert painter.color(0) is None
    coloured = CurvePainter(theme)
    assert coloured.color(0) != coloured.color(1)
    assert coloured.marker(0, "val") != coloured.marker(0, "train")
