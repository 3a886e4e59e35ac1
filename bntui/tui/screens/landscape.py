"""Loss-landscape measurements (Santurkar et al. 2018, Fig. 4) for one run or the two arms of a
BN / no-BN pair side by side: over training steps, the band between the smallest and largest
value over the step sizes eta of (a) the loss L(w - eta g), (b) the gradient change
||grad L(w) - grad L(w - eta g)||, and (c) the effective beta-smoothness (a single line: the
paper plots its maximum).

The numbers are the engine's `Landscape` events (bntui.engine.landscape), stored in
RunRecord.landscape.points. The app calls `update_records` when the store has new data."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Select, Static

from bntui.config import norm_description
from bntui.store.schema import RunRecord
from bntui.tui.screens.diagnostics import (
    DiagnosticsPanel,
    arm_label,
    log_note,
    not_positive,
    ordered_records,
    shared_range,
)
from bntui.tui.screens.live import LiveRecordsScreen
from bntui.tui.widgets.key_footer import KeyFooter
from bntui.tui.widgets.parts_line import PartsLine
from bntui.tui.widgets.band_plot import BandSeries
from bntui.tui.widgets.overlay_plot import PlotSeries, painter_for
from bntui.present.words import counted

NO_LANDSCAPE = (
    "no landscape measurements: set 'landscape every' in the Normalization pane, "
    "or --landscape-every N on the command line"
)


@dataclass(frozen=True)
class Measure:
    key: str
    title: str
    low: str  # the point's key for the band's lower edge (or the only line)
    high: str | None  # the upper edge; None: one line


MEASURES: tuple[Measure, ...] = (
    Measure("loss", "loss landscape: L(w − ηg), min and max over η", "loss_min", "loss_max"),
    Measure("grad", "gradient predictiveness: ‖∇L(w) − ∇L(w − ηg)‖, min and max over η",
            "grad_change_min", "grad_change_max"),
    Measure("beta", "effective β-smoothness: max over η of ‖∇L(w) − ∇L(w − ηg)‖ / ‖ηg‖",
            "beta_smoothness", None),
)  # fmt: skip
MEASURE_BY_KEY = {measure.key: measure for measure in MEASURES}


def landscape_points(record: RunRecord) -> list[dict]:
    return list(record.landscape.points) if record.landscape else []


def _number(value: object) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return math.nan  # None: not finite when measured


def measure_series(record: RunRecord, measure: Measure) -> tuple[list[float], list[float], list[float]]:
    """(steps, low, high) of one measure over the run's points; high is low for a line."""
    steps, low, high = [], [], []
    for point in landscape_points(record):
        steps.append(_number(point.get("step")))
        low.append(_number(point.get(measure.low)))
        high.append(_number(point.get(measure.high or measure.low)))
    return steps, low, high


def measure_curves(record: RunRecord, measure: Measure, color, markers) -> list[PlotSeries]:
    """The curves for one run: the two edges of the band (min dotted, max solid), or a line."""
    steps, low, high = measure_series(record, measure)
    if not steps:
        return []
    mid_marker, edge_marker = markers
    if measure.high is None:
        return [PlotSeries(steps, low, color, mid_marker, "max over η")]
    band = BandSeries(steps, high, low, high, color, "max over η", "min over η", mid_marker, edge_marker)
    return [band.curves()[0], band.curves()[2]]  # the max is the band's top: drawn once


class LandscapeScreen(LiveRecordsScreen):
    """`records`: one run, or the two arms (BN and no BN) of a pair, shown side by side."""

    DEFAULT_CSS = """
    LandscapeScreen .pane-title { height: 1; padding: 0 1; color: $text-muted; text-style: bold; }
    LandscapeScreen #land-status {
        height: 1; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis;
        background: $panel; color: $text; margin-top: 1;
    }
    LandscapeScreen #land-controls { height: auto; }
    LandscapeScreen #land-controls Select { width: 1fr; }
    LandscapeScreen #land-panels { height: 1fr; min-height: 10; }
    LandscapeScreen .diag-panel { width: 1fr; }
    LandscapeScreen .diag-panel.-second { border-left: solid $panel; }
    LandscapeScreen .diag-panel BandPlot { height: 1fr; }
    LandscapeScreen .diag-message { height: auto; padding: 1 2; color: $warning; }
    """

    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("s", "next_measure", "Measure", tooltip="Next measurement"),
        Binding("g", "toggle_log", "Log y", tooltip="Logarithmic y axis (as in the paper)"),
    ]
    HELP_NAME = "loss landscape"
    MARKERS = (
        ("⠿ line", "the measurement (or its max over η)"),
        ("╌ dashes", "its min over η: the band between is the landscape's spread"),
        ("colour", "BN: the 1st plot colour, no BN: the 2nd"),
    )

    def __init__(self, records: Sequence[RunRecord]) -> None:
        super().__init__()
        self.records: list[RunRecord] = ordered_records(records)
        self.dropped = max(len(records) - len(self.records), 0)
        self.measure: Measure = MEASURES[0]
        self.log_y = True  # the paper's Fig. 4 is on log axes
        self.log_refused = ""

    def compose(self) -> ComposeResult:
        yield PartsLine(id="land-status")
        with Horizontal(id="land-controls"):
            yield Select(
                [(measure.title, measure.key) for measure in MEASURES],
                value=self.measure.key,
                allow_blank=False,
                id="land-measure",
            )
        with Horizontal(id="land-panels"):
            for index in range(2):  # a pair at most; the second hides for a single run
                yield DiagnosticsPanel(index, classes="-second" if index else "")
        yield KeyFooter()

    def update_records(self, records: Sequence[RunRecord]) -> None:
        self.records = ordered_records(records)
        self.dropped = max(len(records) - len(self.records), 0)
        self.throttle.request()

    def draw(self) -> None:
        painter = painter_for(self.app)
        paired = len(self.records) == 2
        panels = list(self.query(DiagnosticsPanel))
        contents: list[list[PlotSeries] | str] = []
        for index in range(len(panels)):
            record = self.records[index] if index < len(self.records) else None
            contents.append(self._panel_content(record, index, painter))
        curves = [curve for content in contents if not isinstance(content, str) for curve in content]
        refused = not_positive([(c.label or self.measure.key, c) for c in curves]) if self.log_y else []
        self.log_refused = log_note(refused) if refused else ""
        log_y = self.log_y and not refused
        y_range = shared_range(curves, log=log_y)  # side by side on one scale, as in Fig. 4
        for index, (panel, content) in enumerate(zip(panels, contents)):
            record = self.records[index] if index < len(self.records) else None
            panel.display = record is not None or index == 0
            title = Text(arm_label(record, paired), style=painter.swatch(index)) if record else Text("no run")
            panel.title.update(title)
            if isinstance(content, str):
                panel.message.update(Text(content))
                panel.message.display, panel.plot.display = True, False
                panel.plot.show_bands([], message=content)
                continue
            panel.message.display, panel.plot.display = False, True
            panel.plot.show_bands(
                [],
                extra=content,
                title=self.measure.title,
                xlabel="step",
                integer_x=True,
                log_y=log_y,
                y_range=y_range,
            )
        self._draw_status()

    def _panel_content(self, record: RunRecord | None, index: int, painter) -> list[PlotSeries] | str:
        if record is None:
            return "no run to show"
        if not landscape_points(record):
            every = record.config.landscape_every
            if record.status == "running" and every > 0:
                return f"waiting for the first measurement (every {counted(every, 'step')})"
            return NO_LANDSCAPE
        curves = measure_curves(record, self.measure, painter.color(index), painter.band_markers(index))
        if all(math.isnan(y) for curve in curves for y in curve.ys):
            return f"{self.measure.title}: not finite at any step (the loss overflowed)"
        return curves

    def _draw_status(self) -> None:
        normalized = next((r for r in self.records if r.config.bn), None)
        parts = [
            "Loss landscape (Santurkar et al. 2018, Fig. 4)",
            norm_description(normalized.config) if normalized else "no normalization",
            "y: log" if self.log_y and not self.log_refused else "y: linear",
            "η from 0.05 to 0.4 along the batch gradient g",
        ]
        if self.log_refused:
            parts[2] = f"y: linear ({self.log_refused})"
        if self.dropped:
            parts.append(f"{counted(self.dropped, 'more run')} of the group not shown (one pair at a time)")
        self.query_one("#land-status", Static).update(Text(" · ".join(parts)))

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.value is not Select.NULL and event.value != self.measure.key:
            self.measure = MEASURE_BY_KEY[str(event.value)]
            self.redraw()

    def action_next_measure(self) -> None:
        index = MEASURES.index(self.measure)
        self.query_one("#land-measure", Select).value = MEASURES[(index + 1) % len(MEASURES)].key

    def action_toggle_log(self) -> None:
        self.log_y = not self.log_y
        self.redraw()

    def action_close(self) -> None:
        self.dismiss()
