"""A plot of several curves at once (runs, arms, percentiles), in explicit colours.

The screens hand it finished curves (`PlotSeries`: already smoothed, on the chosen x axis);
they become a Figure (bntui.tui.widgets.figure), fitted to the widget's size (log-safe values
on a log axis, at most one point per column) and built off the event loop like every plot."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rich.style import Style
from rich.text import Text
from textual.app import App

from bntui.themes import (
    ThemeCatalog,
    ThemeFile,
    curve_style,
    load_themes,
    no_color_requested,
    plot_theme_for,
)
from bntui.present.plots import Figure, Trace
from bntui.tui.widgets.figure_widget import FigureWidget


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
            kind = " ".join((curve.label or "").split(" ")[len(common) :])
            if kind:
                kinds.setdefault(kind, _key_symbol(curve.marker))
    text.append(" ".join(f"{symbol} {kind}" for kind, symbol in kinds.items()))
    text.rstrip()
    return text


def overlay_figure(
    series: Sequence[PlotSeries],
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    log_y: bool = False,
    y_range: tuple[float, float] | None = None,
    message: str = "nothing to plot yet",
    integer_x: bool = False,
) -> Figure:
    """The curves in order, each with its points over it."""
    traces = []
    for curve in series:
        traces.append(Trace(tuple(curve.xs), tuple(curve.ys), curve.color, curve.marker))
        if curve.points:  # per-epoch points, joined by the line
            traces.append(
                Trace(tuple(curve.xs), tuple(curve.ys), curve.color, curve.points, scatter=True, sparse_only=True)
            )
    return Figure(
        tuple(traces),
        title=title,
        xlabel=xlabel,
        ylabel=ylabel,
        key=overlay_key(series),
        log_y=log_y,
        y_range=y_range,
        integer_x=integer_x,
        message=message,
    )


class OverlayPlot(FigureWidget):
    """Call `show(...)` with the curves; the widget builds the figure off the event loop."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.series: list[PlotSeries] = []

    def show(self, series: Sequence[PlotSeries], **options: Any) -> None:
        """`options` are overlay_figure's: `y_range`, fixed y limits (plots meant to be
        compared side by side share one; on a log axis, used when both are positive);
        `integer_x`, x values are counts (steps, epochs): ticks on whole numbers only."""
        self.series = list(series)
        self.show_figure(overlay_figure(self.series, **options))


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
        which: Literal["train", "val"] = "train" if split == "train" else "val"
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
_MARKER_SYMBOLS = {
    "braille": "⠿ (fine line)",
    "dot": "• (dotted)",
    "hd": "▞",
    "fhd": "▞",
    "sd": "█",
    BAND_MARKER: "╌ (dashed)",
}


def marker_symbol(marker: str) -> str:
    return _MARKER_SYMBOLS.get(marker, marker)
