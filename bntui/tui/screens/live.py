"""The base of the screens that show stored runs while the app keeps feeding them newer data."""

from __future__ import annotations

from textual.screen import Screen

from bntui.tui.adapters import being_removed
from bntui.tui.throttle import RedrawThrottle


class LiveRecordsScreen(Screen[None]):
    """Draws once mounted, again when the theme changes, and at most 4 times a second when
    `throttle.request()` says the data changed (subclasses call it from `update_records`).
    Subclasses implement `draw`; `redraw` draws now (once the screen is mounted)."""

    def __init__(self) -> None:
        super().__init__()
        self.throttle = RedrawThrottle(self, self.redraw)
        self._mounted = False

    def on_mount(self) -> None:  # Textual also calls a subclass's own on_mount, before this one
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.redraw())
        self._mounted = True
        self.redraw()

    def redraw(self) -> None:
        if self._mounted and not being_removed(self):  # before mount, on_mount draws the first time
            self.draw()

    def draw(self) -> None:
        raise NotImplementedError
