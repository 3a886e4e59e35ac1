"""Asks before quitting while runs are queued or training: leave them running, or stop them."""

from __future__ import annotations

from typing import Literal

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from bntui.present.words import counted

QuitChoice = Literal["leave", "stop", "stay"]


class ConfirmQuitScreen(ModalScreen[QuitChoice]):
    BINDINGS = [
        Binding(
            "l,enter", "answer('leave')", "Leave running", tooltip="Quit; the runs go on and bntui shows them again"
        ),
        Binding("s", "answer('stop')", "Stop runs", tooltip="Stop the runs (kept as cancelled), then quit"),
        Binding("n,escape", "answer('stay')", "Stay", tooltip="Do not quit"),
    ]

    def __init__(self, running: int, queued: int) -> None:
        super().__init__()
        self.running = running
        self.queued = queued

    def compose(self) -> ComposeResult:
        what = []
        if self.running:
            what.append(f"{counted(self.running, 'run')} training")
        if self.queued:
            what.append(f"{self.queued} queued")
        with Vertical(id="confirm-dialog"):
            yield Static(
                f"[b]Quit bntui?[/b]\n\n{' and '.join(what)}. They run on their own: leave them "
                "running and open bntui again (any login) to see them, or stop them (kept as "
                "cancelled with the epochs they completed).",
                id="confirm-text",
            )
            with Horizontal(id="confirm-buttons"):
                yield Button("Leave running (l)", id="leave", variant="primary")
                yield Button("Stop runs (s)", id="stop", variant="error")
                yield Button("Stay (n)", id="stay")

    def on_mount(self) -> None:
        self.query_one("#leave", Button).focus()

    def action_answer(self, answer: QuitChoice) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id)  # type: ignore[arg-type]
