"""Command line: `bntui` opens the TUI; sub-commands run and inspect experiments headlessly.

Flags are generated from the pydantic models by pydantic-settings' CLI support, so a setting is
declared once (in bntui.config / bntui.settings) and validated the same way everywhere. This
module must stay light: `bntui --help` never imports torch."""

from __future__ import annotations

import gc
import os
import re
import sys
from argparse import ArgumentParser
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import (
    CliApp,
    CliPositionalArg,
    CliSettingsSource,
    CliSubCommand,
    CliSuppress,
    SettingsError,
    get_subcommand,
)

from bntui.config import MAX_SEEDS, SEEDS_DESCRIPTION, BnChoice, TrainingFields, format_validation_error
from bntui.presets import PresetName
from bntui.settings import AppSettings, ConfigFileError, FolderPath, load_settings


SweepMetric = Literal["test_accuracy", "best_val_loss", "best_val_accuracy"]
CompareFormat = Literal["text", "md", "latex", "csv"]
ExportFormat = Literal["json", "csv", "md", "latex"]

RUNS_DIR_HELP = "run store folder (default: BNTUI_RUNS_DIR, config file, or the user data dir)"
DATA_DIR_HELP = "dataset folder (default: BNTUI_DATA_DIR, config file, or the user data dir)"


class StoreOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    runs_dir: FolderPath | None = Field(None, description=RUNS_DIR_HELP)

    def app_settings(self, **extra: Any) -> AppSettings:
        return load_settings(runs_dir=self.runs_dir, **extra)


class RunCommand(TrainingFields, StoreOptions):
    """Train runs headlessly and keep them in the run store. A comma list in a setting
    (--lr 0.01,0.1) makes a grid: one run per combination, in one group."""

    bn: BnChoice = Field("on", description="normalization (--norm): on, off, or both (paired runs per seed)")
    seeds: int | None = Field(None, ge=1, le=MAX_SEEDS, description=SEEDS_DESCRIPTION)
    # None: unset here, so the settings (env, config file) choose, not the run's own default.
    device: str | None = Field(  # type: ignore[assignment]
        None, description="auto, cpu, cuda, cuda:N or mps (default: BNTUI_DEVICE, config file, or auto)"
    )
    data_dir: FolderPath | None = Field(None, description=DATA_DIR_HELP)
    download: bool | None = Field(
        None, description="allow downloading datasets (default: BNTUI_DOWNLOAD, config file, or no)"
    )
    threads: int | None = Field(
        None,
        ge=0,
        description="CPU threads for torch, 0: torch's default (default: BNTUI_THREADS, config file, or 0)",
    )
    json_file: Path | None = Field(
        None,
        validation_alias=AliasChoices("json", "json_file"),
        description="also write the runs to this JSON file (export format)",
    )
    preset: PresetName | None = Field(
        None,
        description="start from a named preset: paper-fig1, santurkar-landscape, small-batch or lr-sensitivity",
    )
    detach: bool = Field(False, description="queue the runs and return at once; they train without this terminal")
    max_parallel: int | None = Field(
        None, description="runs at once per device (default: BNTUI_MAX_PARALLEL, config file, or 1 on a CPU)"
    )
    backend: str | None = Field(None, description="local or slurm (default: BNTUI_BACKEND, config file, or local)")
    pack: str | None = Field(
        None, description="auto: train runs differing only in seed and BN as one packed model; off (default: auto)"
    )
    slurm_partition: str | None = Field(None, description="SLURM partition (default: [slurm] in the config file)")
    slurm_time_min: int | None = Field(None, description="SLURM time limit per run, minutes (default: 60)")
    slurm_gpus: int | None = Field(None, description="GPUs per SLURM run (default: 0)")
    slurm_cpus: int | None = Field(None, description="CPU cores per SLURM run (default: 1)")
    sweep_file: Path | None = Field(
        None,
        validation_alias=AliasChoices("sweep", "sweep_file"),
        description="a TOML sweep file: fixed settings and a [grid] of lists (flags given win)",
    )
    dry_run: bool = Field(False, description="print the runs the launch would make, and launch nothing")
    yes: bool = Field(False, description="launch a grid of more than 500 runs without asking")
    # A comma list in a setting (--lr 0.01,0.1) is a grid: taken out before validation.
    grid: CliSuppress[dict[str, list[str]]] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _take_grid(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        from bntui.sweep import GridError, take_grid

        try:
            single, grid = take_grid(data)
        except GridError as exc:
            raise ValueError(str(exc)) from None
        return {**single, "grid": grid} if grid else data

    def cli_cmd(self) -> int:
        from bntui.commands.run import cmd_run

        slurm = {
            key: value
            for key in ("partition", "time_min", "gpus", "cpus")
            if (value := getattr(self, f"slurm_{key}")) is not None
        }
        settings = self.app_settings(
            data_dir=self.data_dir,
            device=self.device,
            download=self.download,
            threads=self.threads,
            max_parallel=self.max_parallel,
            backend=self.backend,
            slurm=slurm or None,
            pack=self.pack,
        )
        return cmd_run(self, settings, _console())


class CancelCommand(StoreOptions):
    """Stop queued or running runs, from any terminal (runs of a group: give the group id)."""

    runs: CliPositionalArg[list[str]] = Field(description="run ids (or unique prefixes) or group ids")

    def cli_cmd(self) -> int:
        from bntui.commands.queue_commands import cmd_cancel

        return cmd_cancel(self.app_settings(), _console(), self.runs)


class QueueCommand(StoreOptions):
    """List queued and running runs, and where each one runs."""

    as_json: bool = Field(
        False,
        validation_alias=AliasChoices("json", "as_json"),
        description='print {"runs": [...]} as JSON for machines',
    )

    def cli_cmd(self) -> int:
        from bntui.commands.queue_commands import cmd_queue

        return cmd_queue(self.app_settings(), _console(), as_json=self.as_json)


class RunsCommand(StoreOptions):
    """List the runs in the run store."""

    as_json: bool = Field(
        False,
        validation_alias=AliasChoices("json", "as_json"),
        description='print {"runs": [...]} as JSON for machines',
    )
    query: str | None = Field(
        None,
        validation_alias=AliasChoices("filter", "query"),
        description="only the runs a query selects, e.g. 'bn=on lr<0.01 tag:paper status:finished id:2026'",
    )

    def cli_cmd(self) -> int:
        from bntui.commands.store_commands import cmd_runs

        return cmd_runs(self.app_settings(), _console(), as_json=self.as_json, query=self.query)


class TagCommand(StoreOptions):
    """Tag runs (a group id tags each of its runs)."""

    run: CliPositionalArg[str] = Field(description="run id (or unique prefix) or group id")
    tags: CliPositionalArg[list[str]] = Field(description="tags to add")

    def cli_cmd(self) -> int:
        from bntui.commands.tag_commands import cmd_tag

        return cmd_tag(self.app_settings(), _console(), self.run, add=self.tags)


class UntagCommand(TagCommand):
    """Take tags off runs (a group id: each of its runs)."""

    tags: CliPositionalArg[list[str]] = Field(description="tags to remove")

    def cli_cmd(self) -> int:
        from bntui.commands.tag_commands import cmd_tag

        return cmd_tag(self.app_settings(), _console(), self.run, remove=self.tags)


class NoteCommand(StoreOptions):
    """Write a run's note (an empty text clears it)."""

    run: CliPositionalArg[str] = Field(description="run id (or unique prefix)")
    text: CliPositionalArg[str] = Field(description="the note")

    def cli_cmd(self) -> int:
        from bntui.commands.tag_commands import cmd_note

        return cmd_note(self.app_settings(), _console(), self.run, self.text)


class ShowCommand(StoreOptions):
    """Show one run: config, per-epoch table, final metrics."""

    run: CliPositionalArg[str] = Field(description="run id (or a unique prefix)")

    def cli_cmd(self) -> int:
        from bntui.commands.store_commands import cmd_show

        return cmd_show(self.app_settings(), _console(), self.run)


class CompareCommand(StoreOptions):
    """Compare runs side by side, or the paired BN ablation of a group."""

    runs: CliPositionalArg[list[str]] = Field(default_factory=list, description="run ids")
    all: bool = Field(False, description="show every config field, not only those that differ")
    group: str | None = Field(None, description="compare a group: result card with paired statistics")
    metric: SweepMetric = Field("test_accuracy", description="a sweep's final metric")
    output_format: CompareFormat = Field(
        "text", validation_alias=AliasChoices("format", "output_format"), description="table format"
    )

    def cli_cmd(self) -> int:
        settings = self.app_settings()
        if self.group:
            from bntui.commands.group import cmd_compare_group

            return cmd_compare_group(settings, _console(), self.group, self.metric, self.output_format)
        from bntui.commands.store_commands import cmd_compare

        if len(self.runs) < 2:
            _error("compare: name at least two runs, or a group with --group G")
            return 2
        if self.output_format != "text":  # for a paper: one row per run, settings and metrics
            from bntui.commands.tag_commands import cmd_export_table

            return cmd_export_table(settings, _console(), self.runs, "-", self.output_format)
        return cmd_compare(settings, _console(), self.runs, show_all=self.all)


class ExportCommand(StoreOptions):
    """Export runs to one versioned JSON document (all runs when none are named)."""

    runs: CliPositionalArg[list[str]] = Field(default_factory=list, description="run ids (none: every run)")
    output: str = Field(
        "-",
        validation_alias=AliasChoices("o", "output"),
        description="file to write, '-' for stdout",
    )
    force: bool = Field(False, description="replace the output file if it exists (without it: refuse)")
    output_format: ExportFormat = Field(
        "json",
        validation_alias=AliasChoices("format", "output_format"),
        description="json (the round-trip format), or a table of one row per run: csv, md or latex",
    )

    def cli_cmd(self) -> int:
        if self.output_format != "json":
            from bntui.commands.tag_commands import cmd_export_table

            return cmd_export_table(
                self.app_settings(), _console(), self.runs, self.output, self.output_format, force=self.force
            )
        from bntui.commands.store_commands import cmd_export

        return cmd_export(self.app_settings(), _console(), self.runs, self.output, force=self.force)


class ImportCommand(StoreOptions):
    """Import runs from an exported JSON document."""

    file: CliPositionalArg[Path] = Field(description="exported JSON file")

    def cli_cmd(self) -> int:
        from bntui.commands.store_commands import cmd_import

        return cmd_import(self.app_settings(), _console(), self.file)


class RmCommand(StoreOptions):
    """Remove runs from the run store."""

    runs: CliPositionalArg[list[str]] = Field(description="run ids")
    yes: bool = Field(False, description="do not ask for confirmation")

    def cli_cmd(self) -> int:
        from bntui.commands.store_commands import cmd_rm

        return cmd_rm(self.app_settings(), _console(), self.runs, yes=self.yes)


class SchemaCommand(BaseModel):
    """Print the JSON Schema of the export format."""

    def cli_cmd(self) -> int:
        from bntui.commands.store_commands import cmd_schema

        return cmd_schema(_console())


class ThemesCommand(BaseModel):
    """List the themes found and the theme files that failed, with reasons."""

    def cli_cmd(self) -> int:
        from bntui.commands.themes_command import cmd_themes

        return cmd_themes(load_settings(), _console())


# Options of `bntui` itself that its commands take too: `bntui --runs-dir X runs` is
# `bntui runs --runs-dir X` (see Bntui.cli_cmd).
GLOBAL_OPTIONS = ("runs_dir", "data_dir")


CommandT = TypeVar("CommandT", bound=BaseModel)


class Bntui(StoreOptions):
    """Run and compare batch-normalization experiments. Without a command, opens the TUI."""

    runs_dir: FolderPath | None = Field(None, description="for the TUI or the command after it: " + RUNS_DIR_HELP)
    data_dir: FolderPath | None = Field(None, description="for the TUI or the command after it: " + DATA_DIR_HELP)
    run: CliSubCommand[RunCommand] = Field(description=RunCommand.__doc__)
    runs: CliSubCommand[RunsCommand] = Field(description=RunsCommand.__doc__)
    queue: CliSubCommand[QueueCommand] = Field(description=QueueCommand.__doc__)
    cancel: CliSubCommand[CancelCommand] = Field(description=CancelCommand.__doc__)
    show: CliSubCommand[ShowCommand] = Field(description=ShowCommand.__doc__)
    compare: CliSubCommand[CompareCommand] = Field(description=CompareCommand.__doc__)
    export: CliSubCommand[ExportCommand] = Field(description=ExportCommand.__doc__)
    import_: CliSubCommand[ImportCommand] = Field(alias="import", description=ImportCommand.__doc__)
    rm: CliSubCommand[RmCommand] = Field(description=RmCommand.__doc__)
    tag: CliSubCommand[TagCommand] = Field(description=TagCommand.__doc__)
    untag: CliSubCommand[UntagCommand] = Field(description=UntagCommand.__doc__)
    note: CliSubCommand[NoteCommand] = Field(description=NoteCommand.__doc__)
    schema_: CliSubCommand[SchemaCommand] = Field(alias="schema", description=SchemaCommand.__doc__)
    themes: CliSubCommand[ThemesCommand] = Field(description=ThemesCommand.__doc__)

    def cli_cmd(self) -> int:
        command: Any = get_subcommand(self, is_required=False)  # one of the commands above
        if command is not None:
            return self.pass_global_options(command).cli_cmd()
        from bntui.tui.app import run_app

        return run_app(self.app_settings(data_dir=self.data_dir))

    def pass_global_options(self, command: CommandT) -> CommandT:
        """The command with the global options it also takes (argparse gives them to `bntui`
        only); the command's own flag, nearer to it on the command line, wins."""
        inherited = {
            name: getattr(self, name)
            for name in GLOBAL_OPTIONS
            if name in type(command).model_fields and getattr(command, name) is None and getattr(self, name) is not None
        }
        return command.model_copy(update=inherited) if inherited else command


_CONSOLE = None


def _console():
    global _CONSOLE
    if _CONSOLE is None:
        from rich.console import Console

        _CONSOLE = Console()
    return _CONSOLE


def _error(message: str) -> None:
    print(f"bntui: error: {message}", file=sys.stderr)


# pydantic-settings appends "(default: X)" to every option's help. For an option whose None
# means "unset" (its description says what that does) or whose default comes from a factory,
# that text says nothing, so it is dropped; a list default is shown as it is typed.
_EMPTY_DEFAULT = re.compile(r" ?\(default(: None| factory: [^)]*)\)$")
_LIST_DEFAULT = re.compile(r"\(default: \[([^]]*)\]\)$")


def _add_argument(parser: ArgumentParser, *args: Any, **kwargs: Any) -> Any:
    help_text = kwargs.get("help")
    if isinstance(help_text, str):
        help_text = _EMPTY_DEFAULT.sub("", help_text)
        kwargs["help"] = _LIST_DEFAULT.sub(lambda m: f"(default: {m[1].replace(', ', ',')})", help_text)
    return parser.add_argument(*args, **kwargs)


def entry() -> None:
    """The `bntui` command: main(), then the process ends. Everything the command made is
    frozen out of the garbage collector first: the interpreter's exit would otherwise walk
    every object still held (a second for a listing of 5,000 runs) only to free them all."""
    code = main()
    gc.freeze()
    sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    # pydantic-settings' CLI parses a plain model too (its CliApp does); only its hint says BaseSettings.
    source: CliSettingsSource[Bntui] = CliSettingsSource(
        Bntui,  # type: ignore[arg-type]
        cli_prog_name="bntui",
        cli_kebab_case=True,
        cli_implicit_flags=True,
        cli_exit_on_error=True,
        cli_hide_none_type=True,
        cli_avoid_json=True,
        cli_enforce_required=False,
        add_argument_method=_add_argument,
    )
    try:
        app = CliApp.run(Bntui, cli_args=args, cli_settings_source=source, cli_cmd_method_name="noop")
        return int(app.cli_cmd() or 0)
    except ValidationError as exc:
        _error(format_validation_error(exc, skip_prefixes=_SUBCOMMANDS, as_flags=True))
    except (SettingsError, ConfigFileError) as exc:
        _error(str(exc).splitlines()[0])
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except Exception as exc:  # a bug: say what broke in one line; BNTUI_DEBUG=1 shows the traceback
        if os.environ.get("BNTUI_DEBUG"):
            raise
        _error(f"unexpected {type(exc).__name__}: {exc} (set BNTUI_DEBUG=1 for details)")
        return 1
    return 2


_SUBCOMMANDS = (
    "run",
    "runs",
    "queue",
    "cancel",
    "show",
    "compare",
    "export",
    "import",
    "rm",
    "schema",
    "themes",
    "tag",
    "untag",
    "note",
)
