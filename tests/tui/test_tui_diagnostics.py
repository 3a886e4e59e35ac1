"""The BatchNorm diagnostics screen over the fixture runs (tests/fixtures/compare_runs): the
seed-0 BN / no-BN pair carries diagnostics for layers fc1 and fc2; fx-lr-nodiag has none."""

from __future__ import annotations

from pathlib import Path

from textual.app import App
from textual.widgets import Select, Static

from bntui.store import list_runs
from bntui.store.schema import DiagnosticsRecord, RunRecord
from bntui.tui.screens.diagnostics import NO_DIAGNOSTICS, DiagnosticsPanel, DiagnosticsScreen
from bntui.tui.widgets.overlay_plot import OverlayPlot
from tuihelpers import COMPARE_RUNS as FIXTURE_RUNS, plots_drawn, screen_lines
from tuihelpers import fixture_records, wait_for

CSS = Path(__file__).parents[2] / "bntui" / "tui" / "app.tcss"
SIZE = (150, 50)


def recorded(record: RunRecord, layer: str, key: str) -> list[float]:
    """What the fixture holds for `key` of `layer`, point by point."""
    return [next(row[key] for row in point["layers"] if row["layer"] == layer) for point in record.diagnostics.points]


class ScreenApp(App):
    CSS_PATH = str(CSS)

    def __init__(self, screen: DiagnosticsScreen) -> None:
        super().__init__()
        self.diagnostics = screen

    def on_mount(self) -> None:
        self.push_screen(self.diagnostics)


def panel(screen: DiagnosticsScreen, index: int) -> DiagnosticsPanel:
    return screen.query_one(f"#diag-panel-{index}", DiagnosticsPanel)


def band_of(screen: DiagnosticsScreen, index: int):
    (band,) = panel(screen, index).plot.bands
    return band


async def test_unit_percentile_bands_are_the_recorded_values():
    (record,) = fixture_records("fx-bn-s0")
    screen = DiagnosticsScreen([record])
    async with ScreenApp(screen).run_test(size=SIZE) as pilot:
        await pilot.pause()
        band = band_of(screen, 0)
        assert band.xs == [point["step"] for point in record.diagnostics.points]
        assert band.low == recorded(record, "fc2", "unit_p15")
        assert band.mid == recorded(record, "fc2", "unit_p50")
        assert band.high == recorded(record, "fc2", "unit_p85")
        await plots_drawn(pilot)
        assert "┤" in panel(screen, 0).plot.text  # it was drawn, not only computed

        await pilot.press("left_square_bracket")  # previous layer
        assert screen.layer_name == "fc1"
        assert band_of(screen, 0).mid == recorded(record, "fc1", "unit_p50")

        await pilot.press("s")  # next statistic: percentiles over all units
        assert screen.query_one("#diag-statistic", Select).value == "all"
        band = band_of(screen, 0)
        assert (band.low, band.mid, band.high) == tuple(
            recorded(record, "fc1", key) for key in ("preact_p15", "preact_p50", "preact_p85")
        )

        accuracy = screen.query_one("#diag-accuracy", OverlayPlot)
        (curve,) = accuracy.series
        assert curve.ys == record.history.val_accuracy
        assert curve.xs == [float(step) for step in record.history.step]


async def test_a_pair_is_shown_side_by_side_bn_first_on_one_y_scale():
    nobn, bn = fixture_records("fx-nobn-s0", "fx-bn-s0")
    screen = DiagnosticsScreen([nobn, bn])
    async with ScreenApp(screen).run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert band_of(screen, 0).mid == recorded(bn, "fc2", "unit_p50")
        assert band_of(screen, 1).mid == recorded(nobn, "fc2", "unit_p50")
        left, right = panel(screen, 0).plot, panel(screen, 1).plot
        assert left.figure.y_range is not None and left.figure.y_range == right.figure.y_range
        everything = [y for plot in (left, right) for series in plot.series for y in series.ys]
        assert left.figure.y_range[0] <= min(everything) and max(everything) <= left.figure.y_range[1]
        assert "BN" in str(panel(screen, 0).title.content)

        # BatchNorm's gamma/beta exist only in the BN arm
        screen.query_one("#diag-statistic", Select).value = "affine"
        await pilot.pause()
        gammas = {series.label: series.ys for series in panel(screen, 0).plot.series}
        assert gammas["γ"] == recorded(bn, "fc2", "gamma_mean")
        assert panel(screen, 1).message.display
        assert "no BatchNorm" in str(panel(screen, 1).message.content)


async def test_a_run_without_diagnostics_says_how_to_get_them():
    (record,) = fixture_records("fx-lr-nodiag")
    screen = DiagnosticsScreen([record])
    async with ScreenApp(screen).run_test(size=SIZE) as pilot:
        await pilot.pause()
        message = panel(screen, 0).message
        assert message.display
        assert str(message.content) == NO_DIAGNOSTICS
        # runs come from the app and from the command line: both ways are named
        assert "'diag every'" in NO_DIAGNOSTICS and "--diagnostics-every" in NO_DIAGNOSTICS
        assert not panel(screen, 0).plot.display
        assert screen.query_one("#diag-accuracy", OverlayPlot).series  # accuracy still shown


async def test_update_records_redraws_with_new_points_at_most_4_times_a_second():
    (full,) = fixture_records("fx-bn-s0")
    points = full.diagnostics.points

    def first(count: int) -> RunRecord:
        return full.model_copy(update={"diagnostics": DiagnosticsRecord(points=points[:count])})

    screen = DiagnosticsScreen([first(2)])
    async with ScreenApp(screen).run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert len(band_of(screen, 0).xs) == 2
        screen.update_records([first(4)])  # redrawn at once
        screen.update_records([first(6)])  # these two fold into one later redraw
        screen.update_records([full])
        assert len(band_of(screen, 0).xs) == 4
        assert screen.throttle.pending
        for _ in range(50):
            if not screen.throttle.pending:
                break
            await pilot.pause(0.05)
        assert band_of(screen, 0).mid == recorded(full, "fc2", "unit_p50")


async def test_diagnostics_that_appear_later_fill_the_layer_choice():
    (full,) = fixture_records("fx-bn-s0")
    empty = full.model_copy(update={"diagnostics": None, "status": "running"})
    screen = DiagnosticsScreen([empty])
    async with ScreenApp(screen).run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "waiting" in str(panel(screen, 0).message.content)
        screen.update_records([full])
        for _ in range(50):
            if not screen.throttle.pending:
                break
            await pilot.pause(0.05)
        await pilot.pause()
        assert screen.query_one("#diag-layer", Select).value == "fc2"
        assert band_of(screen, 0).mid == recorded(full, "fc2", "unit_p50")
        assert isinstance(panel(screen, 0).title, Static)


def test_a_whole_group_shows_its_lowest_complete_seed_pair():
    from bntui.tui.screens.diagnostics import ordered_records

    runs = [run.record for run in list_runs(FIXTURE_RUNS) if run.group == "fx-group"]
    shown = ordered_records(list(reversed(runs)))
    assert [(r.config.bn, r.config.seed) for r in shown] == [(True, 0), (False, 0)]


async def test_one_run_left_out_is_counted_in_the_singular():
    records = fixture_records("fx-bn-s0", "fx-nobn-s0", "fx-bn-s1")
    screen = DiagnosticsScreen(records)
    async with ScreenApp(screen).run_test(size=SIZE) as pilot:
        await pilot.pause()
        status = str(screen.query_one("#diag-status", Static).content)
        assert "1 more run of the group not shown" in status, status


async def test_the_statistic_picker_stays_on_one_line_at_100x30():
    from bntui.tui.screens.diagnostics import STATISTICS

    records = fixture_records("fx-bn-s0", "fx-nobn-s0")
    screen = DiagnosticsScreen(records)
    async with ScreenApp(screen).run_test(size=(100, 30)) as pilot:
        for statistic in STATISTICS:
            await pilot.pause()
            assert screen.statistic == statistic
            picker = screen.query_one("#diag-statistic", Select)
            assert picker.region.height == 3, (statistic.key, picker.region)  # one line in its frame
            await pilot.press("s")


async def test_log_y_is_refused_with_a_note_when_the_shown_values_are_not_all_positive():
    records = fixture_records("fx-bn-s0", "fx-nobn-s0")
    screen = DiagnosticsScreen(records)
    async with ScreenApp(screen).run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        linear = panel(screen, 0).plot.figure.y_range
        await pilot.press("g")  # one unit's percentiles: p15 is negative in both arms
        await pilot.pause()
        status = str(screen.query_one("#diag-status", Static).content)
        assert "log y needs positive values: p15" in status, status
        assert "values ≤ 0" in status
        assert "log y needs positive values" in screen_lines(screen.app)[0]  # fits at 100 columns
        left, right = panel(screen, 0).plot, panel(screen, 1).plot
        assert not left.figure.log_y and not right.figure.log_y
        assert left.figure.y_range == right.figure.y_range == linear
        await plots_drawn(pilot)
        assert "p15 / p85" in left.text.splitlines()[-1]  # the key under the plot keeps the band


def y_tick_labels(plot: OverlayPlot) -> list[str]:
    return [line.split("┤")[0].strip() for line in plot.text.splitlines() if "┤" in line]


async def test_log_y_on_positive_values_keeps_the_panes_on_one_y_axis():
    bn, nobn = fixture_records("fx-bn-s0", "fx-nobn-s0")
    nobn = nobn.model_copy(deep=True)
    for point in nobn.diagnostics.points:  # the fixture's arms have equal gradient norms
        for row in point["layers"]:
            row["grad_norm"] *= 30
    screen = DiagnosticsScreen([bn, nobn])
    async with ScreenApp(screen).run_test(size=SIZE) as pilot:
        screen.query_one("#diag-statistic", Select).value = "grad"
        await pilot.press("g")
        await pilot.pause()
        status = str(screen.query_one("#diag-status", Static).content)
        assert "y: log" in status and "needs positive" not in status, status
        left, right = panel(screen, 0).plot, panel(screen, 1).plot
        assert left.figure.log_y and right.figure.log_y
        await plots_drawn(pilot)
        assert "┤" in left.text and "┤" in right.text
        assert y_tick_labels(left) == y_tick_labels(right) != []


async def test_a_twin_that_starts_later_gets_its_own_panel_and_a_removed_run_takes_its_panel():
    bn, nobn = fixture_records("fx-bn-s0", "fx-nobn-s0")
    screen = DiagnosticsScreen([bn])  # opened while the no-BN twin was still queued
    async with ScreenApp(screen).run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert len(screen.query(DiagnosticsPanel)) == 1
        screen.update_records([bn, nobn])  # the twin started: the app feeds both
        await wait_for(
            pilot,
            lambda: len(screen.query(DiagnosticsPanel)) == 2 and "┤" in panel(screen, 1).plot.text,
            "the twin's panel",
        )
        assert band_of(screen, 1).mid == recorded(nobn, "fc2", "unit_p50")
        assert str(panel(screen, 1).title.render()).startswith("no BN")

        screen.update_records([nobn])  # the BN run was removed from the store
        await wait_for(
            pilot,
            lambda: len(screen.query(DiagnosticsPanel)) == 1 and "┤" in panel(screen, 0).plot.text,
            "one panel again",
        )
        assert band_of(screen, 0).mid == recorded(nobn, "fc2", "unit_p50")
