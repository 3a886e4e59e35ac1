"""Counts in words, read right at 1: "1 run", "2 runs" (the CLI and the TUI alike)."""

from __future__ import annotations


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """`count` and `noun`, the noun in the plural (`plural`, else noun + "s") unless count is 1."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"
