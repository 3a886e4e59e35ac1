"""The Landscape screen (Santurkar et al. Fig. 4) over the fixture pair, given landscape points."""

from __future__ import annotations

from pathlib import Path

from textual.app import App
from textual.widgets import Select

from bntui.store.schema import LandscapeRecord, RunRecord
from bntui.tui.screens.diagnostics import DiagnosticsPanel
from bntui.tui.screens.landscape import NO_LANDSCAPE, LandscapeScreen
from tuihelpers import fixture_records

CSS = Path(__file__).parents[2] / "bntui" / "tui" / "app.tcss"
SIZE = (150, 50)


def with_points(record: RunRecord, scale: float) -> RunRecord:
    points = [
        {
            "step": step,
            "epoch": 1,
            "loss_min": scale * step,
            "loss_max": 2 * scale * step,
            "grad_change_min": 0.1 * step,
            "grad_change_max": 0.3 * step,
            "beta_smoothness": None if step == 20 else scale,
        }
        for step in (10, 20, 30)
    ]
    return record.model_copy(update={"landscape": LandscapeRecord(points=points)})


class ScreenApp(App):
    CSS_PATH = str(CSS)

    def __init__(self, screen: LandscapeScreen) -> None:
        super().__init__()
        self.landscape = screen

    def on_mount(self) -> None:
        self.push_screen(self.landscape)


def plot(screen: LandscapeScreen, index: int):
    return screen.query_one(f"#diag-panel-{index}", DiagnosticsPanel).plot


def curves(screen: LandscapeScreen, index: int) -> dict:
    return {series.label: series.ys for series in plot(screen, index).series}


async def test_the_pair_shows_min_and_max_bands_side_by_side_on_one_scale():
    nobn, bn = fixture_records("fx-nobn-s0", "fx-bn-s0")
    screen = LandscapeScreen([with_points(nobn, 3.0), with_points(bn, 1.0)])
    async with ScreenApp(screen).run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert curves(screen, 0) == {"min over η": [10.0, 20.0, 30.0], "max over η": [20.0, 40.0, 60.0]}
        assert curves(screen, 1)["max over η"] == [60.0, 120.0, 180.0]  # no BN on the right
        left, right = plot(screen, 0), plot(screen, 1)
        assert (
            left.figure.y_range == right.figure.y_range
            and left.figure.y_range[0] <= 10
            and left.figure.y_range[1] >= 180
        )
        assert plot(screen, 0).series[0].xs == [10.0, 20.0, 30.0]

        await pilot.press("s")  # gradient predictiveness
        assert screen.query_one("#land-measure", Select).value == "grad"
        assert curves(screen, 0)["max over η"] == [3.0, 6.0, 9.0]

        await pilot.press("s")  # beta-smoothness: one line; a point that was not finite is a gap
        (line,) = plot(screen, 0).series
        assert line.ys[0] == 1.0 and line.ys[1] != line.ys[1] and line.ys[2] == 1.0


async def test_a_run_without_measurements_says_how_to_get_them():
    (record,) = fixture_records("fx-bn-s0")
    screen = LandscapeScreen([record])
    async with ScreenApp(screen).run_test(size=SIZE) as pilot:
        await pilot.pause()
        panel = screen.query_one("#diag-panel-0", DiagnosticsPanel)
        assert panel.message.display and str(panel.message.content) == NO_LANDSCAPE
        assert "'landscape every'" in NO_LANDSCAPE and "--landscape-every" in NO_LANDSCAPE
        assert not screen.query_one("#diag-panel-1", DiagnosticsPanel).display  # one run: one panel
