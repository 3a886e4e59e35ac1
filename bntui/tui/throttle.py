"""Redraws paced to what a person can see: at most 4 a second, however often data arrives."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from textual.message_pump import MessagePump
from textual.timer import Timer


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
