"""Every key of the app, built from the same table as the bindings and the command palette."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from bntui.tui.keys import BUILTIN_KEYS, KEYMAP, display_keys

SCOPE_NAMES = {"app": "anywhere", "runs": "run list", "main": "main screen"}


def keys_table() -> Table:
    """A Rich table, not a DataTable: it wraps the descriptions to the dialog's width instead
    of cutting them off."""
    table = Table(box=None, expand=True, header_style="bold", pad_edge=False)
    table.add_column("key", no_wrap=True)
    table.add_column("where", no_wrap=True)
    table.add_column("what it does", ratio=1)
    for key in KEYMAP:
        table.add_row(display_keys(key.keys), SCOPE_NAMES.get(key.scope, key.scope), key.help)
    for keys, text in BUILTIN_KEYS:
        table.add_row(keys, "anywhere", text)
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,q,f1,question_mark", "dismiss", "Close", tooltip="Close the help"),
    ]

    def compose(self) -> ComposeResult:
        # The title and the close hint sit in the border: on screen however far the keys scroll.
        dialog = VerticalScroll(Static(keys_table()), id="help-dialog")
        dialog.border_title = "bntui keys · ctrl+p lists every action by name"
        dialog.border_subtitle = "escape closes this help · up/down scroll"
        yield dialog
