"""`bntui run --dry-run`: the runs a launch would make, in launch order, and nothing launched."""

from __future__ import annotations

from rich.box import SIMPLE_HEAD
from rich.console import Console
from rich.table import Table

from bntui.config import norm_cell
from bntui.launch import LaunchPlan
from bntui.sweep import varied_settings
from bntui.words import counted


def print_dry_run(console: Console, plan: LaunchPlan) -> int:
    configs = plan.configs
    swept = varied_settings(configs)
    where = f" in group {plan.group}" if plan.group else ""
    console.print(f"{counted(len(configs), 'run')}{where} (dry run: nothing was launched)",
                  highlight=False, soft_wrap=True)
    table = Table(box=SIMPLE_HEAD, show_edge=False, title=None)
    for column in ("#", "run", *swept, "bn", "seed"):
        table.add_column(column, justify="right" if column in ("#", "seed") else "left", no_wrap=True)
    for index, config in enumerate(configs, start=1):
        cells = [_cell(getattr(config, name)) for name in swept]
        table.add_row(str(index), config.label, *cells, norm_cell(config), str(config.seed))
    console.print(table)
    return 0


def _cell(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
