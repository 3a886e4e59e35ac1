"""The run list: this session's runs and those in the run store, updated live.

Rows are keyed by RunView.key; `space` marks runs (the compare view will take the marked set);
`s` (or a click on a column's header) sorts them, `S` turns the order around."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist, RowKey

from bntui.config import norm_cell
from bntui.present.statuses import status_role
from bntui.present.text import printable
from bntui.tui.adapters import SelfSizedDataTable
from bntui.tui.keys import bindings
from bntui.tui.run_view import RunView

# The short, telling columns first: at 80 columns the list is 40 wide, and a quality column
# (test accuracy, else the last validation accuracy) must show before the long setup text.
COLUMNS = (
    ("mark", " "),
    ("status", "status"),
    ("bn", "norm"),
    ("seed", "seed"),
    ("test_acc", "test acc"),
    ("val_acc", "val acc"),
    ("setup", "setup"),
    ("epoch", "epoch"),
    ("val_loss", "val loss"),
    ("run", "run"),
)

# Below this many cells the run id is not cut further: the table scrolls sideways instead.
MIN_RUN_WIDTH = 10


@dataclass(frozen=True)
class SortOrder:
    """An order of the run list: by one column's value, the best first (highest accuracy,
    lowest loss), runs without a value last."""

    column: str
    label: str
    value: Callable[[RunView], Any]
    highest_first: bool = False

    def key(self, view: RunView) -> tuple:
        value = self.value(view)
        if value is None:
            return (1, 0)
        return (0, -value if self.highest_first else value)


# `s` goes through them in this order; the first is the store's, as runs came (oldest first):
# RunTable sorts by each row's place then.
SORT_ORDERS = (
    SortOrder("run", "started", lambda view: None),
    SortOrder("test_acc", "test acc", lambda view: view.test_accuracy, highest_first=True),
    SortOrder("val_acc", "val acc", lambda view: view.val_accuracy, highest_first=True),
    SortOrder("val_loss", "val loss", lambda view: view.val_loss),
    SortOrder("status", "status", lambda view: view.status),
    SortOrder("bn", "norm", lambda view: norm_cell(view.config) if view.config else None),
    SortOrder("seed", "seed", lambda view: view.config.seed if view.config else None),
    SortOrder("setup", "setup", lambda view: f"{view.config.dataset}/{view.config.arch}" if view.config else None),
    SortOrder("epoch", "epoch", lambda view: view.epochs_done),
)
SORTS_BY_COLUMN = {order.column: order for order in SORT_ORDERS}


def fit_cell(text: str, width: int | None) -> str:
    """`text` cut to `width` cells, ending in "…" when something was cut (None: as it is)."""
    if width is None or cell_len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + "…"


@dataclass(frozen=True)
class RunIdCell:
    """A run id drawn cut to `width` cells; the cell's value (str) stays the whole id. `row`:
    its row's key (what a sort looks the run up by)."""

    run_id: str
    width: int | None
    row: str = ""

    def __str__(self) -> str:
        return self.run_id

    def __rich__(self) -> Text:
        return Text(fit_cell(printable(self.run_id), self.width))  # a folder name: any bytes


def _number(value: float | None, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


class RunTable(SelfSizedDataTable):
    # Home/End and PageUp/PageDown move the cursor by rows (DataTable's own scroll sideways, or
    # leave the cursor where the page was).
    BINDINGS = [
        *bindings("runs"),
        Binding("home", "first_row", "First", show=False),
        Binding("end", "last_row", "Last", show=False),
        Binding("pageup", "page_rows(-1)", "Page up", show=False),
        Binding("pagedown", "page_rows(1)", "Page down", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.marked: set[str] = set()
        self._drawn: dict[str, tuple] = {}  # what each row holds, the run id uncut
        self._run_width: int | None = None  # cells the run id may take; None: not laid out yet
        # The widest cell of each column but the run id's, kept as rows come (not recounted
        # over every row at each: thousands of rows are added at once).
        self._widths: list[int] = [cell_len(label) for _, label in COLUMNS[:-1]]
        self._widths_stale = False
        self.row_filter: Callable[[RunView], bool] | None = None  # `/`: only the runs it keeps
        self.filter_query = ""  # the filter's words, for the title
        self.ordering = SORT_ORDERS[0]
        self.ordering_reversed = False
        self._views: dict[str, RunView] = {}  # each row's run, as last drawn: what a sort reads
        self._places: dict[str, int] = {}  # the order runs came in (the store's): the first sort
        self._next_place = 0
        self._sort_stale = False  # rows came or changed since the last sort
        self._sorted_once = False  # the rows were ever put out of the store's order

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def _cells(self, view: RunView) -> tuple:
        config = view.config
        status_style = self.app.theme_variables.get(status_role(view.status), "")
        return (
            "●" if view.key in self.marked else " ",
            Text.styled(view.status, status_style),  # a span: a theme change counts as a change
            norm_cell(config) if config else "",
            str(config.seed) if config else "",
            _number(view.test_accuracy, ".1%"),
            _number(view.val_accuracy, ".1%"),
            f"{config.dataset}/{config.arch}" if config else "?",
            f"{view.epochs_done}/{view.epochs_total}" if config else "",
            _number(view.val_loss, ".4f"),
            view.run_id or "(queued)",
        )

    def _shown(self, key: str, cells: tuple) -> list:
        """The cells as drawn: the run id (last) cut to the room left by the other columns."""
        return [*cells[:-1], RunIdCell(cells[-1], self._run_width, key)]

    def _fitted_run_width(self) -> int | None:
        """The run id's room: the table's width less the other columns (as wide as their
        widest cell), so that a cut id shows an ellipsis instead of vanishing off the edge."""
        room = self.scrollable_content_region.width
        if room <= 0:
            return None
        if self._widths_stale:
            self._widths_stale = False
            self._widths = [cell_len(label) for _, label in COLUMNS[:-1]]
            for cells in self._drawn.values():
                self._widen(cells)
        padding = 2 * self.cell_padding
        return max(room - sum(self._widths) - padding * len(COLUMNS), MIN_RUN_WIDTH)

    def _widen(self, cells: tuple) -> None:
        for index, cell in enumerate(cells[:-1]):
            self._widths[index] = max(self._widths[index], cell_len(cell.plain if isinstance(cell, Text) else cell))

    def _refit(self) -> bool:
        """Cut every run id again if the room for them changed; True if it did."""
        width = self._fitted_run_width()
        if width == self._run_width:
            return False
        self._run_width = width
        for key, cells in self._drawn.items():
            self.update_cell(key, "run", self._shown(key, cells)[-1], update_width=True)
        return True

    def on_resize(self) -> None:
        self._refit()

    def upsert(self, view: RunView) -> None:
        if self.row_filter is not None and not self.row_filter(view):
            self._drawn.pop(view.key, None)  # hidden, still marked if it was
            self._views.pop(view.key, None)
            try:
                self.remove_row(view.key)
            except RowDoesNotExist:
                pass
            return
        self._views[view.key] = view
        if view.key not in self._places:
            self._places[view.key] = self._next_place
            self._next_place += 1
        cells = self._cells(view)
        previous = self._drawn.get(view.key)
        if previous == cells:
            return
        self._drawn[view.key] = cells
        self._sort_stale = True
        self._widen(cells)
        if previous is None:
            self.add_row(*self._shown(view.key, cells), key=view.key)
            self._refit()
            return
        refitted = self._refit()
        for (column, _), old, new, shown in zip(COLUMNS, previous, cells, self._shown(view.key, cells)):
            if old != new and not (column == "run" and refitted):
                # A row is added while queued ("(queued)", "0/30"): its column widths must
                # follow what the cells hold later (a run id, "cancelled", "56/500").
                self.update_cell(view.key, column, shown, update_width=True)

    def column_widths(self, new_rows: Iterable[RowKey]) -> list[int]:
        """This table knows its cells' widths as it adds them (_widen): no cell is measured again."""
        run_ids = (self._drawn.get(row_key.value or "") for row_key in new_rows)
        run_width = max(
            (cell_len(fit_cell(printable(cells[-1]), self._run_width)) for cells in run_ids if cells), default=0
        )
        return [*self._widths, run_width]

    def reset_rows(self) -> None:
        """Empty the list; the next redraw adds every run the filter keeps, in store order."""
        self._drawn.clear()
        self._views.clear()
        self.clear()
        self._show_title()

    # -- sorting -------------------------------------------------------------------------
    def sort_by(self, column: str, *, reverse: bool = False) -> None:
        """Order the rows by `column` (a key of SORTS_BY_COLUMN), now and as runs change."""
        self.ordering, self.ordering_reversed = SORTS_BY_COLUMN[column], reverse
        self._sort_stale = True
        self.apply_sort()
        self._show_title()

    def next_sort(self) -> None:
        """The next order of SORT_ORDERS (`s`)."""
        at = SORT_ORDERS.index(self.ordering)
        self.sort_by(SORT_ORDERS[(at + 1) % len(SORT_ORDERS)].column)

    def reverse_sort(self) -> None:
        self.sort_by(self.ordering.column, reverse=not self.ordering_reversed)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        """A click on a column's header sorts by it; on the sorted one, turns the order around."""
        column = event.column_key.value or ""
        if column in SORTS_BY_COLUMN:
            event.stop()
            same = column == self.ordering.column
            self.sort_by(column, reverse=same and not self.ordering_reversed)

    def apply_sort(self) -> None:
        """Put the rows in the chosen order again if rows came or changed since the last time
        (the app calls it after each redraw); the cursor stays on its run."""
        if not self._sort_stale:
            return
        self._sort_stale = False
        if self.ordering is SORT_ORDERS[0] and not self.ordering_reversed and not self._sorted_once:
            return  # rows are added in the store's order: nothing to do
        self._sorted_once = True
        selected = self.selected_key
        order, views, places = self.ordering, self._views, self._places
        self.sort(
            "run",
            key=lambda cell: (order.key(views[cell.row]), places[cell.row]),
            reverse=self.ordering_reversed,
        )
        if selected is not None:
            self.select_key(selected)

    def remove_run(self, key: str) -> None:
        self._drawn.pop(key, None)
        self._views.pop(key, None)
        self._places.pop(key, None)
        self.marked.discard(key)
        self._widths_stale = True  # recounted at the next fit: rows are often removed by the hundred
        self._show_title()
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

    def action_first_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=0)

    def action_last_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1)

    def action_page_rows(self, direction: int) -> None:
        """A page of rows up (-1) or down (1): as many as the list shows at once."""
        if self.row_count:
            page = max(self.scrollable_content_region.height - 1 - int(self.show_header), 1)
            row = min(max(self.cursor_row + direction * page, 0), self.row_count - 1)
            self.move_cursor(row=row)

    def toggle_all_marks(self) -> None:
        """Mark every run; when every run is already marked, unmark them all."""
        keys = list(self._drawn)
        self.set_marks(keys, on=not all(key in self.marked for key in keys))

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
        self._show_title()

    def _show_title(self) -> None:
        """Marks change what c, e compare and export: the list's title says how many there are,
        and by what the rows are filtered and sorted."""
        parts = ["Runs"]
        if self.marked:
            parts.append(f"{len(self.marked)} marked")
        if self.filter_query:
            parts.append(f"filter: {self.filter_query}")
        if self.ordering is not SORT_ORDERS[0] or self.ordering_reversed:
            arrow = "↑" if self.ordering.highest_first == self.ordering_reversed else "↓"
            parts.append(f"by {self.ordering.label} {arrow}")
        self.border_title = " · ".join(parts)
