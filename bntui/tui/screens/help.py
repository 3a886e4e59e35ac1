"""Every key of the app, built from the same table as the bindings and the command palette."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from bntui.tui.keys import BUILTIN_KEYS, KEYMAP, display_keys

SCOPE_NAMES = {"app": "anywhere", "runs": "run list"}


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,q,f1,question_mark", "dismiss", "Close", tooltip="Close the help"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="help-dialog"):
            yield Static("[b]bntui keys[/b]   (ctrl+p lists every action by name)", id="help-title")
            table: DataTable = DataTable(id="help-keys", cursor_type="none", zebra_stripes=True)
            table.add_columns("key", "where", "what it does")
            for key in KEYMAP:
                table.add_row(display_keys(key.keys), SCOPE_NAMES.get(key.scope, key.scope), key.help)
            for keys, text in BUILTIN_KEYS:
                table.add_row(keys, "anywhere", text)
            yield table
            yield Static("escape closes this help", id="help-hint")
