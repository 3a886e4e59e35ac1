"""The one place bntui uses a library's private API, because no public one does the job; each
use has a test in tests/tui/test_adapters.py that fails loudly when the library changes.

Textual, `DOMNode._pruning`: whether a node's widgets can still be queried. Textual removes a
screen's widgets (when the screen is popped, or all of them when the app shuts down) one await
at a time, and timers keep firing in between: a redraw tick that lands there finds some widgets
gone and raises NoMatches. Callbacks that query widgets ask `being_removed` first. The public
`display` says False then too, but also for a widget merely hidden by CSS.

Textual, `DataTable._update_dimensions(new_rows)`: where DataTable measures every cell of each
new row, once the app is idle: seconds for thousands of rows (a big runs dir, a filter cleared).
A table that knows its cells' widths as it adds them says so instead (SelfSizedDataTable)."""

from __future__ import annotations

from collections.abc import Iterable

from textual.dom import DOMNode
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey


def being_removed(node: DOMNode) -> bool:
    # `_pruning` is set on every node of a subtree the moment its removal starts; Textual's own
    # signal delivery checks it the same way (textual/signal.py), and Textual is pinned exactly.
    return not node.app.is_running or not node.is_attached or node._pruning


class SelfSizedDataTable(DataTable):
    """A DataTable whose columns take the widths `column_widths` gives (one per column, in
    order), never narrower than they are; DataTable measures no new row's cells."""

    def column_widths(self, new_rows: Iterable[RowKey]) -> list[int]:
        raise NotImplementedError

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        for column, width in zip(self.ordered_columns, self.column_widths(new_rows)):
            column.content_width = max(column.content_width, width)
        super()._update_dimensions(())  # the scrollable size, with no row left to measure
