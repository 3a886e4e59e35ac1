"""`bntui tag / untag / note`, `bntui runs --filter`, and `bntui export --format csv|md|latex`."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from bntui.commands.say import error
from bntui.filters import matching
from bntui.present.run_rows import runs_table
from bntui.settings import AppSettings
from bntui.store import StoredRun, StoreError, list_runs, load_run
from bntui.store.annotations import change_tags, read_annotations, set_note
from bntui.present.tables import render
from bntui.present.text import escape
from bntui.present.words import counted


def filtered_runs(runs: Sequence[StoredRun], query: str) -> list[StoredRun]:
    """Raises bntui.filters.FilterError for a bad query."""
    return matching(runs, query, lambda run: read_annotations(run.path).tags)


def runs_named(settings: AppSettings, ref: str) -> list[StoredRun]:
    """The runs of a group id, else the run of an id or unique prefix (StoreError if none)."""
    in_group = [run for run in list_runs(settings.runs_dir) if run.group == ref]
    return in_group or [load_run(settings.runs_dir, ref)]


def cmd_tag(
    settings: AppSettings, console: Console, ref: str, add: Sequence[str] = (), remove: Sequence[str] = ()
) -> int:
    try:
        runs = runs_named(settings, ref)
        for run in runs:
            tags = change_tags(run.path, list(add), list(remove)).tags
    except (StoreError, ValueError) as exc:
        error(str(exc))
        return 2
    what = runs[0].id if len(runs) == 1 else f"{counted(len(runs), 'run')} of group {ref}"
    shown = " ".join(tags) if len(runs) == 1 else " ".join(add or remove)
    verb = "tags of" if len(runs) == 1 else ("tagged" if add else "untagged")
    console.print(f"{verb} {escape(what)}: {escape(shown) or '(none)'}", highlight=False, soft_wrap=True)
    return 0


def cmd_note(settings: AppSettings, console: Console, ref: str, text: str) -> int:
    try:
        run = load_run(settings.runs_dir, ref)
        set_note(run.path, text)
    except (StoreError, ValueError) as exc:
        error(str(exc).splitlines()[0])
        return 2
    console.print(f"note of {escape(run.id)} {'written' if text else 'cleared'}", highlight=False, soft_wrap=True)
    return 0


def cmd_export_table(
    settings: AppSettings, console: Console, refs: Sequence[str], output: str, fmt: str, force: bool = False
) -> int:
    from bntui.store.layout import atomic_write_bytes

    if not output.strip():
        error("-o: give a file name (or - for stdout)")
        return 2
    if output != "-" and not force and Path(output).exists():
        error(f"{output} exists: nothing written (--force replaces it)")
        return 1
    try:
        runs = [load_run(settings.runs_dir, ref) for ref in refs] if refs else list_runs(settings.runs_dir)
    except StoreError as exc:
        error(str(exc))
        return 1
    table = runs_table(runs)
    if not table.rows:
        error(f"no runs to export in {settings.runs_dir}: nothing written")
        return 1
    text = render(table, fmt)
    if output == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return 0
    try:
        atomic_write_bytes(Path(output), text.encode("utf-8"))
    except StoreError as exc:
        error(str(exc))
        return 1
    console.print(f"exported {counted(len(table.rows), 'run')} to {escape(output)}", highlight=False, soft_wrap=True)
    return 0
