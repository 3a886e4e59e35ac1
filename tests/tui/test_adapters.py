"""bntui.tui.adapters: the private library API bntui relies on. These fail loudly when a new
Textual changes it (Textual is pinned exactly in pyproject.toml: this is the check to rerun)."""

from __future__ import annotations

from textual.app import App
from textual.dom import DOMNode
from textual.widgets import Static

from bntui.tui.adapters import being_removed


def test_textual_nodes_still_carry_the_pruning_flag():
    node = DOMNode()
    assert node._pruning is False  # the attribute being_removed reads, False until a removal


async def test_a_widget_counts_as_removed_from_the_moment_its_removal_starts():
    seen_while_unmounting: list[bool] = []

    class Probe(Static):
        def on_unmount(self) -> None:
            seen_while_unmounting.append(being_removed(self))

    app = App()
    async with app.run_test() as pilot:
        probe = Probe("probe")
        assert being_removed(probe)  # not mounted yet
        await app.screen.mount(probe)
        assert not being_removed(probe) and probe.display  # mounted and shown
        removal = probe.remove()
        assert being_removed(probe)  # at once, before the removal has finished
        await removal
        await pilot.pause()
    assert seen_while_unmounting == [True]


def test_datatable_still_sizes_new_rows_in_update_dimensions():
    """SelfSizedDataTable replaces this hook: its name and its one argument must not change."""
    import inspect

    from textual.widgets import DataTable

    assert list(inspect.signature(DataTable._update_dimensions).parameters) == ["self", "new_rows"]


async def test_a_self_sized_table_takes_the_widths_it_gives_and_measures_no_cell():
    from textual.widgets.data_table import RowKey

    from bntui.tui.adapters import SelfSizedDataTable

    asked: list[list[str]] = []

    class Table(SelfSizedDataTable):
        def column_widths(self, new_rows):
            keys = [row.value for row in new_rows]
            asked.append(keys)
            return [7, 3]

    app = App()
    async with app.run_test() as pilot:
        table = Table()
        await app.screen.mount(table)
        table.add_columns("a", "b")
        table.add_row("x" * 30, "y", key="r1")  # wider than 7: DataTable alone would measure 30
        await pilot.pause()
        assert asked and asked[-1] == ["r1"]
        assert [column.content_width for column in table.ordered_columns][:1] == [7]
        assert isinstance(table.get_row_index(RowKey("r1")), int)
