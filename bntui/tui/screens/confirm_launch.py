"""Asks before a launch of more runs than bntui.sweep.GRID_LIMIT (a grid typed in the form)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from bntui.sweep import GRID_LIMIT


class ConfirmLaunchScreen(ModalScreen[bool]):
    BINDINGS = [
        Binding("y", "answer(True)", "Launch", tooltip="Queue every run of the grid"),
        Binding("n,escape", "answer(False)", "Do not launch"),
    ]

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog"):
            yield Static(
                f"[b]Launch {self.count} runs?[/b]\n\nThe grid makes more than {GRID_LIMIT} runs. "
                "They queue and train a few at a time; this can take long.",
                id="confirm-text",
            )
            with Horizontal(id="confirm-buttons"):
                yield Button("Launch (y)", id="yes", variant="primary")
                yield Button("Do not launch (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


def confirm_large_launch(app: Any, count: int, go: Callable[[], None]) -> None:
    """Call `go` now for a launch within the limit; past it, only after a yes."""
    if count <= GRID_LIMIT:
        go()
        return
    app.push_screen(ConfirmLaunchScreen(count), lambda yes: go() if yes else None)
