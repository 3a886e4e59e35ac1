"""The one plot pipeline (issue 16): a Figure is built off the event loop, at most 4 times a
second, and the newest figure wins."""

from __future__ import annotations

import threading

from textual.app import App, ComposeResult
from tuihelpers import plots_drawn

import bntui.tui.widgets.figure_widget as figure_widget
from bntui.present.plots import Figure, Trace
from bntui.tui.widgets.figure_widget import FigureWidget


class PlotApp(App):
    def compose(self) -> ComposeResult:
        yield FigureWidget(id="plot")


def figure(index: int) -> Figure:
    xs = tuple(float(x) for x in range(1, 11))
    return Figure((Trace(xs, tuple(x * index for x in xs), (255, 0, 0), "braille"),), title=f"figure {index}")


async def test_a_burst_of_figures_builds_a_few_times_off_the_event_loop_and_shows_the_last(monkeypatch):
    builds: list[str] = []
    real_draw = figure_widget.draw

    def counted_draw(request):
        builds.append(threading.current_thread().name)
        return real_draw(request)

    monkeypatch.setattr(figure_widget, "draw", counted_draw)
    app = PlotApp()
    async with app.run_test(size=(60, 16)) as pilot:
        plot = app.query_one("#plot", FigureWidget)
        await plots_drawn(pilot)
        builds.clear()
        for index in range(1, 21):  # 20 updates at once, as a fast training run sends them
            plot.show_figure(figure(index))
        await plots_drawn(pilot)
        assert "figure 20" in plot.text.splitlines()[0]  # the newest figure is on screen
        assert 1 <= len(builds) <= 3, builds  # not one build per update
        assert threading.main_thread().name not in builds  # none on the event loop's thread
