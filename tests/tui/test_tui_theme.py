"""A theme change recolours the plots (textual-plotext alone would keep its cached colours)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.app import App
from textual.pilot import Pilot

from bntui.settings import AppSettings
from bntui.themes import load_themes
from bntui.tui.app import BntuiApp
from bntui.tui.devices import DeviceChoice
from bntui.tui.widgets.metric_plot import Curve, MetricPlot

FIXTURE_RUNS = Path(__file__).parents[1] / "fixtures" / "runs"


def colours(plot: MetricPlot) -> tuple[set, set]:
    """(foreground colours, background colours) of the plot as it is on screen now."""
    styles = [segment.style for strip in plot.strips for segment in strip if segment.style]
    return (
        {tuple(s.color.triplet) for s in styles if s.color and s.color.triplet},
        {tuple(s.bgcolor.triplet) for s in styles if s.bgcolor and s.bgcolor.triplet},
    )


async def wait_for_plot(pilot: Pilot, plot: MetricPlot, series: list, gone: list = ()) -> None:
    """Until the plot shows these colours and none of `gone` (it is drawn by a thread worker,
    so a frame drawn just before the switch may still be on screen for a moment)."""
    for _ in range(400):
        foreground = colours(plot)[0]
        if set(series) <= foreground and not set(gone) & foreground:
            return
        await pilot.pause(0.05)
    raise AssertionError(f"the plot never showed {series} without {list(gone)}")


async def test_switching_theme_recolours_the_curves_and_the_canvas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BNTUI_THEME_DIR", str(tmp_path / "no-user-themes"))
    catalog = load_themes()
    dark, light = catalog.themes["bntui-dark"], catalog.themes["bntui-light"]
    settings = AppSettings(runs_dir=FIXTURE_RUNS, data_dir=tmp_path, theme="bntui-dark")
    app = BntuiApp(settings, devices=[DeviceChoice("cpu", "CPU")], poll_seconds=0.1)
    async with app.run_test(size=(120, 40)) as pilot:
        plot = app.screen.query_one("#loss-plot", MetricPlot)
        await wait_for_plot(pilot, plot, dark.series_rgb[:2])
        _, dark_background = colours(plot)

        app.theme = "bntui-light"
        await wait_for_plot(pilot, plot, light.series_rgb[:2], gone=dark.series_rgb[:2])
        foreground, light_background = colours(plot)
        assert not set(dark.series_rgb[:2]) & foreground
        assert light_background != dark_background

        app.theme = "nord"  # a Textual theme: bntui's palette (dark), nord's own canvas
        await wait_for_plot(pilot, plot, dark.series_rgb[:2])
        _, nord_background = colours(plot)
        assert nord_background not in (dark_background, light_background)


class PlotApp(App):
    CSS = "MetricPlot { background: #102030; } MetricPlot.-other { background: #f0e0d0; }"

    def compose(self):
        yield MetricPlot("loss", id="plot")


async def test_the_canvas_is_redrawn_when_its_css_colour_changes_after_the_curves() -> None:
    """A theme switch asks for recoloured curves first and updates the CSS a moment later;
    a plot drawn in between must not keep the old canvas colour."""
    app = PlotApp()
    async with app.run_test(size=(60, 20)) as pilot:
        plot = app.query_one(MetricPlot)
        xs = [1.0, 2.0, 3.0]
        plot.show_curves([Curve(xs, [0.9, 0.5, 0.3], "val", (255, 0, 0), "braille")], "a run")
        for _ in range(200):
            if plot.strips and (16, 32, 48) in colours(plot)[1]:
                break
            await pilot.pause(0.05)
        assert colours(plot)[1] == {(16, 32, 48)}
        plot.add_class("-other")  # only the CSS changes: no new curves
        for _ in range(200):
            if colours(plot)[1] == {(240, 224, 208)}:
                break
            await pilot.pause(0.05)
        assert colours(plot)[1] == {(240, 224, 208)}
