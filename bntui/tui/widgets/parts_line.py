"""A one-line status made of parts joined by " · ", fitted to its width by dropping whole parts
from the end (as `bntui runs` drops whole columns): never "test ac…" or "reference: #1…".

The Static's content stays the whole line (what tests and screen readers get); only the drawing
is fitted, so a wider terminal shows the dropped parts again."""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.visual import VisualType
from textual.widgets import Static

SEPARATOR = " · "


def fit_parts(parts: list[Text], width: int) -> Text:
    """The first part, then each next one while the line still fits in `width` cells."""
    kept: list[Text] = parts[:1]
    used = cell_len(parts[0].plain) if parts else 0
    for part in parts[1:]:
        needed = cell_len(SEPARATOR) + cell_len(part.plain)
        if used + needed > width:
            break
        kept.append(part)
        used += needed
    return Text(SEPARATOR).join(kept)


class PartsLine(Static):
    def render(self) -> VisualType:
        content = self.content
        if isinstance(content, str):
            text = Text.from_markup(content) if self._render_markup else Text(content)
        elif isinstance(content, Text):
            text = content
        else:
            return super().render()
        width = self.content_region.width or self.size.width
        if "\n" in text.plain or width <= 0 or cell_len(text.plain) <= width:
            return super().render()
        return fit_parts(list(text.split(SEPARATOR, allow_blank=True)), width)
