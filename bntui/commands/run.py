"""`bntui run`: train one launch headlessly (a run, or paired BN/no-BN runs over K seeds)."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.box import SIMPLE_HEAD
from rich.table import Table

from bntui.config import TrainingFields, check_device_available, format_validation_error
from bntui.launch import LaunchPlan, plan_runs
from bntui.settings import AppSettings
from bntui.store import StoreError, ensure_runs_dir

if TYPE_CHECKING:
    from bntui.cli import RunCommand
    from bntui.execute import StoredOutcome

_LAUNCH_ONLY_FIELDS = {"bn", "seeds", "data_dir", "download", "threads", "json_file", "preset", "runs_dir"}


def build_plan(command: RunCommand, settings: AppSettings) -> tuple[LaunchPlan, str | None]:
    """The launch plan from flags, preset and settings. Flags the user gave win over the preset."""
    values = command.model_dump(exclude=_LAUNCH_ONLY_FIELDS)
    bn, seeds = command.bn, command.seeds
    note, sweep = None, None
    if command.preset:
        from bntui.engine.data import dataset_info
        from bntui.presets import PRESETS, preset_values

        given = command.model_fields_set
        dataset = PRESETS[command.preset].get("dataset", command.dataset)
        present = dataset_info(dataset, settings.data_dir).present
        preset = preset_values(command.preset, present)
        if not present and "dataset" not in given:
            note = f"{dataset} is not in {settings.data_dir}: preset uses {preset['dataset']}"
        for key, value in preset.items():
            if key in given:
                continue
            if key == "sweep":  # a flag the user gave fixes that setting instead
                sweep = {name: values for name, values in value.items() if name not in given} or None
            elif key == "bn":
                bn = value
            elif key == "seeds":
                seeds = value
            else:
                values[key] = value
    values["device"] = command.device or settings.device
    return plan_runs(TrainingFields(**values), bn, seeds, sweep), note


def output_file_problem(path: Path) -> str | None:
    """Why `path` cannot be written as a file ('-' is stdout), or None. Checked before
    training, so that a typo does not cost the training run's results."""
    if str(path) == "-":
        return None
    if path.is_dir():
        return f"{path} is a folder, not a file"
    folder = path.parent
    if not folder.exists():
        return f"folder {folder} does not exist"
    if not folder.is_dir():
        return f"{folder} is a file, not a folder"
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return f"cannot write {path}: permission denied"
    return None


def cmd_run(command: RunCommand, settings: AppSettings, console: Console) -> int:
    try:
        plan, note = build_plan(command, settings)
        if command.json_file is not None and (problem := output_file_problem(command.json_file)):
            raise ValueError(f"--json: {problem}")
        check_device_available(plan.configs[0].device)
        ensure_runs_dir(settings.runs_dir)  # the first run would create it: fail now, not then
    except ValidationError as exc:
        print(f"bntui: error: {format_validation_error(exc)}", file=sys.stderr)
        return 2
    except (ValueError, StoreError) as exc:
        print(f"bntui: error: {exc}", file=sys.stderr)
        return 2
    if note:
        console.print(f"[yellow]note:[/] {note}", highlight=False)

    stop = threading.Event()
    previous_handler = signal.signal(signal.SIGINT, lambda *_: stop.set())
    outcomes: list[StoredOutcome] = []
    try:
        outcomes = _train_all(plan, settings, console, stop)
    finally:
        signal.signal(signal.SIGINT, previous_handler)

    _print_results(console, outcomes)
    if plan.group and any(c.bn for c in plan.configs) and any(not c.bn for c in plan.configs):
        from bntui.commands.group import print_group_card

        print_group_card(settings, console, plan.group)
    if command.json_file:
        from bntui.commands.store_commands import cmd_export

        ids = [o.run_id for o in outcomes if o.run_id]
        # --json names the file this launch writes (checked before training): no refusal
        # after the runs are done, as there is for `bntui export -o` without --force.
        if cmd_export(settings, console, ids, str(command.json_file), force=True) != 0:
            return 1
    if stop.is_set():
        return 130
    return 0 if all(o.result.status == "finished" and o.stored for o in outcomes) else 1


def _train_all(
    plan: LaunchPlan, settings: AppSettings, console: Console, stop: threading.Event
) -> list[StoredOutcome]:
    from bntui.engine.events import EpochEnded, Progress as ProgressEvent, RunStarted
    from bntui.execute import run_and_store

    outcomes = []
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("epoch {task.fields[epoch]}"),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("{task.fields[speed]} steps/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        for config in plan.configs:
            if stop.is_set():
                break
            task = progress.add_task(
                config.label, total=None, epoch=f"0/{config.epochs}", loss="-", speed="-"
            )

            def on_event(run_id: str, event, task=task, epochs=config.epochs) -> None:
                if isinstance(event, RunStarted):
                    progress.update(task, total=event.steps_per_epoch * epochs)
                elif isinstance(event, ProgressEvent):
                    progress.update(
                        task,
                        completed=event.step,
                        epoch=f"{event.epoch}/{epochs}",
                        loss=f"{event.train_loss:.4f}",
                        speed=f"{event.steps_per_second:.0f}",
                    )
                elif isinstance(event, EpochEnded):
                    progress.update(
                        task,
                        completed=event.step,
                        epoch=f"{event.epoch}/{epochs}",
                        loss=f"{event.train_loss:.4f}",
                    )

            outcome = run_and_store(
                config,
                runs_dir=settings.runs_dir,
                data_dir=settings.data_dir,
                download=settings.download,
                threads=settings.threads,
                group=plan.group,
                should_stop=stop.is_set,
                on_event=on_event,
            )
            outcomes.append(outcome)
            status = outcome.result.status
            style = {"finished": "green", "cancelled": "yellow"}.get(status, "red")
            progress.update(task, description=f"{config.label} [{style}]{status}[/]")
            if status == "failed" or not outcome.stored:
                progress.console.print(
                    f"[red]{config.label} failed:[/] {outcome.store_error or outcome.result.message}",
                    highlight=False,
                )
    return outcomes


def _print_results(console: Console, outcomes: list[StoredOutcome]) -> None:
    title = "Results (accuracy % and loss: train / val / test)"
    headers = ("run", "status", "accuracy %", "loss")
    rows, test_rows = [], []
    for outcome in outcomes:
        # A run the store could not take has no id: its label (dataset/arch/bn/seed) stands in.
        name, status = outcome.run_id or outcome.config.label, outcome.result.status
        final = outcome.result.final
        accuracy = loss = ["-"]
        if final is not None:
            accuracy = [f"{v * 100:.2f}" for v in (final.train_accuracy, final.val_accuracy, final.test_accuracy)]
            loss = [f"{v:.4f}" for v in (final.train_loss, final.val_loss, final.test_loss)]
        rows.append((name, status, " / ".join(accuracy), " / ".join(loss)))
        test_rows.append((name, status, accuracy[-1], loss[-1]))
    # The run id is what the user copies into `bntui show`: never wrapped, folded or cut. Where
    # train / val / test do not fit beside it, the table keeps the test numbers only.
    # The choice counts room for a finished run's numbers even when none finished (Ctrl+C), so
    # that the same terminal always gets the same columns.
    typical = ("", "", "100.00 / 100.00 / 100.00", "0.0000 / 0.0000 / 0.0000")
    natural = sum(max(map(len, column)) for column in zip(headers, typical, *rows)) + len(headers) - 1
    if natural > console.width:
        title = "Results on the test set (train and val: bntui show RUN)"
        headers, rows = ("run", "status", "test acc %", "test loss"), test_rows
    table = Table(
        title=title,
        title_justify="left",
        box=SIMPLE_HEAD,
        show_edge=False,
        padding=0,  # the box's blank separators leave one space between columns
    )
    widest = [max(map(len, column)) for column in zip(headers, *rows)]
    table.add_column(headers[0], no_wrap=True, min_width=widest[0])
    table.add_column(headers[1], no_wrap=True, min_width=widest[1])
    for header in headers[2:]:  # on a terminal too narrow even for these, they shrink
        table.add_column(header, justify="right", overflow="ellipsis")
    for row in rows:
        table.add_row(*row)
    console.print(table, crop=False)  # a terminal narrower than an id: wrap it, never cut it

    arms: dict[str, list] = {}
    for outcome in outcomes:
        if outcome.result.final is not None:
            arms.setdefault(_arm_name(outcome.config, outcomes), []).append(outcome.result.final)
    if any(len(finals) > 1 for finals in arms.values()):
        summary = Table(title="Per arm: mean ± std over seeds", title_justify="left", box=SIMPLE_HEAD)
        for column in ("arm", "runs", "train acc %", "val acc %", "test acc %", "test loss"):
            summary.add_column(column, justify="left" if column == "arm" else "right", no_wrap=True)
        for arm, finals in arms.items():
            summary.add_row(
                arm,
                str(len(finals)),
                *(_mean_std([getattr(f, name) * 100 for f in finals], digits=2)
                  for name in ("train_accuracy", "val_accuracy", "test_accuracy")),
                _mean_std([f.test_loss for f in finals], digits=4),
            )
        console.print(summary)


def _arm_name(config, outcomes: list[StoredOutcome]) -> str:
    """bn / no-bn (or the norm's tag), with the batch size where a sweep varies it."""
    name = "no-bn" if not config.bn else ("bn" if config.norm == "batch" else config.norm_tag)
    if len({o.config.batch_size for o in outcomes}) > 1:
        name += f" batch {config.batch_size}"
    return name


def _mean_std(values: list[float], *, digits: int) -> str:
    from bntui.stats import mean_std

    mean, std = mean_std(values)
    return f"{mean:.{digits}f} ± {std or 0.0:.{digits}f}"
