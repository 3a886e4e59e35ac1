"""Every key of the app in one table: the bindings, the help screen and the command palette are
all built from it, so they cannot disagree."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding, BindingType


@dataclass(frozen=True)
class Key:
    keys: str  # Textual key names, comma-separated
    action: str  # an action of BntuiApp (without the `action_` prefix)
    description: str  # footer label
    help: str  # one line for the help screen and the command palette
    scope: str = "app"  # "app": everywhere; "main": on the main screen; "runs": when the run list has focus
    show: bool = True  # shown in the footer
    priority: bool = False  # works even while a text field has focus


KEYMAP: tuple[Key, ...] = (
    Key("ctrl+r", "start_runs", "Start", "Start the runs set up on the left (they queue)", priority=True),
    Key("ctrl+t", "cancel_selected", "Stop", "Stop the selected run, or drop it from the queue", priority=True),
    # On the main screen only: its plots are what it switches (other screens have their own key).
    Key(
        "ctrl+g",
        "toggle_metric",
        "Loss/Acc",
        "Show loss or accuracy (wide terminals show both)",
        scope="main",
        priority=True,
    ),
    Key("ctrl+f", "focus_settings", "Settings", "Move the focus to the settings form", priority=True),
    Key("ctrl+l", "focus_runs", "Runs", "Move the focus to the run list", priority=True),
    Key("f1,question_mark", "help", "Help", "Show every key", priority=False),
    Key("ctrl+q", "quit", "Quit", "Quit (asks first while runs are going)", priority=True),
    Key(
        "f3",
        "preset_paper_fig1",
        "Fig. 1",
        "Set up Ioffe & Szegedy's Figure 1: 3x100 sigmoid MLP, batch 60, SGD, BN both",
    ),
    Key(
        "f4",
        "system",
        "System",
        "CPU, memory and GPUs (use, memory, temperature, power); each run's speed and ETA",
        show=False,
    ),
    Key("f2", "cycle_theme", "Theme", "Switch to the next bntui theme (saved for next time)"),
    Key("space", "toggle_mark", "Mark", "Mark or unmark the selected run", scope="runs"),
    Key("A", "mark_all", "Mark all", "Mark every run (or, when all are marked, unmark them)", scope="runs"),
    Key(
        "G",
        "mark_group",
        "Mark group",
        "Mark every run of the selected run's group (unmark it when all are marked)",
        scope="runs",
    ),
    Key("c", "compare", "Compare", "Compare the marked runs (or the selected run and its BN twin)", scope="runs"),
    Key(
        "g",
        "group_view",
        "Group",
        "Paired BN ablation of the selected run's group (a sweep: its sweep view)",
        scope="runs",
    ),
    Key("d", "diagnostics", "Inside BN", "BatchNorm diagnostics of the selected run (and its twin)", scope="runs"),
    Key(
        "l",
        "landscape",
        "Landscape",
        "Loss landscape of the selected run (and its twin): Santurkar et al. Fig. 4",
        scope="runs",
    ),
    Key(
        "e",
        "export",
        "Export",
        "Export the marked runs (or the selected group): JSON, CSV, Markdown, LaTeX",
        scope="runs",
    ),
    Key(
        "s",
        "sort_runs",
        "Sort",
        "Sort the run list by the next column: test acc, val acc, val loss, status... (or click a header)",
        scope="runs",
        show=False,
    ),
    Key("S", "reverse_sort", "Reverse", "Turn the run list's order around", scope="runs", show=False),
    Key("slash", "filter_runs", "Filter", "Filter the run list: bn=on lr<0.01 tag:paper status:finished", scope="runs"),
    Key("t", "tag_runs", "Tag", "Tag the marked runs (or the selected one); -tag takes a tag off", scope="runs"),
    Key("n", "note_run", "Note", "Write the selected run's note", scope="runs", show=False),
    Key("x,delete", "cancel_selected", "Stop run", "Stop the selected run", scope="runs", show=False),
)

# Keys Textual provides itself, listed on the help screen for completeness.
BUILTIN_KEYS: tuple[tuple[str, str], ...] = (
    ("ctrl+p", "Command palette: every action by name; themes"),
    ("tab / shift+tab", "Move between fields and panes"),
    ("up / down", "Move in the run list; open a choice list"),
    ("home / end", "First / last run of the run list"),
    ("pgup / pgdn", "A page up / down the run list"),
    ("enter", "Open a choice list"),
)


def bindings(scope: str) -> list[BindingType]:
    return [
        Binding(
            key.keys,
            key.action if scope == "app" else f"app.{key.action}",
            key.description,
            show=key.show,
            priority=key.priority,
            tooltip=key.help,
        )
        for key in KEYMAP
        if key.scope == scope
    ]


def display_keys(keys: str) -> str:
    """`f1,question_mark` -> `F1 / ?` for the help screen."""
    names = {"question_mark": "?", "space": "space", "delete": "Del", "slash": "/"}
    shown = []
    for name in keys.split(","):
        if name in names:
            shown.append(names[name])
        elif name.startswith("f") and name[1:].isdigit():
            shown.append(name.upper())
        else:
            shown.append(name.replace("ctrl+", "^"))
    return " / ".join(shown)
