"""The TUI's end of the plot pipeline (bntui.present.plots): a figure at a widget's size and
in its theme colours, drawn as Strips (Textual's line API)."""

from __future__ import annotations

from dataclasses import dataclass

from rich.color import Color as RichColor
from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip

from bntui.present.plots import RGB, Figure, figure_lines


@dataclass(frozen=True)
class FigureRequest:
    """A figure at a size, in colours: everything one build needs."""

    figure: Figure
    width: int
    height: int
    foreground: RGB
    background: RGB


def _style(foreground: RGB | None, background: RGB | None) -> Style:
    return Style(
        color=RichColor.from_rgb(*foreground) if foreground else None,
        bgcolor=RichColor.from_rgb(*background) if background else None,
    )


def _strip(text: Text, console: Console, width: int, base: Style) -> Strip:
    """One line of Rich text as a Strip of exactly `width` cells, over `base`."""
    segments = Segment.apply_style(text.render(console, end=""), base)
    return Strip(segments).adjust_cell_length(width, base)


def draw(request: FigureRequest) -> list[Strip]:
    """The lines of the plot: its title, plotext's figure, its key (`height` lines at most)."""
    base = _style(request.foreground, request.background)
    console = Console(width=request.width, color_system="truecolor", legacy_windows=False)
    lines = figure_lines(request.figure, request.width, request.height, request.foreground, request.background)
    return [_strip(line, console, request.width, base) for line in lines]
