"""Run statuses and their colours: one role per status, named as the TUI's theme variables
("success", "error", ...), so the run list follows the app's theme and the CLI prints the same
role in a plain terminal colour."""

from __future__ import annotations

from bntui.present.text import escape

STATUS_ROLE = {
    "running": "accent",
    "starting": "accent",
    "stopping": "warning",
    "queued": "foreground-muted",
    "finished": "success",
    "cancelled": "warning",
    "failed": "error",
    "crashed": "error",
    "diverged": "error",
}
DEFAULT_ROLE = "foreground"

# The roles in a terminal without the app's theme (the CLI).
TERMINAL_COLOURS = {
    "accent": "cyan",
    "warning": "yellow",
    "foreground-muted": "dim",
    "success": "green",
    "error": "red",
    "foreground": "",
}


def status_role(status: str) -> str:
    """The theme variable that colours `status` (the TUI: App.theme_variables[role])."""
    return STATUS_ROLE.get(status, DEFAULT_ROLE)


def status_markup(status: str) -> str:
    """`status` as Rich markup in its terminal colour (the CLI)."""
    style = TERMINAL_COLOURS[status_role(status)]
    text = escape(status)
    return f"[{style}]{text}[/]" if style else text
