"""The run list: this session's runs and those in the run store, updated live.

Rows are keyed by RunView.key; `space` marks runs (the compare view will take the marked set)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

from bntui.tui.keys import bindings
from bntui.tui.run_view import RunView

COLUMNS = (
    ("mark", " "),
    ("status", "status"),
    ("setup", "setup"),
    ("bn", "BN"),
    ("seed", "seed"),
    ("epoch", "epoch"),
    ("val_loss", "val loss"),
    ("val_acc", "val acc"),
    ("test_acc", "test acc"),
    ("run", "run"),
)

STATUS_STYLE = {
    "running": "accent",
    "starting": "accent",
    "stopping": "warning",
    "queued": "foreground-muted",
    "finished": "success",
    "cancelled": "warning",
    "failed": "error",
    "crashed": "error",
    "diverged": "error",
}


def _number(value: float | None, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


class RunTable(DataTable):
    BINDINGS = bindings("runs")

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.marked: set[str] = set()
        self._drawn: dict[str, tuple] = {}

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def _cells(self, view: RunView) -> tuple:
        config = view.config
        curves = view.curves
        status_style = self.app.theme_variables.get(STATUS_STYLE.get(view.status, "foreground"), "")
        return (
            "●" if view.key in self.marked else " ",
            Text.styled(view.status, status_style),  # a span: a theme change counts as a change
            f"{config.dataset}/{config.arch}" if config else "?",
            ("on" if config.bn else "off") if config else "",
            str(config.seed) if config else "",
            f"{view.epochs_done}/{view.epochs_total}" if config else "",
            _number(curves.val_loss[-1] if curves.val_loss else None, ".4f"),
            _number(curves.val_accuracy[-1] if curves.val_accuracy else None, ".1%"),
            _number(view.test_accuracy, ".1%"),
            view.run_id or "(queued)",
        )

    def upsert(self, view: RunView) -> None:
        cells = self._cells(view)
        previous = self._drawn.get(view.key)
        if previous == cells:
            return
        self._drawn[view.key] = cells
        if previous is None:
            self.add_row(*cells, key=view.key)
            return
        for (column, _), old, new in zip(COLUMNS, previous, cells):
            if old != new:
                # A row is added while queued ("(queued)", "0/30"): its column widths must
                # follow what the cells hold later (a run id, "cancelled", "56/500").
                self.update_cell(view.key, column, new, update_width=True)

    def remove(self, key: str) -> None:
        self._drawn.pop(key, None)
        self.marked.discard(key)
        try:
            self.remove_row(key)
        except RowDoesNotExist:
            pass

    @property
    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:
            return None

    def select_key(self, key: str) -> None:
        try:
            self.move_cursor(row=self.get_row_index(key))
        except RowDoesNotExist:
            pass

    def toggle_mark(self) -> None:
        key = self.selected_key
        if key is not None:
            self.set_marks([key], on=key not in self.marked)

    def set_marks(self, keys: list[str], *, on: bool) -> None:
        for key in keys:
            if key not in self._drawn:
                continue
            if on:
                self.marked.add(key)
            else:
                self.marked.discard(key)
            self.update_cell(key, "mark", "●" if on else " ")
            cells = list(self._drawn[key])
            cells[0] = "●" if on else " "
            self._drawn[key] = tuple(cells)
