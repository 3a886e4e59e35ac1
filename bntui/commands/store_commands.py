"""`bntui runs / show / compare / export / import / rm / schema`: the run store from the shell.

Each command takes parsed arguments, the AppSettings and a rich Console, prints its output on the
console, its errors as one line on stderr, and returns the exit status (0 ok, 1 failed)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from bntui.commands.say import error, warn
from bntui.settings import AppSettings
from bntui.store import (
    StoredRun,
    StoreError,
    export_document,
    import_runs,
    list_runs,
    load_run,
    remove_run,
    write_export,
)
from bntui.store.output_file import output_file_problem
from bntui.store.schema import json_schema
from bntui.config import norm_cell
from bntui.present import units
from bntui.present.compare import config_diff
from bntui.present.statuses import status_markup
from bntui.present.text import escape
from bntui.present.words import counted

_RUNS_COLUMNS = ("dataset", "arch", "norm", "seed", "status", "epochs", "best val loss", "test acc", "time")
_NUMERIC = ("seed", "epochs", "best val loss", "test acc", "time")
# On a narrow terminal whole columns are left out, in this order: first those the id already
# says (e.g. 20261126-153012-mnist-mini-mlp-bn-s0-a1b2), then the least telling numbers.
_DROP_ORDER = ("dataset", "arch", "norm", "seed", "time", "best val loss", "epochs", "test acc", "status")

# -- formatting ------------------------------------------------------------------------------


def _write_raw(console: Console, text: str) -> None:
    """Machine-readable output: bypass rich so nothing is wrapped or coloured."""
    console.file.write(text)
    console.file.flush()


def _status_text(run: StoredRun) -> str:
    return status_markup(run.status)


def _epochs_text(run: StoredRun) -> str:
    config = run.config
    return f"{run.epochs_done}/{config.epochs}" if config else str(run.epochs_done)


def _resolve(settings: AppSettings, refs: Sequence[str]) -> list[StoredRun] | None:
    """Each ref as a run, or None after printing why one could not be found."""
    runs = []
    for ref in refs:
        try:
            runs.append(load_run(settings.runs_dir, ref))
        except StoreError as exc:
            error(str(exc))
            return None
    return runs


# -- runs ------------------------------------------------------------------------------------


def cmd_runs(settings: AppSettings, console: Console, as_json: bool = False, query: str | None = None) -> int:
    try:
        runs = list_runs(settings.runs_dir)
    except StoreError as exc:
        error(str(exc))
        return 1
    if query:
        from bntui.commands.tag_commands import filtered_runs
        from bntui.filters import FilterError

        try:
            runs = filtered_runs(runs, query)
        except FilterError as exc:
            error(str(exc))
            return 2
    if as_json:
        # One run a line, each dumped by json's C encoder: thousands of runs, quickly, in
        # little memory (indent= would take json's Python encoder and the whole text at once).
        lines = ",\n".join(f"  {json.dumps(run.overview())}" for run in runs)
        _write_raw(console, f'{{"runs": [\n{lines}\n]}}\n' if runs else '{"runs": []}\n')
        return 0
    if not runs:
        where = f"no runs match {query!r}" if query else "no runs"
        console.print(f"{escape(where)} in {escape(str(settings.runs_dir))}", highlight=False, soft_wrap=True)
        return 0
    rows = [_runs_row(run) for run in runs]
    # The id is what the user copies into `bntui show`: never wrapped, folded or cut; the
    # other cells are never cut either: a column that does not fit is left out whole.
    widths = {
        name: max(*map(len, _header(name).splitlines()), *(len(row[name]) for row in rows))
        for name in ("id", *_RUNS_COLUMNS)
    }
    columns = list(_RUNS_COLUMNS)
    for name in _DROP_ORDER:
        if widths["id"] + sum(widths[c] + 1 for c in columns) <= console.width:
            break
        columns.remove(name)
    table = Table(
        title=f"Runs in {escape(str(settings.runs_dir))}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=0,  # the box's blank separators leave one space between columns
    )
    for name in ("id", *columns):
        table.add_column(
            _header(name), justify="right" if name in _NUMERIC else "left", no_wrap=True, min_width=widths[name]
        )
    for run, row in zip(runs, rows):
        cells = [escape(row[name]) for name in ("id", *columns)]
        if "status" in columns:
            cells[1 + columns.index("status")] = _status_text(run)
        table.add_row(*cells)
    console.print(table, crop=False)  # a terminal narrower than an id: wrap it, never cut it
    in_the_id = [name for name in _DROP_ORDER[:4] if name not in columns]
    elsewhere = [name for name in _RUNS_COLUMNS if name not in columns and name not in in_the_id]
    notes = [f"{', '.join(in_the_id)} (the run id says them)"] if in_the_id else []
    notes += [f"{', '.join(elsewhere)} (see --json)"] if elsewhere else []
    if notes:
        console.print(f"[dim]not shown at this width: {'; '.join(notes)}[/]", highlight=False)
    # Reasons are long: one line per damaged run below the table, not a column in it.
    for run in runs:
        if run.damaged:
            console.print(f"[red]damaged[/] {escape(run.id)}: {escape(run.damaged)}", highlight=False, soft_wrap=True)
    return 0


def _header(name: str) -> str:
    # two short lines: the numbers below are 6 characters wide
    return "best\nval loss" if name == "best val loss" else name


def _runs_row(run: StoredRun) -> dict[str, str]:
    info = run.overview()
    return {
        "id": run.id,
        "dataset": info["dataset"] or "?",
        "arch": info["arch"] or "?",
        "norm": "?" if run.config is None else norm_cell(run.config),
        "seed": "?" if info["seed"] is None else str(info["seed"]),
        "status": run.status,
        "epochs": _epochs_text(run),
        "best val loss": units.loss(info["best_val_loss"]),
        "test acc": units.accuracy(info["test_accuracy"]),
        "time": units.duration(info["duration_seconds"]),
    }


# -- show ------------------------------------------------------------------------------------


def cmd_show(settings: AppSettings, console: Console, run: str) -> int:
    found = _resolve(settings, [run])
    if found is None:
        return 1
    stored = found[0]
    record = stored.record
    console.print(f"[bold]{escape(stored.id)}[/]  {_status_text(stored)}", highlight=False, soft_wrap=True)
    if record is not None and record.message:
        console.print(f"message: {escape(record.message)}", highlight=False, soft_wrap=True)
    if stored.group:
        console.print(f"group: {escape(stored.group)}", highlight=False, soft_wrap=True)
    if stored.damaged:
        console.print(f"[red]damaged:[/] {escape(stored.damaged)}", highlight=False, soft_wrap=True)
    if record is None:
        error(f"run {stored.id}: nothing readable to show ({stored.damaged})")
        return 1

    config_table = Table(title="Config", title_justify="left", show_header=False)
    config_table.add_column("setting")
    config_table.add_column("value")
    for name, value in record.config.model_dump().items():
        config_table.add_row(name, escape(units.setting(value)))
    console.print(config_table)

    env = record.environment
    device = env.device + (f" ({env.device_name})" if env.device_name else "")
    console.print(
        escape(
            f"environment: python {env.python or '?'}, torch {env.torch or '?'}, "
            f"torchvision {env.torchvision or '?'}, device {device or '?'}, "
            f"{env.cpu_threads} CPU threads, {env.hostname or '?'}"
        ),
        highlight=False,
        soft_wrap=True,
    )

    history = record.history
    if len(history):
        table = Table(title="Epochs", title_justify="left")
        columns = ["epoch", "train loss", "val loss", "train acc", "val acc"]
        batch_stats = bool(history.val_accuracy_batch_stats) and any(
            v is not None for v in history.val_accuracy_batch_stats
        )
        if batch_stats:
            columns.append("val acc (batch stats)")
        if history.epoch_seconds:
            columns.append("time")
        for name in columns:
            table.add_column(name, justify="right")
        for i in range(len(history)):
            cells = [
                str(history.epoch[i]),
                units.loss(history.train_loss[i]),
                units.loss(history.val_loss[i]),
                units.accuracy(history.train_accuracy[i]),
                units.accuracy(history.val_accuracy[i]),
            ]
            if batch_stats:
                cells.append(units.accuracy(history.val_accuracy_batch_stats[i]))
            if history.epoch_seconds:
                cells.append(units.duration(history.epoch_seconds[i]))
            table.add_row(*cells)
        console.print(table)
    else:
        console.print("no epoch completed", highlight=False, soft_wrap=True)

    if record.final is not None:
        final = record.final
        table = Table(title="Final metrics", title_justify="left")
        for name in ("", "loss", "accuracy"):
            table.add_column(name, justify="left" if not name else "right")
        for split in ("train", "val", "test"):
            table.add_row(
                split,
                units.loss(getattr(final, f"{split}_loss")),
                units.accuracy(getattr(final, f"{split}_accuracy")),
            )
        console.print(table)
    timings = record.timings
    console.print(
        f"duration {units.duration(stored.duration_seconds)}, {timings.steps} steps",
        highlight=False,
        soft_wrap=True,
    )
    return 0


# -- compare ---------------------------------------------------------------------------------


def _compare_metrics(run: StoredRun) -> dict[str, tuple[float | None, str]]:
    """metric -> (value, kind) where kind picks the format: loss, accuracy, count, seconds."""
    record = run.record
    assert record is not None
    final = record.final
    val_acc = [v for v in record.history.val_accuracy if math.isfinite(v)]
    return {
        "test accuracy": (final.test_accuracy if final else None, "accuracy"),
        "test loss": (final.test_loss if final else None, "loss"),
        "final val accuracy": (final.val_accuracy if final else None, "accuracy"),
        "best val accuracy": (max(val_acc) if val_acc else None, "accuracy"),
        "best val loss": (run.best_val_loss, "loss"),
        "final train loss": (final.train_loss if final else None, "loss"),
        "epochs done": (float(run.epochs_done), "count"),
        "duration": (run.duration_seconds, "seconds"),
    }


def _format_delta(value: float | None, base: float | None, kind: str) -> str:
    if value is None or base is None or not (math.isfinite(value) and math.isfinite(base)):
        return ""
    return f" ({units.metric_delta(kind, value - base)})"


def cmd_compare(settings: AppSettings, console: Console, runs: Sequence[str], show_all: bool = False) -> int:
    found = _resolve(settings, runs)
    if found is None:
        return 1
    unreadable = [run for run in found if run.record is None]
    if unreadable:
        run = unreadable[0]
        error(f"run {run.id} cannot be compared: {run.damaged}")
        return 1
    for run in found:
        if run.damaged:
            warn(f"run {run.id} is damaged ({run.damaged}): comparing what could be read")

    metrics = [_compare_metrics(run) for run in found]
    table = Table(title="Metrics (deltas against the first run)", title_justify="left")
    table.add_column("")
    for run in found:
        label = run.config.label if run.config else ""
        table.add_column(f"{escape(run.id)}\n{escape(label)}", justify="right")
    table.add_row("status", *(_status_text(run) for run in found))
    for name, (base, kind) in metrics[0].items():
        cells = [units.metric_value(kind, base)]
        for other in metrics[1:]:
            value, _ = other[name]
            cells.append(units.metric_value(kind, value) + _format_delta(value, base, kind))
        table.add_row(name, *cells)
    console.print(table)

    rows = config_diff([run.record for run in found], show_all, group=True)  # type: ignore[misc]
    if not rows:
        console.print("configs: identical", highlight=False, soft_wrap=True)
        return 0
    title = "Config" if show_all else "Config (only the settings that differ; --all shows every one)"
    config_table = Table(title=title, title_justify="left")
    config_table.add_column("setting")
    for run in found:
        config_table.add_column(escape(run.id), justify="right")
    for row in rows:
        config_table.add_row(row.name, *(escape(value) for value in row.values))
    console.print(config_table)
    return 0


# -- export / import -------------------------------------------------------------------------


def cmd_export(settings: AppSettings, console: Console, runs: Sequence[str], output: str, force: bool = False) -> int:
    """All runs when none are named. With output "-" the document is the only thing on stdout.
    An existing file is only replaced with force (the TUI's export dialog asks instead)."""
    if not output.strip():  # Path("") is the current folder, which "exists"
        error("-o: give a file name (or - for stdout)")
        return 2
    if output != "-" and not force and Path(output).exists():
        error(f"{output} exists: nothing written (--force replaces it)")
        return 1
    if problem := output_file_problem(Path(output)):
        error(f"-o: {problem}")
        return 1
    if runs:
        found = _resolve(settings, runs)
        if found is None:
            return 1
        unreadable = [run for run in found if run.record is None]
        if unreadable:
            error(f"run {unreadable[0].id} cannot be exported: {unreadable[0].damaged}")
            return 1
    else:
        try:
            found = list_runs(settings.runs_dir)
        except StoreError as exc:
            error(str(exc))
            return 1
        for run in found:
            if run.record is None:
                warn(f"skipped run {run.id}: {run.damaged}")
    doc = export_document(found)
    if not doc.runs:  # an empty document is almost always a wrong --runs-dir
        error(f"no runs to export in {settings.runs_dir}: nothing written")
        return 1
    try:
        write_export(doc, output)
    except StoreError as exc:
        error(str(exc))
        return 1
    except OSError as exc:  # stdout closed (e.g. piped into `head`)
        error(f"cannot write to stdout: {exc.strerror or exc}")
        return 1
    if output != "-":
        console.print(f"exported {counted(len(doc.runs), 'run')} to {escape(output)}", highlight=False, soft_wrap=True)
    return 0


def cmd_import(settings: AppSettings, console: Console, path: str | Path) -> int:
    try:
        report = import_runs(settings.runs_dir, path)
    except StoreError as exc:  # the file (ImportFileError) or the runs dir cannot be used
        error(str(exc))
        return 1
    for source, new_id in report.imported:
        renamed = f" as {escape(new_id)} (the id was taken)" if new_id != source else ""
        console.print(f"[green]imported[/] {escape(source)}{renamed}", highlight=False, soft_wrap=True)
    for source in report.skipped:
        console.print(f"already in the store: {escape(source)}", highlight=False, soft_wrap=True)
    for source, reason in report.rejected:
        console.print(f"[red]rejected[/] {escape(source)}: {escape(reason)}", highlight=False, soft_wrap=True)
    console.print(
        f"{len(report.imported)} imported, "
        + (f"{len(report.skipped)} already in the store, " if report.skipped else "")
        + f"{len(report.rejected)} rejected "
        f"into {escape(str(settings.runs_dir))}",
        highlight=False,
        soft_wrap=True,
    )
    return 1 if report.rejected else 0


# -- rm ----------------------------------------------------------------------------------------


def _ask(console: Console) -> Callable[[str], bool]:
    def confirm(question: str) -> bool:
        from rich.prompt import Confirm

        try:
            return Confirm.ask(question, console=console, default=False)
        except EOFError:
            return False  # no terminal to answer on: keep the runs

    return confirm


def cmd_rm(
    settings: AppSettings,
    console: Console,
    runs: Sequence[str],
    yes: bool = False,
    confirm: Callable[[str], bool] | None = None,
) -> int:
    found = _resolve(settings, runs)
    if found is None:
        return 1
    unique = list({run.id: run for run in found}.values())
    # A queued run would be started by the scheduler after its folder is gone: stop it first.
    running = [run for run in unique if run.active]
    for run in running:
        error(f"run {run.id} is {run.status}: stop it (bntui cancel) before removing it (nothing removed for it)")
    removable = [run for run in unique if not run.active]
    if not removable:
        return 1
    if not yes:
        ids = ", ".join(run.id for run in removable)
        question = f"Remove {counted(len(removable), 'run')}: {ids}?"
        if not (confirm or _ask(console))(question):
            console.print("nothing removed", highlight=False, soft_wrap=True)
            return 1
    failed = False
    for run in removable:
        try:
            remove_run(run.path, live=run.active)
        except StoreError as exc:
            error(str(exc))
            failed = True
            continue
        console.print(f"removed {escape(run.id)}", highlight=False, soft_wrap=True)
    return 1 if failed or running else 0


# -- schema ------------------------------------------------------------------------------------


def cmd_schema(console: Console) -> int:
    _write_raw(console, json.dumps(json_schema(), indent=2) + "\n")
    return 0


__all__ = [
    "cmd_compare",
    "cmd_export",
    "cmd_import",
    "cmd_rm",
    "cmd_runs",
    "cmd_schema",
    "cmd_show",
]
