"""`bntui compare --group G` and the card `bntui run --bn both` prints: paired BN statistics."""

from __future__ import annotations

from rich.console import Console

from bntui.settings import AppSettings
from bntui.present.text import escape


def print_group_card(settings: AppSettings, console: Console, group: str) -> int:
    from bntui.present.cards import render_group_card
    from bntui.stats import summarize_group
    from bntui.store import list_runs

    records = [run.record for run in list_runs(settings.runs_dir) if run.group == group and run.record]
    if not records:
        console.print(f"[red]bntui: error:[/] group {group!r}: no runs in {settings.runs_dir}", highlight=False)
        return 1
    try:
        summary = summarize_group(records)
    except ValueError as exc:
        console.print(f"[red]bntui: error:[/] group {group!r}: {escape(str(exc))}", highlight=False)
        return 1
    console.print(render_group_card(summary))
    return 0


def cmd_compare_group(
    settings: AppSettings, console: Console, group: str, metric: str = "test_accuracy", fmt: str = "text"
) -> int:
    """A sweep's table (and plot) when the group sweeps a setting besides seed and BN;
    otherwise the result card."""
    from bntui.commands.sweep_commands import print_group_table, print_sweep
    from bntui.store import list_runs
    from bntui.sweep_stats import summarize_sweep

    records = [run.record for run in list_runs(settings.runs_dir) if run.record and run.record.group == group]
    sweep = summarize_sweep(records, metric) if records else None
    if sweep is not None:
        return print_sweep(console, sweep, fmt)
    if fmt != "text" and records:
        return print_group_table(console, records, fmt)
    return print_group_card(settings, console, group)
