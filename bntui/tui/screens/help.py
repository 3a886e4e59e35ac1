"""F1: the keys of the screen it was opened on, what that screen's markers mean, then the keys
that work everywhere. Built from the same tables as the bindings and the command palette."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from bntui.tui.keys import BUILTIN_KEYS, KEYMAP, display_keys

SCOPE_NAMES = {"app": "anywhere", "runs": "run list", "main": "main screen"}
# What the main screen's plots draw (the other screens carry their own MARKERS).
MAIN_MARKERS: tuple[tuple[str, str], ...] = (
    ("⠿ line", "training loss / accuracy, one point per epoch, joined"),
    ("• dots", "validation loss / accuracy, one point per epoch, joined"),
    ("· points", "training loss at each logged step (loss plot only)"),
    ("colour", "BN: the 1st plot colour, no BN: the 2nd, on every screen"),
)


def _table(title: str, second: str) -> Table:
    table = Table(
        box=None,
        expand=True,
        header_style="bold",
        pad_edge=False,
        title=title,
        title_justify="left",
        title_style="bold reverse",
    )
    table.add_column("key", no_wrap=True)
    table.add_column(second, no_wrap=True)
    table.add_column("what it does" if second == "where" else "", ratio=1)
    return table


def screen_keys(screen: Screen | None) -> list[tuple[str, str]]:
    """(keys, what they do) of `screen`'s own bindings, as its footer names them."""
    rows = []
    for binding in getattr(screen, "BINDINGS", []):
        if isinstance(binding, Binding) and not binding.action.startswith("app."):
            rows.append((display_keys(binding.key), binding.tooltip or binding.description))
    return rows


def keys_table(screen: Screen | None = None) -> Table:
    """A Rich table, not a DataTable: it wraps the descriptions to the dialog's width instead
    of cutting them off. `screen`: the screen F1 was pressed on (None: the main screen)."""
    from bntui.tui.screens.main import MainScreen

    on_main = screen is None or isinstance(screen, MainScreen)
    table = _table("", "where")
    if not on_main:
        for keys, text in screen_keys(screen):
            table.add_row(keys, "this screen", text)
    for key in KEYMAP:
        if on_main or key.scope == "app":
            table.add_row(display_keys(key.keys), SCOPE_NAMES.get(key.scope, key.scope), key.help)
    for keys, text in BUILTIN_KEYS:
        table.add_row(keys, "anywhere", text)
    return table


def markers_table(screen: Screen | None) -> Table | None:
    from bntui.tui.screens.main import MainScreen

    markers = MAIN_MARKERS if screen is None or isinstance(screen, MainScreen) else getattr(screen, "MARKERS", ())
    if not markers:
        return None
    table = Table(box=None, expand=True, header_style="bold", pad_edge=False, show_header=True)
    table.add_column("marker", no_wrap=True)
    table.add_column("what it shows", ratio=1)
    for marker, meaning in markers:
        table.add_row(marker, meaning)
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,q,f1,question_mark", "dismiss", "Close", tooltip="Close the help"),
    ]

    def __init__(self, for_screen: Screen | None = None) -> None:
        super().__init__()
        self.for_screen = for_screen

    def compose(self) -> ComposeResult:
        # The title and the close hint sit in the border: on screen however far the keys scroll.
        parts: list[Static] = []
        markers = markers_table(self.for_screen)
        if markers is not None:
            parts.append(Static(Text("What the plots draw", style="bold"), classes="help-heading"))
            parts.append(Static(markers))
            parts.append(Static(Text("Keys", style="bold"), classes="help-heading"))
        parts.append(Static(keys_table(self.for_screen)))
        dialog = VerticalScroll(*parts, id="help-dialog")
        name = getattr(self.for_screen, "HELP_NAME", "main screen")
        dialog.border_title = f"F1 · {name} · ^p: actions by name"
        dialog.border_subtitle = "esc closes · ↑↓ scroll"
        yield dialog
