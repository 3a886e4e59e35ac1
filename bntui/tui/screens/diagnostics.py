"""BatchNorm diagnostics (issue 7): how one hidden layer's inputs to the non-linearity evolve
during training, for one run or for the two arms of a BN / no-BN pair side by side — the
terminal counterpart of the BatchNorm paper's Figure 1: (a) accuracy over training, (b, c) the
15th, 50th and 85th percentiles of one unit's pre-activation over training steps.

The numbers are the engine's `Diagnostics` events (bntui.engine.diagnostics lists the keys),
stored in RunRecord.diagnostics.points. The app calls `update_records` when the store has
new data; the screen redraws at most 4 times a second."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Select, Static

from bntui.config import arm_name
from bntui.store.schema import RunRecord
from bntui.present.text import printable
from bntui.tui.widgets.key_footer import KeyFooter
from bntui.tui.widgets.parts_line import PartsLine
from bntui.tui.widgets.band_plot import BandPlot, BandSeries
from bntui.tui.screens.live import LiveRecordsScreen
from bntui.present.words import counted
from bntui.tui.widgets.overlay_plot import CurvePainter, OverlayPlot, PlotSeries, painter_for

# Runs come from the app and from `bntui run`: name the setting in both.
NO_DIAGNOSTICS = (
    "no diagnostics recorded: set 'diag every' in the Normalization pane, or --diagnostics-every N on the command line"
)


@dataclass(frozen=True)
class Statistic:
    key: str
    title: str  # the plot title and the status line
    fields: tuple[str, ...]  # per-layer keys of a Diagnostics event
    band: bool  # fields are (low, mid, high) of a band; otherwise separate lines
    needs_bn: bool = False  # only BatchNorm layers have it
    short: str = ""  # the Select's label: a wrapped label doubles the picker's height

    @property
    def label(self) -> str:
        return self.short or self.title


STATISTICS: tuple[Statistic, ...] = (
    Statistic("unit", "one unit's pre-activation: 15/50/85th percentiles",
              ("unit_p15", "unit_p50", "unit_p85"), band=True, short="one unit: p15 / p50 / p85"),
    Statistic("all", "all units' pre-activations: 15/50/85th percentiles",
              ("preact_p15", "preact_p50", "preact_p85"), band=True, short="all units: p15 / p50 / p85"),
    Statistic("meanstd", "pre-activation mean ± std (all units)",
              ("preact_mean", "preact_std"), band=True, short="mean ± std (all units)"),
    Statistic("grad", "gradient norm of the layer's weights", ("grad_norm",), band=False, short="gradient norm ‖∇W‖"),
    Statistic("update", "update ratio ‖ΔW‖ / ‖W‖ of the last step", ("update_ratio",), band=False, short="update ratio ‖ΔW‖/‖W‖"),
    Statistic("affine", "BatchNorm γ and β (means over units)",
              ("gamma_mean", "beta_mean"), band=False, needs_bn=True, short="BatchNorm γ and β"),
    Statistic("gap", "batch vs running statistics: mean |Δmean| and |Δvar|",
              ("running_mean_gap", "running_var_gap"), band=False, needs_bn=True,
              short="batch vs running stats"),
)  # fmt: skip
STATISTIC_BY_KEY = {statistic.key: statistic for statistic in STATISTICS}
_LINE_LABELS = {
    "grad_norm": "‖∇W‖",
    "update_ratio": "‖ΔW‖/‖W‖",
    "gamma_mean": "γ",
    "beta_mean": "β",
    "running_mean_gap": "|Δmean|",
    "running_var_gap": "|Δvar|",
}


# -- data -------------------------------------------------------------------------------------


def diagnostics_points(record: RunRecord) -> list[dict]:
    return list(record.diagnostics.points) if record.diagnostics else []


def _layer_name(row: object) -> str | None:
    if not isinstance(row, dict):
        return None
    name = row.get("layer", row.get("name"))
    return printable(str(name)) if name is not None else None  # from a file: shown as text


def layer_names(records: Sequence[RunRecord]) -> list[tuple[str, str]]:
    """(layer, kind) of every layer the records measured, in network order. A run measures
    the same layers every time, so its first and last points say which (cheap at 4 Hz)."""
    seen: dict[str, str] = {}
    for record in records:
        points = diagnostics_points(record)
        for point in points[:1] + points[-1:]:
            for row in point.get("layers", []) or []:
                if isinstance(row, dict) and (name := _layer_name(row)) and name not in seen:
                    seen[name] = printable(str(row.get("kind", "")))
    return list(seen.items())


def _number(value: object) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # an integer too large for a float: not drawable
            return math.nan
    return math.nan  # None (not measured, or not finite) and anything unexpected


def layer_series(record: RunRecord, layer: str, fields: Sequence[str]) -> tuple[list[float], dict[str, list[float]]]:
    """(steps, {field: values}) of one layer over the run's diagnostics points. Points where
    the layer has none of `fields` are left out; a missing single value is NaN (not drawn)."""
    steps: list[float] = []
    values: dict[str, list[float]] = {name: [] for name in fields}
    position = None  # the layer's index in the previous point: usually the same in the next
    for point in diagnostics_points(record):
        rows = point.get("layers") or []
        if position is None or position >= len(rows) or _layer_name(rows[position]) != layer:
            position = next(
                (i for i, r in enumerate(rows) if isinstance(r, dict) and _layer_name(r) == layer),
                None,
            )
            if position is None:
                continue
        row = rows[position]
        numbers = [_number(row.get(name)) for name in fields]
        if all(math.isnan(n) for n in numbers):
            continue
        steps.append(_number(point.get("step")))
        for name, number in zip(fields, numbers):
            values[name].append(number)
    return steps, values


def statistic_curves(
    record: RunRecord, layer: str, statistic: Statistic, color, markers: tuple[str, str]
) -> tuple[list[BandSeries], list[PlotSeries]]:
    """What to draw for one run: (bands, plain lines). Empty when nothing was recorded."""
    steps, values = layer_series(record, layer, statistic.fields)
    if not steps:
        return [], []
    mid_marker, edge_marker = markers
    if statistic.key == "meanstd":
        mean, std = values["preact_mean"], values["preact_std"]
        return [
            BandSeries(steps, mean, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                       color, "mean", "mean ± std", mid_marker, edge_marker)
        ], []  # fmt: skip
    if statistic.band:
        low, mid, high = (values[name] for name in statistic.fields)
        return [BandSeries(steps, mid, low, high, color, "p50", "p15 / p85", mid_marker, edge_marker)], []
    lines = [
        PlotSeries(
            steps,
            values[name],
            color,
            mid_marker if index == 0 else edge_marker,  # a second line is dotted
            _LINE_LABELS.get(name, name),
        )
        for index, name in enumerate(statistic.fields)
    ]
    return [], lines


# What each curve of a band is called, in BandSeries.curves() order: (low, high, mid).
_BAND_CURVE_NAMES = {"meanstd": ("mean − std", "mean + std", "mean")}
_PERCENTILE_NAMES = ("p15", "p85", "p50")


def named_curves(
    bands: Sequence[BandSeries], lines: Sequence[PlotSeries], statistic: Statistic
) -> list[tuple[str, PlotSeries]]:
    """Every curve drawn for one run, with the name a note about it should use."""
    names = _BAND_CURVE_NAMES.get(statistic.key, _PERCENTILE_NAMES)
    named = [(name, curve) for band in bands for name, curve in zip(names, band.curves())]
    return named + [(curve.label or "", curve) for curve in lines]


def not_positive(named: Sequence[tuple[str, PlotSeries]]) -> list[str]:
    """Names of the curves with a value ≤ 0 (which a log axis cannot show), each once."""
    found = [name for name, curve in named if any(y <= 0 for y in curve.ys if not math.isnan(y))]
    return list(dict.fromkeys(found))


def log_note(names: Sequence[str]) -> str:
    return f"log y needs positive values: {' and '.join(names)} {'has' if len(names) == 1 else 'have'} values ≤ 0"


def shared_range(curves: Sequence[PlotSeries], *, log: bool = False) -> tuple[float, float] | None:
    """The y limits that fit every finite value of `curves`, with a little headroom (on a log
    axis: the positive values, with headroom by ratio)."""
    values = [y for curve in curves for y in curve.ys if math.isfinite(y) and (y > 0 or not log)]
    if not values:
        return None
    low, high = min(values), max(values)
    if log:
        pad = (high / low) ** 0.05 if high > low else 2.0
        limits = (low / pad, high * pad)
    else:
        pad = 0.05 * (high - low) or 0.5 * abs(high) or 1.0
        limits = (low - pad, high + pad)
    # Values near the float limits (1e308) overflow the headroom: let the plot pick its own.
    return limits if all(math.isfinite(limit) for limit in limits) else None


def ordered_records(records: Sequence[RunRecord]) -> list[RunRecord]:
    """At most two runs to show. A BN / no-BN pair is shown BN first (left). Given a whole
    group, its lowest seed with both arms; otherwise the first two runs as given."""
    records = list(records)
    if len(records) > 2:
        by_arm = {(r.config.bn, r.config.seed): r for r in reversed(records)}  # first one wins
        seeds = sorted({seed for bn, seed in by_arm if (not bn, seed) in by_arm})
        records = [by_arm[(True, seeds[0])], by_arm[(False, seeds[0])]] if seeds else records[:2]
    if len(records) == 2 and not records[0].config.bn and records[1].config.bn:
        return [records[1], records[0]]
    return records


def arm_label(record: RunRecord, paired: bool) -> str:
    prefix = arm_name(record.config) + " · " if paired else ""
    return f"{prefix}{record.config.label} ({record.id})"


def missing_message(record: RunRecord) -> str:
    every = record.config.diagnostics_every
    if record.status == "running" and every > 0:
        return f"waiting for the first diagnostics (measured every {counted(every, 'step')})"
    return NO_DIAGNOSTICS


# -- screen -----------------------------------------------------------------------------------


class DiagnosticsPanel(Vertical):
    """One run's plot with its title and, when there is nothing to plot, the reason."""

    def __init__(self, index: int, *, classes: str = "") -> None:
        super().__init__(id=f"diag-panel-{index}", classes=f"diag-panel {classes}".strip())
        self.index = index

    def compose(self) -> ComposeResult:
        yield Static(classes="pane-title diag-title")
        yield Static(classes="diag-message")
        yield BandPlot(classes="diag-plot")

    @property
    def plot(self) -> BandPlot:
        return self.query_one(BandPlot)

    @property
    def message(self) -> Static:
        return self.query_one(".diag-message", Static)

    @property
    def title(self) -> Static:
        return self.query_one(".diag-title", Static)


class DiagnosticsScreen(LiveRecordsScreen):
    """`records`: one run, or the two arms (BN and no BN) of a pair, shown side by side."""

    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("left_square_bracket", "previous_layer", "Prev layer", tooltip="Previous layer"),
        Binding("right_square_bracket", "next_layer", "Next layer", tooltip="Next layer"),
        Binding("s", "next_statistic", "Statistic", tooltip="Next statistic"),
        Binding("g", "toggle_log", "Log y", tooltip="Logarithmic y axis (gradient norm, update ratio)"),
    ]
    HELP_NAME = "BatchNorm diagnostics"
    MARKERS = (
        ("⠿ line", "p50 (median), or the mean, or the statistic itself"),
        ("× crosses", "p15 and p85: the percentile band around the median"),
        ("╌ dashes", "mean ± 1 std, or a second statistic"),
        ("• dots", "validation accuracy (the plot at the bottom)"),
        ("colour", "BN: the 1st plot colour, no BN: the 2nd"),
    )

    def __init__(self, records: Sequence[RunRecord]) -> None:
        super().__init__()
        self.records: list[RunRecord] = ordered_records(records)
        self.dropped = max(len(records) - len(self.records), 0)
        self.layer_choices: list[tuple[str, str]] = layer_names(self.records)
        # The last hidden layer first: the paper's Figure 1 follows a unit of that layer.
        self.layer_name: str | None = self.layer_choices[-1][0] if self.layer_choices else None
        self.statistic: Statistic = STATISTICS[0]
        self.log_y = False  # asked for; not drawn while the view has values ≤ 0
        self.log_refused = ""  # why log y is not drawn although asked for
        self._panel_count = max(len(self.records), 1)  # what compose mounts
        self._rebuilding = False

    def compose(self) -> ComposeResult:
        yield PartsLine(id="diag-status")
        with Horizontal(id="diag-controls"):
            yield Select(
                self._layer_options(),
                value=self.layer_name if self.layer_name is not None else Select.NULL,
                allow_blank=self.layer_name is None,
                prompt="no layers measured",
                id="diag-layer",
            )
            yield Select(
                [(statistic.label, statistic.key) for statistic in STATISTICS],
                value=self.statistic.key,
                allow_blank=False,
                id="diag-statistic",
            )
        with Horizontal(id="diag-panels"):
            for index in range(max(len(self.records), 1)):
                yield DiagnosticsPanel(index, classes="-second" if index else "")
        yield OverlayPlot(id="diag-accuracy")
        yield KeyFooter()

    def update_records(self, records: Sequence[RunRecord]) -> None:
        """The same runs with newer data (the app polls the store). Redraws at most 4 Hz."""
        self.records = ordered_records(records)
        self.dropped = max(len(records) - len(self.records), 0)
        self.throttle.request()

    # -- drawing ------------------------------------------------------------------------------

    def _layer_options(self) -> list[tuple[str, str]]:
        return [(f"{name} ({kind})" if kind else name, name) for name, kind in self.layer_choices]

    def _sync_layers(self) -> None:
        layers = layer_names(self.records)
        if layers == self.layer_choices:
            return
        self.layer_choices = layers
        names = [name for name, _ in layers]
        if self.layer_name not in names:
            self.layer_name = names[-1] if names else None
        select = self.query_one("#diag-layer", Select)
        with select.prevent(Select.Changed):
            select.set_options(self._layer_options())
            if self.layer_name is not None:
                select.value = self.layer_name

    async def _rebuild_panels(self) -> None:
        """One panel per run again: a twin that started after the screen opened gets its own,
        a run removed from the store takes its panel with it."""
        container = self.query_one("#diag-panels", Horizontal)
        count = max(len(self.records), 1)
        await container.remove_children()
        await container.mount_all(DiagnosticsPanel(i, classes="-second" if i else "") for i in range(count))
        self._panel_count = count
        self._rebuilding = False
        self.redraw()

    def draw(self) -> None:
        if self._panel_count != max(len(self.records), 1):
            if not self._rebuilding:  # mounting takes a moment: draw once the panels are there
                self._rebuilding = True
                self.call_later(self._rebuild_panels)
            return
        self._sync_layers()
        painter = painter_for(self.app)
        paired = len(self.records) == 2
        panels = list(self.query(DiagnosticsPanel))
        contents = [
            self._panel_content(self.records[index] if index < len(self.records) else None, index, painter)
            for index in range(len(panels))
        ]
        named = [
            pair for content in contents if not isinstance(content, str)
            for pair in named_curves(*content, self.statistic)
        ]  # fmt: skip
        # A log axis would silently drop values ≤ 0 (and with them a band's edge): stay linear
        # and say why, until the user turns log off or picks a view that can have it.
        refused = not_positive(named) if self.log_y else []
        self.log_refused = log_note(refused) if refused else ""
        log_y = self.log_y and not refused
        # Side by side, the arms share the y axis so their spreads can be compared by eye.
        y_range = shared_range([curve for _, curve in named], log=log_y)
        for index, (panel, content) in enumerate(zip(panels, contents)):
            record = self.records[index] if index < len(self.records) else None
            title = Text(arm_label(record, paired), style=painter.swatch(index)) if record else Text("no run")
            panel.title.update(title)
            if isinstance(content, str):
                self._show_message(panel, content)
                continue
            panel.message.display = False
            panel.plot.display = True
            bands, lines = content
            panel.plot.show_bands(
                bands,
                extra=lines,
                title=f"{self.layer_name}: {self.statistic.title}",
                xlabel="step",
                integer_x=True,
                log_y=log_y,
                y_range=y_range,
            )
        self._draw_accuracy(painter)
        self._draw_status()

    def _panel_content(
        self, record: RunRecord | None, index: int, painter: CurvePainter
    ) -> tuple[list[BandSeries], list[PlotSeries]] | str:
        """(bands, lines) to draw for one run, or the reason there are none."""
        if record is None:
            return "no run to show"
        if not diagnostics_points(record):
            return missing_message(record)
        if self.layer_name is None:
            return "no layer measured"
        bands, lines = statistic_curves(
            record,
            self.layer_name,
            self.statistic,
            painter.color(index),
            painter.band_markers(index, "percentiles" if self.statistic.band else "band"),
        )
        if not bands and not lines:
            if self.statistic.needs_bn and not record.config.bn:
                return "not measured: this run has no BatchNorm"
            return f"{self.statistic.title}: not recorded for layer {self.layer_name}"
        return bands, lines

    def _draw_status(self) -> None:
        parts = [
            f"BatchNorm diagnostics · layer {self.layer_name or '—'}",
            self.statistic.title,
            "y: log" if self.log_y else "y: linear",
            "measured on a fixed validation probe batch",
        ]
        if self.log_refused:  # first: the rest of the line may not fit
            parts = [f"y: linear ({self.log_refused})", *parts[:2], *parts[3:]]
        if self.dropped:
            parts.append(f"{counted(self.dropped, 'more run')} of the group not shown (one pair at a time)")
        self.query_one("#diag-status", Static).update(Text(" · ".join(parts)))

    @staticmethod
    def _show_message(panel: DiagnosticsPanel, message: str) -> None:
        panel.message.update(Text(message))
        panel.message.display = True
        panel.plot.display = False
        panel.plot.show_bands([], message=message)

    def _draw_accuracy(self, painter: CurvePainter) -> None:
        """Figure 1(a): validation accuracy over training, every run in its colour."""
        by_step = all(record.history.step for record in self.records) and bool(self.records)
        series = []
        tests = []
        for index, record in enumerate(self.records):
            history = record.history
            xs = history.step if by_step else history.epoch
            if history.val_accuracy:
                series.append(
                    PlotSeries(
                        [float(x) for x in xs],
                        list(history.val_accuracy),
                        painter.color(index),
                        painter.marker(index, "val") if painter.no_color else painter.train_marker,
                        arm_name(record.config) if len(self.records) == 2 else None,
                        points="" if painter.no_color else "•",  # validation: points joined
                    )
                )
            if record.final is not None:
                arm = arm_name(record.config)
                tests.append(f"{arm} {100 * record.final.test_accuracy:.2f}%")
        title = "validation accuracy"
        if tests:
            title += " (test accuracy: " + ", ".join(tests) + ")"
        self.query_one("#diag-accuracy", OverlayPlot).show(
            series,
            title=title,
            xlabel="step" if by_step else "epoch",
            ylabel="accuracy",
            integer_x=True,  # steps or epochs
            message="no epochs finished yet",
        )

    # -- controls -----------------------------------------------------------------------------

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.value is Select.NULL:
            return
        if event.select.id == "diag-layer" and event.value != self.layer_name:
            self.layer_name = str(event.value)
            self.redraw()
        elif event.select.id == "diag-statistic" and event.value != self.statistic.key:
            self.statistic = STATISTIC_BY_KEY[str(event.value)]
            self.redraw()

    def _step_layer(self, step: int) -> None:
        names = [name for name, _ in self.layer_choices]
        if not names:
            return
        index = names.index(self.layer_name) if self.layer_name in names else 0
        self.query_one("#diag-layer", Select).value = names[(index + step) % len(names)]

    def action_previous_layer(self) -> None:
        self._step_layer(-1)

    def action_next_layer(self) -> None:
        self._step_layer(1)

    def action_next_statistic(self) -> None:
        index = STATISTICS.index(self.statistic)
        self.query_one("#diag-statistic", Select).value = STATISTICS[(index + 1) % len(STATISTICS)].key

    def action_toggle_log(self) -> None:
        self.log_y = not self.log_y
        self.redraw()

    def action_close(self) -> None:
        self.dismiss()
