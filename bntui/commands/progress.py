"""`bntui run`'s progress: a line per run that fits the terminal, 80 columns included."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich import get_console
from rich.measure import Measurement
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column, Table


def _fixed(text: str) -> Column:
    return Column(text, no_wrap=True)


class FittedProgress(Progress):
    """One line per run that fits the terminal: a column that does not fit is left out whole,
    the least telling first (as `bntui runs` does), never squeezed into "5…" or "0…"."""

    def __init__(self, **options: Any) -> None:
        self.all_columns = (
            TextColumn("{task.description}", table_column=_fixed("run")),
            BarColumn(bar_width=10, table_column=_fixed("bar")),
            MofNCompleteColumn(table_column=_fixed("steps")),
            TextColumn("epoch {task.fields[epoch]}", table_column=_fixed("epoch")),
            TextColumn("loss {task.fields[loss]}", table_column=_fixed("loss")),
            TextColumn("{task.fields[speed]} steps/s", table_column=_fixed("speed")),
            TimeElapsedColumn(table_column=_fixed("elapsed")),
            TimeRemainingColumn(table_column=_fixed("remaining")),
        )
        # Progress sets up its console while it first lays out the tasks: ours is kept here.
        self.out = options.get("console") or get_console()
        super().__init__(*self.all_columns, **options)

    # The columns left out on a narrow terminal, in this order (the run and its epoch stay).
    DROP_ORDER = ("steps", "elapsed", "speed", "bar", "remaining", "loss")

    def make_tasks_table(self, tasks: Iterable[Task]) -> Table:
        tasks = list(tasks)
        options = self.out.options.update(max_width=10_000)
        for dropped in range(len(self.DROP_ORDER) + 1):
            left_out = self.DROP_ORDER[:dropped]
            self.columns = tuple(
                column for column in self.all_columns if column.get_table_column().header not in left_out
            )
            table = super().make_tasks_table(tasks)
            if Measurement.get(self.out, options, table).maximum <= self.out.width:
                break
        return table
