"""A sweep group: the final metric against the swept value, one curve per arm with its 95% CI
band over seeds, and the table `bntui compare --group G` prints (per value: each arm, the paired
BN - no-BN difference with its CI and verdict, diverged runs). Two swept settings: the table of
differences only. The numbers come from bntui.sweep_stats; the rows from bntui.present.sweep_table."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.box import SIMPLE_HEAD
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Static

from bntui.store.schema import RunRecord
from bntui.sweep_stats import METRICS, SweepSummary, summarize_sweep
from bntui.present.sweep_table import band_edge, scaled, sweep_table, value_text
from bntui.present.tables import PlainTable
from bntui.tui.screens.live import LiveRecordsScreen
from bntui.tui.widgets.band_plot import BandPlot, BandSeries
from bntui.tui.widgets.overlay_plot import painter_for


def rich_table(table: PlainTable) -> Table:
    shown = Table(box=SIMPLE_HEAD, show_edge=False, expand=False, pad_edge=False)
    for index, header in enumerate(table.headers):
        shown.add_column(header, justify="right" if index in table.numeric else "left")
    for row in table.rows:
        shown.add_row(*(Text(cell) for cell in row))  # text, not markup: cells hold brackets
    return shown


def x_positions(summary: SweepSummary) -> tuple[list[float], str]:
    """Where each value sits on the x axis, and the axis label: log10 of a learning rate,
    the value of another number, the value's place for names (norm, optimizer...)."""
    values = [point.values[0] for point in summary.points]
    name = summary.settings[0]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if numeric and summary.log_x and all(v > 0 for v in values):
        return [math.log10(v) for v in values], f"log10 {name}"
    if numeric:
        return [float(v) for v in values], name
    return [float(i) for i in range(1, len(values) + 1)], f"{name}: " + ", ".join(
        f"{i}={value_text(v)}" for i, v in enumerate(values, start=1)
    )


class SweepScreen(LiveRecordsScreen):
    """`records`: the runs of one group that sweeps one or two settings besides seed and BN."""

    DEFAULT_CSS = """
    SweepScreen #sweep-status { height: auto; padding: 0 1; background: $panel; }
    SweepScreen #sweep-plot { height: 1fr; min-height: 8; }
    SweepScreen #sweep-table-pane { height: auto; max-height: 50%; }
    SweepScreen.-two-way #sweep-plot { display: none; }
    SweepScreen.-two-way #sweep-table-pane { height: 1fr; max-height: 100%; }
    """

    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding(
            "m", "cycle_metric", "Metric", tooltip="Test accuracy, best validation loss or best validation accuracy"
        ),
    ]

    def __init__(self, records: Sequence[RunRecord], metric: str = "test_accuracy") -> None:
        super().__init__()
        self.records: list[RunRecord] = list(records)
        self.metric = metric
        self.summary: SweepSummary | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="sweep-status")
        yield BandPlot(id="sweep-plot")
        with VerticalScroll(id="sweep-table-pane"):
            yield Static(id="sweep-table")
        yield Footer()

    def update_records(self, records: Sequence[RunRecord]) -> None:
        self.records = list(records)
        self.throttle.request()

    def draw(self) -> None:
        self.summary = summarize_sweep(self.records, self.metric) if self.records else None
        status = self.query_one("#sweep-status", Static)
        table = self.query_one("#sweep-table", Static)
        plot = self.query_one("#sweep-plot", BandPlot)
        summary = self.summary
        if summary is None:
            message = "this group sweeps no setting besides seed and BN: g shows its result card"
            status.update(Text(message))
            table.update("")
            plot.show_bands([], message=message)
            return
        self.set_class(len(summary.settings) == 2, "-two-way")
        group = summary.group or "(none)"
        diverged = sum(p.bn.diverged + p.no_bn.diverged for p in summary.points)
        status.update(
            Text(
                f"Sweep {group} · {' x '.join(summary.settings)} · {summary.metric_label} (m: metric) · "
                f"band: 95% CI of the mean over seeds · diverged runs: {diverged}"
            )
        )
        shown = sweep_table(summary)
        table.update(rich_table(PlainTable(shown.headers, shown.rows, numeric=shown.numeric)))
        if len(summary.settings) == 1:
            self._plot(plot, summary)

    def _plot(self, plot: BandPlot, summary: SweepSummary) -> None:
        painter = painter_for(self.app)
        xs, xlabel = x_positions(summary)
        bands = []
        for index, (label, pick) in enumerate((("BN", lambda p: p.bn), ("no BN", lambda p: p.no_bn))):
            points = [(x, pick(p)) for x, p in zip(xs, summary.points) if pick(p).mean is not None]
            if not points:
                continue
            mid_marker, edge_marker = painter.band_markers(index)
            mids = [scaled(summary, arm.mean) for _, arm in points]
            bands.append(
                BandSeries(
                    xs=[x for x, _ in points],
                    mid=mids,
                    low=[
                        band_edge(summary, arm.low) if arm.low is not None else mid
                        for (_, arm), mid in zip(points, mids)
                    ],
                    high=[
                        band_edge(summary, arm.high) if arm.high is not None else mid
                        for (_, arm), mid in zip(points, mids)
                    ],
                    color=painter.color(index),
                    label=f"{label} mean",
                    edge_label=f"{label} 95% CI",
                    mid_marker=mid_marker,
                    edge_marker=edge_marker,
                )
            )
        unit = " (%)" if "accuracy" in summary.metric else ""
        plot.show_bands(
            bands,
            title=f"{summary.metric_label}{unit} against {summary.settings[0]}",
            xlabel=xlabel,
            ylabel=summary.metric_label.split()[-1],
            message="no finished run yet",
        )

    def action_close(self) -> None:
        self.dismiss()

    def action_cycle_metric(self) -> None:
        names = list(METRICS)
        self.metric = names[(names.index(self.metric) + 1) % len(names)]
        self.redraw()
