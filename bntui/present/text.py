"""Stored strings made safe to print: a run id, a message or a device name read from a file
may hold control characters and escape sequences (ESC [2J clears the screen, OSC sequences set
the window title or write to the clipboard). The CLI and the TUI both show such strings only
through these helpers, so the terminal prints them as visible text, never as commands."""

from __future__ import annotations

import re

from rich.markup import escape as escape_markup

# C0 and C1 controls, DEL, and the invisible format characters that reorder or hide text
# (bidirectional overrides, zero-width marks, the byte-order mark).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with every control or invisible format character written as a visible escape
    (ESC as \\x1b, a newline as \\x0a): one line, exactly what the string holds."""
    return _UNSAFE.sub(_visible, text)


def escape(text: str) -> str:
    """`text` for Rich markup: control characters made visible, then "[" escaped."""
    return escape_markup(printable(text))
