"""The footer, fitted to the terminal: keys that do not fit are dropped whole, least useful first.

Textual's Footer puts every key on one line and lets the line run off the edge, so an 80-column
terminal showed "f2 The" and "- Sm". Here each key is kept or dropped as a whole, in order of
FOOTER_RANK (F1 lists every key, so nothing dropped here is out of reach)."""

from __future__ import annotations

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

# The app's keys, most useful first; a screen's own keys (not listed) rank right after help.
FOOTER_RANK = (
    "help",
    "close",
    "start_runs",
    "focus_settings",
    "focus_runs",
    "toggle_mark",
    "compare",
    "group_view",
    "diagnostics",
    "landscape",
    "export",
    "mark_all",
    "mark_group",
    "cancel_selected",
    "toggle_metric",
    "quit",
    "preset_paper_fig1",
    "cycle_theme",
)
PALETTE_ROOM = 14  # the command palette's key, docked on the right ("▏^p palette ")


def key_width(key: FooterKey) -> int:
    """Cells one key takes in the (non-compact) footer: " key " + "description "."""
    return cell_len(key.key_display) + 2 + (cell_len(key.description) + 1 if key.description else 0)


def rank(action: str) -> int:
    name = action.removeprefix("app.")
    if name in ("help", "close"):
        return -2
    if name not in FOOTER_RANK:
        return -1  # the screen's own keys
    return FOOTER_RANK.index(name)


def fitting(widths_and_ranks: list[tuple[int, int]], room: int) -> set[int]:
    """Indexes of the items kept: the best ranked first, each while it still fits."""
    kept: set[int] = set()
    used = 0
    for index in sorted(range(len(widths_and_ranks)), key=lambda i: (widths_and_ranks[i][1], i)):
        width = widths_and_ranks[index][0]
        if used + width <= room:
            kept.add(index)
            used += width
    return kept


class KeyFooter(Footer):
    """A Footer that never cuts a key: drops whole keys instead (see the module's docstring)."""

    _fitted_width = 0

    def compose(self) -> ComposeResult:
        widgets = list(super().compose())
        keys = [w for w in widgets if isinstance(w, FooterKey) and not w.has_class("-command-palette")]
        room = self.size.width - PALETTE_ROOM
        self._fitted_width = self.size.width
        if room <= 0:
            yield from widgets  # not laid out yet: on_resize fits them
            return
        kept = fitting([(key_width(key), rank(key.action)) for key in keys], room)
        dropped = {id(key) for index, key in enumerate(keys) if index not in kept}
        yield from (w for w in widgets if id(w) not in dropped)

    def on_resize(self) -> None:
        if self.size.width != self._fitted_width:
            self.call_after_refresh(self.recompose)
