"""A line plot of one metric (loss or accuracy) against epochs, in the app's theme colours.

Drawn from scratch at each render with explicit colours: textual-plotext caches its "auto"
theme by name, so a theme that changes (or is re-registered) would otherwise keep old colours.
The app decides when to refresh (at most ~4 times a second), never once per event."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import RenderResult
from textual_plotext import PlotextPlot


@dataclass(frozen=True)
class Curve:
    xs: list[float]
    ys: list[float]
    label: str
    color: tuple[int, int, int] | None  # None: the terminal's default (NO_COLOR)
    marker: str  # a plotext marker: "braille", "dot", "hd", or one character
    scatter: bool = False  # points only, no connecting line
    short_label: str = ""  # the legend entry when there is no room for every label ("": none)


def _downsample(xs: list[float], ys: list[float], width: int) -> tuple[list[float], list[float]]:
    from bntui.series import downsample

    return downsample(xs, ys, width)


class MetricPlot(PlotextPlot):
    def __init__(self, metric: str, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.metric = metric
        self.caption = ""
        self.curves: list[Curve] = []

    def show_curves(self, curves: list[Curve], caption: str = "") -> None:
        self.curves = curves
        self.caption = caption
        self.refresh()

    def render(self) -> RenderResult:
        width, height = self.size.width, self.size.height
        if width < 10 or height < 5:
            return Text("")
        _, _, background, foreground = self.colors
        plt = self.plt
        plt.clear_figure()
        plt.plotsize(width, height)
        plt._set_size(width, height)  # textual-plotext's own workaround for resizing, see its render()
        plt.canvas_color(background.rgb)
        plt.axes_color(background.rgb)
        plt.ticks_color(foreground.rgb)
        plt.title(f"{self.metric} - {self.caption}" if self.caption else self.metric)
        plt.xlabel("epoch")
        plt.ylabel(self.metric)
        drawn = False
        # The legend sits inside the plot: with little height, fall back to the short labels.
        shown = [curve for curve in self.curves if curve.xs]
        full_legend = height - 6 >= 2 * len(shown)
        for curve in shown:
            xs, ys = _downsample(curve.xs, curve.ys, max(width - 10, 10))
            draw = plt.scatter if curve.scatter else plt.plot
            label = curve.label if full_legend else curve.short_label
            draw(xs, ys, label=label or None, color=curve.color, marker=curve.marker)
            drawn = True
        if not drawn:
            plt.xlim(0, 1)
            plt.ylim(0, 1)
            plt.xticks([])
            plt.yticks([])
        return Text.from_ansi(plt.build())
