"""Ask where to export runs, and write them there (the `bntui export` format).

Enter writes through the store (export_document + write_export, atomically), in a worker
thread, and dismisses with the path written; Escape dismisses with None. A problem (a folder that does not exist,
no permission, a run that cannot be read) is shown in the dialog, which stays open so the
path can be corrected. The caller shows the notification with the path."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from bntui.present.run_rows import runs_table
from bntui.present.words import counted
from bntui.store import StoreError, export_document, load_run, write_export
from bntui.store.layout import atomic_write_bytes
from bntui.store.output_file import output_file_problem
from bntui.present.tables import render

# The file's extension picks the format; anything else is the JSON export.
TABLE_SUFFIXES = {".csv": "csv", ".md": "md", ".tex": "latex"}


def default_export_path(folder: Path | None = None, now: datetime | None = None) -> Path:
    """<folder or cwd>/bntui-export-YYYYmmdd-HHMMSS.json"""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    return (folder or Path.cwd()) / f"bntui-export-{stamp}.json"


class ExportDialog(ModalScreen[Path | None]):
    """Export `run_ids` (from `runs_dir`) to a JSON file; dismisses with the Path written."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        run_ids: Sequence[str],
        default_path: Path | None = None,
        *,
        runs_dir: Path,
    ) -> None:
        super().__init__()
        self.run_ids = list(run_ids)
        self.default_path = default_path or default_export_path()
        self.runs_dir = Path(runs_dir)
        self.error: str | None = None
        self.left_out: list[str] = []  # ids whose record could not be read (not exported)
        self._confirm_replace: Path | None = None

    def compose(self) -> ComposeResult:
        count = len(self.run_ids)
        with Vertical(id="export-box"):
            yield Static(
                Text(f"Export {counted(count, 'run')} to a file (JSON, or a table: .csv .md .tex)"),
                id="export-title",
            )
            yield Input(str(self.default_path), id="export-path", select_on_focus=False)
            yield Static(id="export-error")
            yield Static(
                "Enter: write · Escape: cancel · .json is read back by `bntui import`; "
                ".csv, .md and .tex write a table, one row per run",
                id="export-hint",
            )

    def on_mount(self) -> None:
        path_input = self.query_one("#export-path", Input)
        path_input.focus()
        path_input.cursor_position = len(path_input.value)

    def on_input_changed(self, event: Input.Changed) -> None:
        self._confirm_replace = None  # a new path needs its own confirmation

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._export(event.value)

    @work(thread=True, exclusive=True, group="export")
    def _export(self, text: str) -> None:
        """Off the event loop: reading many runs and writing the file can take seconds."""
        outcome = self.write(text)
        if isinstance(outcome, Path):
            self.app.call_from_thread(self.dismiss, outcome)
        else:
            message, warning = outcome
            self.app.call_from_thread(self._show, message, warning=warning)

    def write(self, text: str) -> Path | tuple[str, bool]:
        """Write the runs to `text` (a path): the path written, or why not (a line, and whether
        it is only a warning). Blocking: the dialog calls it in a worker thread."""
        text = text.strip()
        if not text:
            return "give a file path to write to", False
        path = Path(text).expanduser()
        if not path.is_absolute():
            path = Path.cwd() / path
        problem = output_file_problem(path)
        if problem:
            return problem, False
        if path.exists() and self._confirm_replace != path:
            self._confirm_replace = path
            return f"{path} exists: press Enter again to replace it", True
        try:
            runs = [load_run(self.runs_dir, run_id) for run_id in self.run_ids]
            document = export_document(runs)
            self.left_out = [run.id for run in runs if run.record is None]
            if not document.runs:
                return "none of these runs can be read: nothing to export", False
            table_format = TABLE_SUFFIXES.get(path.suffix.lower())
            if table_format is None:
                write_export(document, path)
            else:  # a table for a paper or a spreadsheet, one row per run
                atomic_write_bytes(path, render(runs_table(runs), table_format).encode("utf-8"))
        except StoreError as exc:  # write errors name the file; unreadable runs name the run
            return str(exc), False
        except OSError as exc:  # anything the store did not translate
            return f"cannot write {path}: {exc.strerror or exc}", False
        return path

    def _show(self, message: str, *, warning: bool = False) -> None:
        self.error = message
        box = self.query_one("#export-error", Static)
        box.set_class(warning, "-warning")
        box.update(Text(message))

    def action_cancel(self) -> None:
        self.dismiss(None)
