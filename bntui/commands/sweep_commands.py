"""`bntui run --dry-run`: the runs a launch would make, in launch order, and nothing launched."""

from __future__ import annotations

from rich.box import SIMPLE_HEAD
from rich.console import Console
from rich.table import Table

from bntui.config import norm_cell
from bntui.launch import LaunchPlan
from bntui.sweep import varied_settings
from bntui.present.text import escape
from bntui.present.words import counted


def print_dry_run(console: Console, plan: LaunchPlan) -> int:
    configs = plan.configs
    swept = varied_settings(configs)
    where = f" in group {plan.group}" if plan.group else ""
    console.print(
        f"{counted(len(configs), 'run')}{where} (dry run: nothing was launched)", highlight=False, soft_wrap=True
    )
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


def print_sweep(console: Console, summary, fmt: str = "text") -> int:
    """The sweep table; in the terminal also the plot (one swept setting, numeric values)."""
    from bntui.present.sweep_table import sweep_plot, sweep_table
    from bntui.present.tables import render

    table = sweep_table(summary)
    if fmt != "text":
        console.file.write(render(table, fmt))
        return 0
    print_plain_table(console, table)
    numeric = all(isinstance(p.values[0], (int, float)) for p in summary.points)
    if len(summary.settings) == 1 and numeric and len(summary.points) > 1:
        console.print(sweep_plot(summary, width=min(console.width, 100)))
    return 0


def print_plain_table(console: Console, table) -> None:
    rich_table = Table(title=table.title, title_justify="left", box=SIMPLE_HEAD, show_edge=False)
    for index, header in enumerate(table.headers):
        rich_table.add_column(escape(header), justify="right" if index in table.numeric else "left")
    for row in table.rows:
        rich_table.add_row(*(escape(cell) for cell in row))
    console.print(rich_table)


def print_group_table(console: Console, records, fmt: str) -> int:
    """The result card's numbers as a table (md, latex, csv)."""
    from bntui.present.cards import percent, points
    from bntui.stats import summarize_group
    from bntui.present.tables import PlainTable, render

    summary = summarize_group(records)
    rows = []
    for arm in (summary.bn, summary.no_bn):
        std = "n/a" if arm.test_accuracy_std is None else points(arm.test_accuracy_std, signed=False)
        rows.append([arm.label, str(arm.n), percent(arm.test_accuracy_mean), std, "", ""])
    paired = summary.paired
    ci = "n/a" if paired is None or paired.ci_low is None else f"[{points(paired.ci_low)}, {points(paired.ci_high)}]"
    rows.append(["BN - no BN", str(summary.k), points(paired.mean_diff if paired else None), "", ci, summary.verdict])
    table = PlainTable(
        ["arm", "n", "test accuracy", "sd (points)", "95% CI (points)", "verdict"],
        rows,
        f"{summary.title}: test accuracy, paired by seed",
        numeric={1, 2, 3},
    )
    console.file.write(render(table, fmt))
    return 0
