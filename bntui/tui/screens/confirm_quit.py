"""Asks before quitting while runs are training or queued."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmQuitScreen(ModalScreen[bool]):
    BINDINGS = [
        Binding("y", "answer(True)", "Quit", tooltip="Stop the runs and quit"),
        Binding("n,escape", "answer(False)", "Stay", tooltip="Keep the runs going"),
    ]

    def __init__(self, running: int, queued: int) -> None:
        super().__init__()
        self.running = running
        self.queued = queued

    def compose(self) -> ComposeResult:
        what = []
        if self.running:
            what.append(f"{self.running} run{'s' if self.running != 1 else ''} training")
        if self.queued:
            what.append(f"{self.queued} queued")
        with Vertical(id="confirm-dialog"):
            yield Static(
                f"[b]Quit bntui?[/b]\n\n{' and '.join(what)}. Training runs stop and are stored "
                "as cancelled with the epochs they completed; queued runs are dropped.",
                id="confirm-text",
            )
            with Horizontal(id="confirm-buttons"):
                yield Button("Quit (y)", id="yes", variant="error")
                yield Button("Stay (n)", id="no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")
