"""Every plot's one pipeline: a plain description (`Figure`: traces, axes, title, key) is built
into lines of text, then drawn: by the TUI's FigureWidget off the event loop
(bntui.tui.widgets.figure_widget), by the CLI on the console (`bntui compare --group` sweeps).

plotext is driven through its public module API: it keeps one global figure, so one figure is
built at a time (`_BUILD_LOCK`), and `limitsize(False, False)` lets the figure take the size it
is given rather than the terminal's (what textual-plotext reached with a private call). Building
a figure and turning its ANSI text into Rich text takes 50-100 ms for a mid-sized plot, which is
why the widgets do it in a thread.

Titles and keys are our own lines above and below plotext's figure: plotext centres a title on
the canvas and drops one that does not fit, and its legend sat on the data."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import plotext
from rich.cells import cell_len
from rich.text import Text

from bntui.series import downsample, log_safe

RGB = tuple[int, int, int]

# Columns the y tick labels and the frame take from the plot's width.
AXIS_COLUMNS = 10

_BUILD_LOCK = threading.Lock()


@dataclass(frozen=True)
class Trace:
    """One call to plotext, in drawing order (later traces are drawn over earlier ones)."""

    xs: tuple[float, ...]
    ys: tuple[float, ...]
    color: RGB | str | None  # an RGB triple or a plotext colour name; None: the terminal's default
    marker: str  # a plotext marker: "braille", "dot", "hd", or one character
    scatter: bool = False  # points only, no connecting line
    sparse_only: bool = False  # drawn only with at most one point per two columns (epoch points)


@dataclass(frozen=True)
class Figure:
    """What a plot shows, without its size or colours: those come from the widget."""

    traces: tuple[Trace, ...] = ()
    title: str = ""  # the first line, fitted to the width by dropping its last parts
    xlabel: str = ""
    ylabel: str = ""
    key: Text = field(default_factory=Text)  # the line under the plot (never on the data)
    log_y: bool = False
    log_x: bool = False
    y_range: tuple[float, float] | None = None  # fixed y limits (plots compared side by side)
    integer_x: bool = False  # x values are counts (steps, epochs): ticks on whole numbers
    message: str = ""  # shown instead of the plot when no trace has data ("": empty axes)

    @property
    def has_data(self) -> bool:
        return any(trace.xs for trace in self.traces)


MAX_Y_TICKS = 7  # plotext's default number of y ticks


# Where a title may be cut short without cutting a word: its last part goes first.
TITLE_BREAKS = (" · ", " (", ": ", " - ")


def fit_title(title: str, width: int) -> str:
    """`title` fitted to `width` cells by dropping its last parts whole (TITLE_BREAKS); only a
    title with no part left to drop is cut, with an ellipsis."""
    if cell_len(title) > width:
        for separator in TITLE_BREAKS:
            if separator in title:
                return fit_title(title.rsplit(separator, 1)[0], width)
    text = Text(title)
    text.truncate(max(width, 0), overflow="ellipsis")
    return text.plain


def title_text(title: str, width: int) -> Text:
    """The title line: fitted to the plot (a cell of margin each side) and centred."""
    text = Text(fit_title(title, width - 2))
    text.align("center", width)
    return text


def canvas_rows(height: int, *, axis_labels: bool) -> int:
    """Rows of plotext's canvas (where the data goes) in a figure of `height` lines without a
    title: the frame takes 2, the x tick labels 1 and the axis labels, when set, 1."""
    return height - 3 - int(axis_labels)


def even_yticks(low: float, high: float, rows: int) -> list[float]:
    """Y ticks on every `gap`-th canvas row from the bottom, at the values of those rows.

    plotext spreads its 7 ticks evenly between the limits and rounds each to a row: on a short
    plot the rows they land on are unevenly spaced, and two ticks on one row overwrite each
    other (labels 1.87, 1.72, 1.43, 1.28). A tick placed on a row's own value lands exactly
    there, so rows and values both step evenly."""
    if rows < 2 or not low < high or not math.isfinite(high - low):
        return []  # a single row, a flat line, or no finite span: plotext's own ticks are fine
    fewest = math.ceil((rows - 1) / (MAX_Y_TICKS - 1))
    # A gap that divides the rows puts a tick on the top row too (the highest value).
    gap = next((g for g in range(fewest, 2 * fewest + 1) if (rows - 1) % g == 0), fewest)
    # The fraction first: (high - low) * row can overflow where the span itself is finite.
    return [low + (high - low) * (row / (rows - 1)) for row in range(0, rows, gap)]


def set_even_yticks(plt, ys: list[float], rows: int, limits: tuple[float, float] | None = None) -> None:
    """Fix plotext's y limits (`limits`, else those of `ys`) and put its ticks on even rows."""
    finite = [y for y in ys if math.isfinite(y)]
    if limits is None and not finite:
        return
    low, high = limits if limits is not None else (min(finite), max(finite))
    ticks = even_yticks(low, high, rows)
    if ticks:
        plt.ylim(low, high)
        plt.yticks(ticks)


def integer_ticks(low: float, high: float, most: int = 5) -> list[int]:
    """At most `most` round whole numbers (steps of 1, 2 or 5 x 10^k) between low and high:
    plotext's own ticks split the range evenly and land on fractions of a step. Total: any
    finite range gives ticks (whole-number arithmetic, whatever its size), a non-finite one none."""
    if not (math.isfinite(low) and math.isfinite(high)) or most < 1:
        return []
    low, high = min(low, high), max(low, high)
    first, last = math.ceil(low), math.floor(high)
    if last <= first:
        return [first] if first == last else [round(low)]
    span = last - first
    # Every step up to span // most gives more than `most` ticks: start at its power of ten.
    power = 10 ** (len(str(span // most)) - 1)
    while True:
        for multiple in (1, 2, 5):
            step = multiple * power
            if span // step + 1 <= most:
                return list(range(-(-first // step) * step, last + 1, step))
        power *= 10


@dataclass(frozen=True)
class _Fitted:
    traces: list[Trace]
    ys: list[float]  # every drawn y, for the y ticks
    xs: list[float]  # every drawn x, for whole-number ticks


def _fit(figure: Figure, columns: int) -> _Fitted:
    """The traces as drawn: log-safe on a log axis, then at most one point per column
    (bntui.series.downsample keeps spikes and extremes); empty ones left out."""
    traces: list[Trace] = []
    ys_all: list[float] = []
    xs_all: list[float] = []
    for trace in figure.traces:
        ys = log_safe(trace.ys) if figure.log_y else list(trace.ys)
        xs, ys = downsample(list(trace.xs), ys, columns)
        if not xs or (trace.sparse_only and len(xs) > columns // 2):
            continue
        traces.append(Trace(tuple(xs), tuple(ys), trace.color, trace.marker, trace.scatter, trace.sparse_only))
        ys_all.extend(ys)
        xs_all.extend(x for x in xs if math.isfinite(x))
    return _Fitted(traces, ys_all, xs_all)


def build_figure(
    figure: Figure, width: int, height: int, foreground: RGB | None = None, background: RGB | None = None
) -> str:
    """plotext's ANSI text of `figure` drawn `width` x `height` (without title and key); no
    colours given: the terminal's own."""
    fitted = _fit(figure, max(width - AXIS_COLUMNS, 10))
    with _BUILD_LOCK:
        plotext.clear_figure()
        plotext.limitsize(False, False)
        plotext.plotsize(width, height)
        if background is None or foreground is None:
            plotext.theme("clear")
        else:
            plotext.canvas_color(background)
            plotext.axes_color(background)
            plotext.ticks_color(foreground)
        if figure.log_x:
            plotext.xscale("log")
        if figure.xlabel:
            plotext.xlabel(figure.xlabel)
        if figure.ylabel:
            plotext.ylabel(figure.ylabel)
        for trace in fitted.traces:
            draw = plotext.scatter if trace.scatter else plotext.plot
            draw(list(trace.xs), list(trace.ys), marker=trace.marker, color=trace.color or "default")
        if not fitted.traces:
            plotext.xlim(0, 1)
            plotext.ylim(0, 1)
            plotext.xticks([])
            plotext.yticks([])
        elif figure.log_y:
            plotext.yscale("log")
            if figure.y_range is not None and 0 < figure.y_range[0] < figure.y_range[1]:
                # plotext takes a log axis's limits as powers of ten.
                plotext.ylim(*(math.log10(limit) for limit in figure.y_range))
        else:
            fixed = figure.y_range if figure.y_range is not None and figure.y_range[0] < figure.y_range[1] else None
            rows = canvas_rows(height, axis_labels=bool(figure.xlabel or figure.ylabel))
            set_even_yticks(plotext, fitted.ys, rows, fixed)
        if figure.integer_x and fitted.xs:
            ticks = integer_ticks(min(fitted.xs), max(fitted.xs))
            plotext.xticks(ticks, [str(tick) for tick in ticks])
        return plotext.build()


def figure_lines(
    figure: Figure, width: int, height: int, foreground: RGB | None = None, background: RGB | None = None
) -> list[Text]:
    """The plot as lines of Rich text: its title, plotext's figure, its key (`height` at most)."""
    lines: list[Text] = []
    if figure.title:
        lines.append(title_text(figure.title, width))
    key = figure.key.copy()
    key.truncate(width - 1)
    figure_height = height - len(lines) - (1 if key.plain else 0)
    if not figure.has_data and figure.message:
        # A blank plot with an explanation beats empty axes.
        message = Text(figure.message)
        message.align("center", width)
        lines += [Text("")] * max(figure_height // 2 - 1, 0) + [message]
    else:
        ansi = build_figure(figure, width, figure_height, foreground, background)
        lines += Text.from_ansi(ansi.rstrip("\n")).split("\n")[:figure_height]
    if key.plain:
        lines.append(Text(" ").append_text(key))
    return lines[:height]
