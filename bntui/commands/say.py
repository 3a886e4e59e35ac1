"""One line on stderr for an error or a warning, the same from every command: "bntui: error:"
then the message, its stored strings made visible (bntui.present.text), never wrapped."""

from __future__ import annotations

from rich.console import Console

from bntui.present.text import escape


def error(message: str) -> None:
    Console(stderr=True).print(f"[red]bntui: error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def warn(message: str) -> None:
    Console(stderr=True).print(f"[yellow]bntui: warning:[/] {escape(message)}", highlight=False, soft_wrap=True)
