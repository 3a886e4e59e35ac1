"""A plot of several curves at once (runs, arms, percentiles), in explicit colours.

The screens hand it finished curves (`PlotSeries`: already smoothed, on the chosen x axis);
the widget only fits them to its size: log-safe values on a log axis, then at most one
point per column (bntui.series.downsample keeps spikes and extremes). What was asked for
(`series`) and what was drawn (`drawn`) are both kept, for tests and for the legend.

Like MetricPlot, it redraws from scratch with explicit colours on every render (the
"auto" plotext theme of textual-plotext is cached by theme name and would go stale)."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual.app import App, RenderResult
from textual.message_pump import MessagePump
from textual.timer import Timer
from textual_plotext import PlotextPlot

from bntui.series import downsample, log_safe
from bntui.themes import (
    ThemeCatalog,
    ThemeFile,
    curve_style,
    load_themes,
    no_color_requested,
    plot_theme_for,
)
from bntui.tui.widgets.metric_plot import canvas_rows, integer_ticks, set_even_yticks, title_text

# Columns the y tick labels and the frame take from the plot's width.
_AXIS_COLUMNS = 10


@dataclass(frozen=True)
class PlotSeries:
    xs: list[float]
    ys: list[float]
    color: tuple[int, int, int] | None  # None: the terminal's default colour (NO_COLOR)
    marker: str  # a plotext marker: "braille", "dot", "hd", or one character
    label: str | None = None  # named in the key line under the plot; None: not listed there
    points: str = ""  # a character drawn on each data point over the line ("": a line only)


def _key_symbol(marker: str) -> str:
    """Two cells that look like a marker's curve, for the key line."""
    return {"braille": "⠒⠒", "dot": "••"}.get(marker, marker * 2 if len(marker) == 1 else "⠒⠒")


def _common_words(labels: list[str]) -> list[str]:
    words = [label.split(" ") for label in labels]
    common: list[str] = []
    for group in zip(*words):
        if len(set(group)) > 1:
            break
        common.append(group[0])
    return common


def overlay_key(series: Sequence[PlotSeries]) -> Text:
    """The key line under an overlay plot (never on the data): each colour's run name ("BN",
    "no BN": the words its labels share), then each kind of mark ("⠒⠒ mean", "╌╌ ± 1 std").
    Without colour, every labelled curve with its own mark."""
    labelled = [curve for curve in series if curve.label and curve.xs]
    text = Text()
    if not labelled:
        return text
    if any(curve.color is None for curve in labelled):
        return Text("  ").join(Text(f"{_key_symbol(c.marker)} {c.label}") for c in labelled)
    by_color: dict[tuple[int, int, int] | None, list[PlotSeries]] = {}
    for curve in labelled:
        by_color.setdefault(curve.color, []).append(curve)
    kinds: dict[str, str] = {}
    for color, curves in by_color.items():
        labels = [curve.label or "" for curve in curves]
        common = _common_words(labels) if len(labels) > 1 or len(by_color) > 1 else []
        if len(labels) == 1 and len(by_color) > 1:
            common = labels[0].split(" ")  # one curve per colour: the label names the run
        if common:
            text.append(f"■ {' '.join(common)} ", style=Style(color=f"rgb{tuple(color)}" if color else None, bold=True))
        for curve in curves:
            kind = " ".join((curve.label or "").split(" ")[len(common):])
            if kind:
                kinds.setdefault(kind, _key_symbol(curve.marker))
    text.append(" ".join(f"{symbol} {kind}" for kind, symbol in kinds.items()))
    return text.rstrip() or text


class OverlayPlot(PlotextPlot):
    """Call `show(...)` with the curves; the widget redraws when it next renders."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.series: list[PlotSeries] = []
        self.drawn: list[PlotSeries] = []
        self.title = ""
        self.xlabel = ""
        self.ylabel = ""
        self.log_y = False
        self.y_range: tuple[float, float] | None = None
        self.message = ""  # shown instead of axes when there is nothing to draw
        self.integer_x = False

    def show(
        self,
        series: Sequence[PlotSeries],
        *,
        title: str = "",
        xlabel: str = "",
        ylabel: str = "",
        log_y: bool = False,
        y_range: tuple[float, float] | None = None,
        message: str = "nothing to plot yet",
        integer_x: bool = False,
    ) -> None:
        """`y_range`: fixed y limits (plots meant to be compared side by side share one; on a
        log axis, used when both are positive).
        `integer_x`: x values are counts (steps, epochs): ticks on whole numbers only."""
        self.integer_x = integer_x
        self.series = list(series)
        self.y_range = y_range
        self.title = title
        self.xlabel = xlabel
        self.ylabel = ylabel
        self.log_y = log_y
        self.message = message
        self.refresh()

    @property
    def has_data(self) -> bool:
        return any(s.xs for s in self.series)

    def render(self) -> RenderResult:
        width, height = self.size.width, self.size.height
        if width < 12 or height < 5:
            return Text("")
        if not self.has_data:
            self.drawn = []
            # A blank plot with an explanation beats empty axes.
            return Text("\n" * max(height // 2 - 1, 0) + self.message, justify="center")
        _, _, background, foreground = self.colors
        # The title is our own first line (see metric_plot.title_text) and the key our last;
        # plotext draws the rest, with no legend of its own (it sat on the data).
        key = overlay_key(self.series)
        key.truncate(width)
        figure_height = height - (1 if self.title else 0) - (1 if key.plain else 0)
        plt = self.plt
        plt.clear_figure()
        plt.plotsize(width, figure_height)
        plt._set_size(width, figure_height)  # textual-plotext's own resizing workaround, see its render()
        plt.canvas_color(background.rgb)
        plt.axes_color(background.rgb)
        plt.ticks_color(foreground.rgb)
        if self.xlabel:
            plt.xlabel(self.xlabel)
        if self.ylabel:
            plt.ylabel(self.ylabel)
        columns = max(width - _AXIS_COLUMNS, 10)
        drawn: list[PlotSeries] = []
        for curve in self.series:
            ys = log_safe(curve.ys) if self.log_y else curve.ys
            xs, ys = downsample(curve.xs, ys, columns)
            if not xs:
                continue
            plt.plot(xs, ys, marker=curve.marker, color=curve.color or "default")
            if curve.points and len(xs) <= columns // 2:  # per-epoch points, joined by the line
                plt.scatter(xs, ys, marker=curve.points, color=curve.color or "default")
            drawn.append(PlotSeries(xs, ys, curve.color, curve.marker, curve.label, curve.points))
        if self.log_y and drawn:
            plt.yscale("log")
            if self.y_range is not None and 0 < self.y_range[0] < self.y_range[1]:
                # plotext takes a log axis's limits as powers of ten.
                plt.ylim(*(math.log10(limit) for limit in self.y_range))
        elif drawn:
            fixed = self.y_range if self.y_range is not None and self.y_range[0] < self.y_range[1] else None
            rows = canvas_rows(figure_height, axis_labels=bool(self.xlabel or self.ylabel))
            set_even_yticks(plt, [y for curve in drawn for y in curve.ys], rows, fixed)
        if self.integer_x and drawn:
            xs = [x for curve in drawn for x in curve.xs if math.isfinite(x)]
            if xs:
                ticks = integer_ticks(min(xs), max(xs))
                plt.xticks(ticks, [str(tick) for tick in ticks])
        self.drawn = drawn
        if not drawn:
            return Text("\n" * max(height // 2 - 1, 0) + self.message, justify="center")
        figure = Text.from_ansi(plt.build().rstrip("\n"))
        lines = [figure]
        if self.title:
            title = title_text(self.title, width)
            title.stylize(Style(color=foreground.rich_color, bgcolor=background.rich_color))
            lines.insert(0, title)
        if key.plain:
            key.stylize(Style(bgcolor=background.rich_color))
            lines.append(key)
        return Text("\n").join(lines)


# -- colours ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CurvePainter:
    """Colours tell runs apart; markers tell train from validation (or, without colour, every
    curve gets its own character): bntui.themes.curve_style for the app's current theme."""

    theme: ThemeFile
    no_color: bool = False

    def color(self, index: int) -> tuple[int, int, int] | None:
        return curve_style(self.theme, index, "val", no_color=self.no_color).color

    def marker(self, index: int, split: str = "val") -> str:
        """split: "val" (the main curve of a run) or "train" (its second curve)."""
        which = "train" if split == "train" else "val"
        return curve_style(self.theme, index, which, no_color=self.no_color).marker

    @property
    def train_marker(self) -> str:
        return self.theme.train_marker

    @property
    def val_marker(self) -> str:
        return self.theme.val_marker

    def band_markers(self, index: int, edges: str = "band") -> tuple[str, str]:
        """(centre, edges) markers of a band: a fine line between dashed edges (a ± std band)
        or crosses (percentiles), never the validation dots; without colour the run's own two
        characters. One vocabulary on every screen: see MARKER_KEY."""
        if self.no_color:
            return self.marker(index, "val"), self.marker(index, "train")
        return "braille", PERCENTILE_MARKER if edges == "percentiles" else BAND_MARKER

    def swatch(self, index: int) -> str:
        """A style for rich Text naming run `index` in a legend or table."""
        color = self.color(index)
        return "bold" if color is None else "bold rgb({},{},{})".format(*color)


@functools.lru_cache(maxsize=1)
def _fallback_catalog() -> ThemeCatalog:
    return load_themes()


def painter_for(app: App) -> CurvePainter:
    """The painter for the app's current theme, as the main screen's plots get it: the app's
    `themes_catalog` (BntuiApp loads it; other apps get the shipped and user themes, read
    once), bntui.themes.plot_theme_for (Textual's own themes borrow bntui-dark's or
    bntui-light's palette), and NO_COLOR honoured as bntui.themes describes."""
    catalog = getattr(app, "themes_catalog", None)
    if not isinstance(catalog, ThemeCatalog):
        catalog = _fallback_catalog()
    theme = plot_theme_for(catalog, app.theme, dark=app.current_theme.dark)
    return CurvePainter(theme, no_color=bool(app.no_color) or no_color_requested())


BAND_MARKER = "╌"  # the edges of a mean ± 1 std band
PERCENTILE_MARKER = "×"  # the p15 / p85 edges of the diagnostics' percentile band

# What a plotext marker looks like, for legends written in text.
_MARKER_SYMBOLS = {"braille": "⠿ (fine line)", "dot": "• (dotted)", "hd": "▞", "fhd": "▞", "sd": "█",
                   BAND_MARKER: "╌ (dashed)"}


def marker_symbol(marker: str) -> str:
    return _MARKER_SYMBOLS.get(marker, marker)


# -- redraw pacing ---------------------------------------------------------------------------


class RedrawThrottle:
    """Runs `redraw` at most `max_hz` times a second however often `request()` is called:
    the first request redraws at once, later ones within the interval are folded into a single
    redraw at its end (with whatever data is newest by then)."""

    def __init__(self, owner: MessagePump, redraw: Callable[[], None], max_hz: float = 4.0) -> None:
        self._owner = owner
        self._redraw = redraw
        self._interval = 1.0 / max_hz
        self._last = -math.inf
        self._timer: Timer | None = None

    @property
    def pending(self) -> bool:
        return self._timer is not None

    def request(self) -> None:
        if self._timer is not None:
            return  # a redraw is already due and will pick up the newest data
        wait = self._last + self._interval - time.monotonic()
        if wait <= 0:
            self._run()
        else:
            self._timer = self._owner.set_timer(wait, self._run)

    def _run(self) -> None:
        self._timer = None
        self._last = time.monotonic()
        self._redraw()
