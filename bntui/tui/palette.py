"""Curve colours and markers from the active theme.

A bntui theme file (bntui.themes) brings a `series` palette and train/val markers; any other
Textual theme falls back to its primary, secondary, accent... colours."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import App
from textual.color import Color

FALLBACK_VARIABLES = ("primary", "secondary", "accent", "warning", "success", "error")


@dataclass(frozen=True)
class Palette:
    series: list[tuple[int, int, int]]
    train_marker: str = "braille"
    val_marker: str = "dot"
    running_marker: str = "braille"

    def color(self, index: int) -> tuple[int, int, int]:
        return self.series[index % len(self.series)]


def palette_for(app: App, theme_files: dict[str, object]) -> Palette:
    """`theme_files` maps theme name -> bntui.themes.ThemeFile for the themes bntui registered."""
    theme_file = theme_files.get(app.theme)
    if theme_file is not None:
        colors = [Color.parse(value).rgb for value in getattr(theme_file, "series", []) or []]
        if colors:
            return Palette(
                colors,
                train_marker=getattr(theme_file, "train_marker", "braille"),
                val_marker=getattr(theme_file, "val_marker", "dot"),
            )
    variables = app.theme_variables
    colors = []
    for name in FALLBACK_VARIABLES:
        try:
            colors.append(Color.parse(variables[name]).rgb)
        except (KeyError, Exception):
            continue
    return Palette(colors or [(0, 130, 200), (230, 25, 75)])
