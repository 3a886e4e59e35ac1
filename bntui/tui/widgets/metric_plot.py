"""A line plot of one metric (loss or accuracy) against epochs, in the app's theme colours: the
main screen's two plots. The curves become a Figure (bntui.present.plots), which the
FigureWidget builds off the event loop like every other plot."""

from __future__ import annotations

from dataclasses import dataclass

from rich.color import Color as RichColor
from rich.style import Style
from rich.text import Text

from bntui.present.plots import RGB, Figure, Trace
from bntui.tui.widgets.figure_widget import FigureWidget


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


# How the key line under the plot draws each kind of curve (colour mode).
LINE_SYMBOL = "⠒⠒"


def _run_name(label: str) -> str:
    """ "no BN val" -> "no BN"; "val" -> "" (one run: nothing to tell apart)."""
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
        text.rstrip()
        return text
    names: dict[str, RGB | None] = {}
    for curve in shown:
        names.setdefault(_run_name(curve.label), curve.color)
    for name, color in names.items():
        if name:
            text.append(f"■ {name} ", style=Style(color=RichColor.from_rgb(*color) if color else None, bold=True))
    kinds = []
    if any(not c.scatter and not c.points for c in shown):
        kinds.append(f"{LINE_SYMBOL} train")
    if any(c.points for c in shown):
        kinds.append(f"{LINE_SYMBOL}{next(c.points for c in shown if c.points)} val")
    if any(c.scatter for c in shown):
        kinds.append(f"{next(c.marker for c in shown if c.scatter)} step")
    text.append(" ".join(kinds))
    return text


def metric_figure(metric: str, caption: str, curves: tuple[Curve, ...]) -> Figure:
    """The plot of `curves` against epochs: every line first, then the points over them (a
    point per epoch, joined by its line)."""
    shown = [curve for curve in curves if curve.xs]
    traces = [Trace(tuple(c.xs), tuple(c.ys), c.color, c.marker, scatter=c.scatter) for c in shown]
    traces += [
        Trace(tuple(c.xs), tuple(c.ys), c.color, c.points, scatter=True, sparse_only=True) for c in shown if c.points
    ]
    return Figure(
        tuple(traces),
        title=f"{metric} - {caption}" if caption else metric,
        xlabel="epoch",
        ylabel=metric,
        key=key_text(tuple(curves)),
        integer_x=True,
    )


class MetricPlot(FigureWidget):
    def __init__(self, metric: str, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.metric = metric
        self.caption = ""
        self.curves: list[Curve] = []

    def show_curves(self, curves: list[Curve], caption: str = "") -> None:
        self.curves = curves
        self.caption = caption
        self.show_figure(metric_figure(self.metric, caption, tuple(curves)))
