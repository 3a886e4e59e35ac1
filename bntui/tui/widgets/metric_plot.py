"""A line plot of one metric (loss or accuracy) against epochs, in the app's theme colours.

Drawn with textual-plotext's `Plot` (a plotext figure), but not with its `PlotextPlot` widget:
building a figure and turning its ANSI text into Rich text takes 50-100 ms for a mid-sized plot,
and PlotextPlot does both on the event loop at every paint, which stalls the UI while a run
trains. Here a thread worker builds the figure and converts it straight into Strips with a
small SGR parser; the widget only hands out cached lines (Textual's line API). The colours are
passed explicitly at every build (textual-plotext caches its "auto" theme by name, so a theme
that changes would otherwise keep its old colours)."""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from functools import lru_cache

from rich.cells import cell_len
from rich.color import Color as RichColor
from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip
from textual.widget import Widget
from textual.worker import Worker, WorkerState

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Curve:
    xs: list[float]
    ys: list[float]
    label: str
    color: RGB | None  # None: the terminal's default (NO_COLOR)
    marker: str  # a plotext marker: "braille", "dot", "hd", or one character
    scatter: bool = False  # points only, no connecting line
    short_label: str = ""  # kept for callers; the key line under the plot names the curves
    points: str = ""  # a character drawn on each data point over the line ("": a line only)


@dataclass(frozen=True)
class PlotRequest:
    """Everything one build needs; built on the event loop, drawn in a thread."""

    metric: str
    caption: str
    curves: tuple[Curve, ...]
    width: int
    height: int
    foreground: RGB
    background: RGB


# plotext keeps some module-level state: one figure is built at a time.
_BUILD_LOCK = threading.Lock()
_SGR = re.compile(r"\x1b\[([0-9;]*)m")


# -- shared with OverlayPlot: titles and y ticks ------------------------------------------------
# Both plots draw their title themselves, as their first line: plotext centres a title on the
# canvas and silently drops one that does not fit there, so a long title used to vanish.

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


def plot_title(metric: str, caption: str, width: int) -> str:
    """`metric - caption`, its end cut short when it does not fit: the metric stays, so the
    loss and accuracy plots side by side never carry the same title."""
    return fit_title(f"{metric} - {caption}" if caption else metric, width - 2)


# How the key line under the plot draws each kind of curve (colour mode).
LINE_SYMBOL = "⠒⠒"


def _run_name(label: str) -> str:
    """"no BN val" -> "no BN"; "val" -> "" (one run: nothing to tell apart)."""
    return label.rsplit(" ", 1)[0] if " " in label else ""


def key_text(curves: tuple[Curve, ...]) -> Text:
    """The plot's key, one line under it (never on the data): which colour is which run, then
    which mark is train, validation and the step points. Without colour every curve has its
    own character, so each curve is listed with it."""
    text = Text()
    shown = [curve for curve in curves if curve.xs]
    if not shown:
        return text
    if any(curve.color is None for curve in shown):
        for curve in shown:
            text.append(f"{curve.marker if len(curve.marker) == 1 else LINE_SYMBOL} {curve.label}  ")
        return text.rstrip() or text
    names: dict[str, RGB | None] = {}
    for curve in shown:
        names.setdefault(_run_name(curve.label), curve.color)
    for name, color in names.items():
        if name:
            text.append(f"■ {name} ", style=_style(color, None, True))
    kinds = []
    if any(not c.scatter and not c.points for c in shown):
        kinds.append(f"{LINE_SYMBOL} train")
    if any(c.points for c in shown):
        kinds.append(f"{LINE_SYMBOL}{next(c.points for c in shown if c.points)} val")
    if any(c.scatter for c in shown):
        kinds.append(f"{next(c.marker for c in shown if c.scatter)} step")
    text.append(" ".join(kinds))
    return text


def build_figure(request: PlotRequest) -> str:
    """The plot below its title line and above its key line, as plotext's ANSI text (`height`
    - 2 lines)."""
    from bntui.series import downsample
    from textual_plotext import Plot

    width, height = request.width, request.height - 2
    plt = Plot()
    plt.plotsize(width, height)
    plt._set_size(width, height)  # textual-plotext's own workaround for resizing, see its render()
    plt.canvas_color(request.background)
    plt.axes_color(request.background)
    plt.ticks_color(request.foreground)
    plt.xlabel("epoch")
    plt.ylabel(request.metric)
    shown = [curve for curve in request.curves if curve.xs]
    drawn: list[float] = []
    # No labels for plotext: its legend sits on the first epochs of data (key_text instead).
    for curve in shown:
        xs, ys = downsample(curve.xs, curve.ys, max(width - 10, 10))
        draw = plt.scatter if curve.scatter else plt.plot
        draw(xs, ys, color=curve.color, marker=curve.marker)
        drawn.extend(ys)
    for curve in shown:  # the points over every line: a point per epoch, joined by the line
        if curve.points and len(curve.xs) <= width // 2:
            plt.scatter(curve.xs, curve.ys, color=curve.color, marker=curve.points)
    if shown:
        set_even_yticks(plt, drawn, canvas_rows(height, axis_labels=True))
        # Epochs are counted: ticks on whole epochs (the step points between them need none).
        epochs = [x for curve in shown for x in curve.xs if math.isfinite(x)]
        if epochs:
            ticks = integer_ticks(min(epochs), max(epochs))
            plt.xticks(ticks, [str(tick) for tick in ticks])
    else:
        plt.xlim(0, 1)
        plt.ylim(0, 1)
        plt.xticks([])
        plt.yticks([])
    return plt.build()


@lru_cache(maxsize=1024)
def _style(foreground: RGB | None, background: RGB | None, bold: bool) -> Style:
    return Style(
        color=RichColor.from_rgb(*foreground) if foreground else None,
        bgcolor=RichColor.from_rgb(*background) if background else None,
        bold=bold or None,
    )


def _apply_sgr(params: str, state: list) -> None:
    """Update [foreground, background, bold] from one SGR escape's parameters."""
    codes = [int(code) if code else 0 for code in params.split(";")]
    index = 0
    while index < len(codes):
        code = codes[index]
        if code == 0:
            state[:] = [None, None, False]
        elif code == 1:
            state[2] = True
        elif code in (38, 48) and index + 1 < len(codes):
            slot = 0 if code == 38 else 1
            if codes[index + 1] == 2 and index + 4 < len(codes):
                state[slot] = (codes[index + 2], codes[index + 3], codes[index + 4])
                index += 4
            elif codes[index + 1] == 5 and index + 2 < len(codes):
                triplet = RichColor.from_ansi(codes[index + 2]).get_truecolor()
                state[slot] = (triplet.red, triplet.green, triplet.blue)
                index += 2
        elif code in (39, 49):
            state[0 if code == 39 else 1] = None
        index += 1


def ansi_to_strips(ansi: str, width: int, background: RGB) -> list[Strip]:
    """plotext's output (truecolor SGR codes only) as one Strip per line, `width` cells each."""
    blank = _style(None, background, False)
    strips = []
    for line in ansi.split("\n"):
        state: list = [None, None, False]
        segments = []
        position = 0
        for match in _SGR.finditer(line):
            if match.start() > position:
                segments.append(Segment(line[position:match.start()], _style(*state)))
            _apply_sgr(match.group(1), state)
            position = match.end()
        if position < len(line):
            segments.append(Segment(line[position:], _style(*state)))
        strips.append(Strip(segments).adjust_cell_length(width, blank))
    return strips


def draw(request: PlotRequest) -> list[Strip]:
    with _BUILD_LOCK:
        ansi = build_figure(request)
    title = title_text(plot_title(request.metric, request.caption, request.width), request.width)
    title_strip = Strip([Segment(title.plain, _style(request.foreground, request.background, False))])
    plot = ansi_to_strips(ansi, request.width, request.background)[: request.height - 2]
    key = key_text(request.curves)
    key.truncate(request.width - 1)
    key_strip = Strip(list(Text(" ").append_text(key).render(Console(width=request.width))))
    key_strip = key_strip.apply_style(_style(request.foreground, request.background, False))
    key_strip = key_strip.adjust_cell_length(request.width, _style(None, request.background, False))
    return [title_strip, *plot, key_strip][: request.height]


class MetricPlot(Widget):
    DEFAULT_CSS = """
    MetricPlot {
        width: 1fr;
        height: 1fr;
    }
    """

    def __init__(self, metric: str, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.metric = metric
        self.caption = ""
        self.curves: list[Curve] = []
        self._strips: list[Strip] = []
        self._drawn: PlotRequest | None = None
        self._drawing = False

    def show_curves(self, curves: list[Curve], caption: str = "") -> None:
        self.curves = curves
        self.caption = caption
        self._draw_latest()

    def on_resize(self) -> None:
        self._draw_latest()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        # The canvas colour comes from the CSS, which a theme switch updates after the app has
        # asked for the recoloured curves: draw again once it has changed (a no-op otherwise).
        self._draw_latest()

    def _request(self) -> PlotRequest:
        _, _, background, foreground = self.colors
        return PlotRequest(
            self.metric, self.caption, tuple(self.curves), self.size.width, self.size.height,
            foreground.rgb, background.rgb,
        )

    def _draw_latest(self) -> None:
        """Start a build of what should be on screen now, unless one is running: when it ends,
        it starts the next with whatever is latest then (newer data wins, none piles up)."""
        if self._drawing or not self.is_mounted:
            return
        request = self._request()
        if request == self._drawn or request.width < 10 or request.height < 5:
            return
        self._drawing = True
        self.run_worker(lambda: (request, draw(request)), thread=True, exit_on_error=False,
                        group="plot", name=f"{self.metric} plot")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Worker messages do not bubble: this plot's builds report here, and only here."""
        worker = event.worker
        if event.state == WorkerState.SUCCESS:
            self._drawing = False
            self._drawn, self._strips = worker.result
            self.refresh()
            self._draw_latest()
        elif event.state in (WorkerState.ERROR, WorkerState.CANCELLED):
            self._drawing = False
            if event.state == WorkerState.ERROR:
                self.notify(f"{self.metric} plot: {worker.error}", title="Plot failed",
                            severity="error", markup=False)

    @property
    def up_to_date(self) -> bool:
        """The plot on screen shows the latest curves at the current size."""
        request = self._request()
        too_small = request.width < 10 or request.height < 5
        return not self._drawing and (too_small or request == self._drawn)

    @property
    def strips(self) -> list[Strip]:
        """The lines on screen (the last finished build)."""
        return self._strips

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if y < len(self._strips) and self._strips[y].cell_length == width:
            return self._strips[y]
        _, _, background, _ = self.colors
        blank = Style(bgcolor=background.rich_color)
        if y >= len(self._strips):
            return Strip.blank(width, blank)
        # Just resized: show the last drawing cut or padded until the new one is ready.
        return self._strips[y].crop_extend(0, width, blank)
