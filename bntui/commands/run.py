"""`bntui run`: launch runs (a run, or paired BN/no-BN runs over K seeds) and follow them.

The runs go to the store's queue and train in detached processes (bntui.runs); this command
only launches them and, without --detach, draws their progress from the store and prints the
result card when they end. Closing its terminal never stops a run."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError
from rich.console import Console
from rich.progress import Progress
from rich.box import SIMPLE_HEAD
from rich.table import Table

from bntui.config import (
    BnChoice,
    Dataset,
    TrainingFields,
    check_device_available,
    default_seeds,
    format_validation_error,
)
from bntui.launch import LaunchPlan, plan_runs
from bntui.settings import AppSettings
from bntui.presets import PresetName
from bntui.store import StoredRun, StoreError, ensure_runs_dir
from bntui.store.output_file import output_file_problem
from bntui.commands.progress import FittedProgress
from bntui.present.statuses import status_markup
from bntui.present.text import escape
from bntui.present.words import counted


class RunRequest(Protocol):
    """What `bntui run` was asked (bntui.cli.RunCommand): its training fields and these."""

    bn: BnChoice
    seeds: int | None  # None: default_seeds(bn)
    dataset: Dataset
    device: str | None
    json_file: Path | None
    preset: PresetName | None
    sweep_file: Path | None
    grid: dict[str, list[str]]
    detach: bool
    dry_run: bool
    yes: bool

    @property
    def model_fields_set(self) -> set[str]: ...

    def model_dump(self, *, exclude: set[str]) -> dict: ...


# RunCommand's fields that are not a run's own settings.
_LAUNCH_ONLY_FIELDS = {
    "bn",
    "seeds",
    "data_dir",
    "download",
    "threads",
    "json_file",
    "preset",
    "runs_dir",
    "detach",
    "max_parallel",
    "pack",
    "backend",
    "slurm_partition",
    "slurm_time_min",
    "slurm_gpus",
    "slurm_cpus",
    "sweep_file",
    "dry_run",
    "yes",
    "grid",
}


def build_plan(command: RunRequest, settings: AppSettings) -> tuple[LaunchPlan, str | None]:
    """The launch plan from flags, preset and settings. Flags the user gave win over the preset."""
    values = command.model_dump(exclude=_LAUNCH_ONLY_FIELDS)
    bn, seeds = command.bn, command.seeds
    note, sweep = None, None
    given = set(command.model_fields_set)
    grid = dict(command.grid)

    def fill(source: dict[str, Any]) -> None:
        """Settings from a sweep file or a preset, for those the user did not give."""
        nonlocal bn, seeds
        for key, value in source.items():
            if key in given:
                continue
            if key == "bn":
                bn = value
            elif key == "seeds":
                seeds = value
            else:
                values[key] = value

    if command.sweep_file:  # its settings count as given: they beat a preset's
        from bntui.sweep import load_sweep_file

        sweep_file = load_sweep_file(command.sweep_file)
        fill(sweep_file.fixed())
        given |= sweep_file.model_fields_set
        grid = {**sweep_file.grid, **grid}  # a list on the command line replaces the file's
    if command.preset:
        from bntui.engine.data import dataset_info
        from bntui.presets import PRESETS, preset_values

        dataset = PRESETS[command.preset].get("dataset", command.dataset)
        present = dataset_info(dataset, settings.data_dir).present
        preset = preset_values(command.preset, present)
        if not present and "dataset" not in given:
            note = f"{dataset} is not in {settings.data_dir}: preset uses {preset['dataset']}"
        preset_sweep = preset.pop("sweep", None)
        if preset_sweep and "sweep" not in given:  # a flag the user gave fixes that setting instead
            sweep = {name: swept for name, swept in preset_sweep.items() if name not in given} or None
        fill(preset)
    values["device"] = command.device or settings.device
    if grid:
        sweep = {**(sweep or {}), **grid}
    seeds = default_seeds(bn) if seeds is None else seeds
    return plan_runs(TrainingFields(**values), bn, seeds, sweep), note


def cmd_run(request: RunRequest, settings: AppSettings, console: Console) -> int:
    from bntui.runs.launch import LaunchError, LaunchOptions, launch, pack_note

    try:
        plan, note = build_plan(request, settings)
        if request.dry_run:
            from bntui.commands.sweep_commands import print_dry_run

            return print_dry_run(console, plan)
        if not grid_confirmed(request, len(plan.configs)):
            return 2
        if request.json_file is not None and (problem := output_file_problem(request.json_file)):
            raise ValueError(f"--json: {problem}")
        check_device_available(plan.configs[0].device)
        ensure_runs_dir(settings.runs_dir)  # the first run would create it: fail now, not then
        run_ids = launch(plan, LaunchOptions.from_settings(settings))
    except ValidationError as exc:
        print(f"bntui: error: {format_validation_error(exc, as_flags=True)}", file=sys.stderr)
        return 2
    except (ValueError, StoreError, LaunchError) as exc:
        print(f"bntui: error: {exc}", file=sys.stderr)
        return 2
    if note:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    if pack := pack_note(plan.configs, LaunchOptions.from_settings(settings)):
        console.print(f"[yellow]note:[/] {pack}", highlight=False)
    if request.detach:
        where = "submitted to SLURM" if settings.backend == "slurm" else "queued"
        console.print(f"{counted(len(run_ids), 'run')} {where}; they go on without this terminal:", highlight=False)
        for run_id in run_ids:
            console.print(f"  {run_id}", highlight=False, soft_wrap=True)
        follow = f"bntui compare --group {plan.group}" if plan.group else f"bntui show {run_ids[0]}"
        console.print(
            f"Follow them with `bntui queue` and `{follow}`; stop them with `bntui cancel`.",
            highlight=False,
            soft_wrap=True,
        )
        return 0

    follower = Follower(settings.runs_dir, run_ids, console)
    ended_by = follower.follow()
    if ended_by == "left":
        return 0
    runs = follower.latest()
    _print_results(console, runs)
    if plan.group and any(c.bn for c in plan.configs) and any(not c.bn for c in plan.configs):
        from bntui.commands.group import cmd_compare_group

        cmd_compare_group(settings, console, plan.group)  # a sweep's table, else the result card
    if request.json_file:
        from bntui.commands.store_commands import cmd_export

        # --json names the file this launch writes (checked before training): no refusal
        # after the runs are done, as there is for `bntui export -o` without --force.
        if cmd_export(settings, console, run_ids, str(request.json_file), force=True) != 0:
            return 1
    if isinstance(ended_by, int):  # the signal that stopped them
        return 128 + ended_by
    return 0 if all(run.status == "finished" for run in runs) else 1


def grid_confirmed(request: RunRequest, count: int) -> bool:
    """A launch of more than GRID_LIMIT runs goes ahead with --yes or a yes on the terminal;
    without a terminal to ask on it is refused, with one line."""
    from bntui.sweep import GRID_LIMIT

    if count <= GRID_LIMIT or request.yes:
        return True
    if not sys.stdin.isatty():
        print(
            f"bntui: error: the launch makes {count} runs, more than {GRID_LIMIT}: "
            "pass --yes to launch them (or --dry-run to list them)",
            file=sys.stderr,
        )
        return False
    try:
        answer = input(f"The launch makes {count} runs (more than {GRID_LIMIT}). Launch them? [y/N] ")
    except (EOFError, KeyboardInterrupt, OSError):
        answer = ""
    return answer.strip().lower().startswith("y")


# How `bntui run` follows its runs: it reads the store, like every other view.
FOLLOW_SECONDS = 0.25


class Follower:
    """Draws the launch's runs from the store until every one has ended.

    Ctrl-C asks whether to stop the runs or leave them running (without a terminal to ask
    on: stop them); SIGTERM and SIGHUP stop them. Stopped runs end as cancelled with their
    completed epochs, written by their own trainers; this process only waits to show them."""

    def __init__(self, runs_dir: Path, run_ids: list[str], console: Console) -> None:
        self.runs_dir = runs_dir
        self.run_ids = run_ids
        self.console = console
        self.signals: list[int] = []
        self.stopping: int | None = None  # the signal that stopped the runs
        self.told: set[str] = set()  # runs whose failure was printed

    def latest(self) -> list[StoredRun]:
        from bntui.store import list_runs

        by_id = {run.id: run for run in list_runs(self.runs_dir)}
        return [by_id[run_id] for run_id in self.run_ids if run_id in by_id]

    def follow(self) -> str | int | None:
        """None when every run ended by itself; the signal number when a signal stopped
        them; "left" when the user left them running."""
        previous = {
            signum: signal.signal(signum, lambda number, _frame: self.signals.append(number))
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        }
        try:
            with self._progress() as progress:
                tasks = {
                    run_id: progress.add_task(run_id, total=None, epoch="-", loss="-", speed="-")
                    for run_id in self.run_ids
                }
                while True:
                    runs = self.latest()
                    for run in runs:
                        self._draw(progress, tasks[run.id], run)
                    if runs and all(not run.active for run in runs):
                        return self.stopping
                    if self.signals and self._answer(self.signals.pop(0), progress) == "left":
                        return "left"
                    time.sleep(FOLLOW_SECONDS)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _answer(self, signum: int, progress: Progress) -> str:
        if self.stopping is not None:
            return "stop"  # already stopping: a second Ctrl-C does not ask again
        choice = "stop"
        if signum == signal.SIGINT and sys.stdin.isatty():
            progress.stop()
            choice = _ask_stop_or_leave()
            if choice != "left":
                progress.start()
        if choice == "left":
            self.console.print(
                "The runs go on without this terminal: follow them with `bntui queue`, stop them with `bntui cancel`.",
                highlight=False,
            )
            return "left"
        from bntui.runs.cancel import cancel_run

        self.stopping = signum
        for run in self.latest():
            if run.active:
                cancel_run(self.runs_dir, run)
        return "stop"

    def _progress(self) -> Progress:
        return FittedProgress(console=self.console, transient=False)

    def _draw(self, progress: Progress, task, run: StoredRun) -> None:
        config, record = run.config, run.record
        label = config.label if config else run.id
        epochs = config.epochs if config else 0
        status = "" if run.status == "running" else f" {status_markup(run.status)}"
        fields: dict[str, Any] = {"description": f"{escape(label)}{status}", "epoch": f"{run.epochs_done}/{epochs}"}
        if run.steps_per_epoch:
            fields["total"] = run.steps_per_epoch * epochs
        if record is not None and record.progress.step:
            points = record.progress
            fields.update(completed=points.step[-1], loss=f"{points.train_loss[-1]:.4f}")
            if points.elapsed[-1] > 0:
                fields["speed"] = f"{points.step[-1] / points.elapsed[-1]:.0f}"
        if record is not None and record.history.step:
            fields["completed"] = max(fields.get("completed", 0), record.history.step[-1])
        if record is not None and record.timings.steps and not run.active:
            fields["completed"] = record.timings.steps
        progress.update(task, **fields)
        if run.status in ("failed", "crashed", "diverged") and run.id not in self.told:
            self.told.add(run.id)
            message = record.message if record is not None else run.damaged
            progress.console.print(f"[red]{escape(label)} {run.status}:[/] {escape(message or '')}", highlight=False)


def _ask_stop_or_leave() -> str:
    """Ask on the terminal; Enter (or anything but l) stops the runs."""
    try:
        answer = input("\nStop the runs (s) or leave them running (l)? [s/l] ").strip().lower()
    except (EOFError, KeyboardInterrupt, OSError):
        return "stop"
    return "left" if answer.startswith("l") else "stop"


def _print_results(console: Console, runs: list[StoredRun]) -> None:
    title = "Results (accuracy % and loss: train / val / test)"
    headers = ("run", "status", "accuracy %", "loss")
    rows, test_rows = [], []
    for run in runs:
        final = run.record.final if run.record else None
        accuracy = loss = ["-"]
        if final is not None:
            accuracy = [f"{v * 100:.2f}" for v in (final.train_accuracy, final.val_accuracy, final.test_accuracy)]
            loss = [f"{v:.4f}" for v in (final.train_loss, final.val_loss, final.test_loss)]
        rows.append((run.id, run.status, " / ".join(accuracy), " / ".join(loss)))
        test_rows.append((run.id, run.status, accuracy[-1], loss[-1]))
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
    configs = [run.record.config for run in runs if run.record is not None]
    for run in runs:
        if run.record is not None and run.record.final is not None:
            arms.setdefault(_arm_name(run.record.config, configs), []).append(run.record.final)
    if any(len(finals) > 1 for finals in arms.values()):
        summary = Table(title="Per arm: mean ± std over seeds", title_justify="left", box=SIMPLE_HEAD)
        for column in ("arm", "runs", "train acc %", "val acc %", "test acc %", "test loss"):
            summary.add_column(column, justify="left" if column == "arm" else "right", no_wrap=True)
        for arm, finals in arms.items():
            summary.add_row(
                arm,
                str(len(finals)),
                *(
                    _mean_std([getattr(f, name) * 100 for f in finals], digits=2)
                    for name in ("train_accuracy", "val_accuracy", "test_accuracy")
                ),
                _mean_std([f.test_loss for f in finals], digits=4),
            )
        console.print(summary)


def _arm_name(config, configs: list) -> str:
    """bn / no-bn (or the norm's tag), with the batch size where a sweep varies it."""
    name = "no-bn" if not config.bn else ("bn" if config.norm == "batch" else config.norm_tag)
    if len({c.batch_size for c in configs}) > 1:
        name += f" batch {config.batch_size}"
    return name


def _mean_std(values: list[float], *, digits: int) -> str:
    from bntui.stats import mean_std

    mean, std = mean_std(values)
    return f"{mean:.{digits}f} ± {std or 0.0:.{digits}f}"
