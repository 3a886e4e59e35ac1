"""Compare runs side by side: their curves overlaid, a table of final and best metrics with the
difference to a reference run, and the settings in which they differ. All by keyboard.

The rows and the settings diff are bntui.present.compare's (as `bntui compare` prints them);
which curve goes on which x axis is a plain function at the top; the screen arranges and redraws."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Static

from bntui.present.compare import (
    ComparisonRow,
    SettingRow,
    comparison_rows,
    config_diff,
    run_labels,
    unique_runs,
)
from bntui.present.units import metric_delta, metric_value
from bntui.series import ema
from bntui.store.schema import RunRecord
from bntui.tui.screens.live import LiveRecordsScreen
from bntui.present.words import counted
from bntui.tui.widgets.key_footer import KeyFooter
from bntui.tui.widgets.parts_line import PartsLine
from bntui.tui.widgets.overlay_plot import (
    CurvePainter,
    OverlayPlot,
    PlotSeries,
    marker_symbol,
    painter_for,
)

METRICS = ("loss", "accuracy")
X_AXES = ("epoch", "step", "time")
X_LABELS = {"epoch": "epoch", "step": "optimizer step", "time": "wall time (s)"}
# Smoothing weights in tenths: 0 is off, 9 (0.9) the most the +/- keys allow.
MAX_SMOOTHING_TENTHS = 9
DEFAULT_SMOOTHING_TENTHS = 6

Curve = tuple[list[float], list[float]]


# -- data -------------------------------------------------------------------------------------


VAL_POINT = "•"  # as on the main screen (bntui.tui.curves.VAL_POINT)
LEGEND_RUN_LINES = 4  # the legend's lines for runs; one more says what the marks are


def shorter_labels(labels: list[str]) -> list[str]:
    """The labels without the leading "/"-parts every one of them shares:
    mnist-mini/mlp/bn/s0, mnist-mini/mlp/no-bn/s0 -> bn/s0, no-bn/s0."""
    parts = [label.split("/") for label in labels]
    common = 0
    while all(len(p) > common + 1 for p in parts) and len({p[common] for p in parts}) == 1:
        common += 1
    return ["/".join(p[common:]) for p in parts]


def _pair(xs: Sequence[float], ys: Sequence[float]) -> Curve | None:
    if not xs or len(xs) != len(ys):
        return None
    return [float(x) for x in xs], [float(y) for y in ys]


def run_curves(record: RunRecord, metric: str, x_axis: str) -> tuple[Curve | None, Curve | None]:
    """(validation curve, training curve) of one run, each as (xs, ys) or None when the run
    has no data for that axis (a record without step or timing arrays).

    Training loss comes from the step-resolution progress points on the step and time axes;
    accuracy exists per epoch only."""
    history, progress = record.history, record.progress
    val = list(history.val_loss if metric == "loss" else history.val_accuracy)
    train = list(history.train_loss if metric == "loss" else history.train_accuracy)
    if x_axis == "epoch":
        return _pair(history.epoch, val), _pair(history.epoch, train)
    per_epoch_x = history.step if x_axis == "step" else history.elapsed
    progress_x = progress.step if x_axis == "step" else progress.elapsed
    train_curve = None
    if metric == "loss" and len(progress):
        train_curve = _pair(progress_x, progress.train_loss)
    if train_curve is None:
        train_curve = _pair(per_epoch_x, train)
    return _pair(per_epoch_x, val), train_curve


def pack_entries(entries: Sequence[Text], width: int, gap: str = "   ") -> Text:
    """Legend entries side by side, a new line where the next one would not fit: an entry is
    never broken across lines (wrapping at its spaces split "■ #5" from its run's name)."""
    packed = Text()
    used = 0
    for entry in entries:
        if used and used + len(gap) + entry.cell_len > width:
            packed.append("\n")
            used = 0
        elif used:
            packed.append(gap)
            used += len(gap)
        packed.append_text(entry)
        used += entry.cell_len
    return packed


# -- screen -----------------------------------------------------------------------------------


class CompareScreen(LiveRecordsScreen):
    """Overlay of the given runs' curves, a metrics table and the settings diff.

    `reference`: the id of the run the deltas are measured against (default: the first)."""

    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("m", "toggle_metric", "Loss/Acc", tooltip="Plot and tabulate loss or accuracy"),
        # The main screen's key for the same thing; one footer entry is enough.
        Binding("ctrl+g", "toggle_metric", "Loss/Acc", show=False, tooltip="Plot and tabulate loss or accuracy"),
        Binding("l", "toggle_log", "Log y", tooltip="Logarithmic y axis on or off"),
        Binding("x", "cycle_x_axis", "X axis", tooltip="x axis: epoch, optimizer step, wall time"),
        Binding("s", "toggle_smoothing", "Smooth", tooltip="EMA smoothing (debiased) on or off"),
        Binding("plus,equals_sign", "smoothing_up", "Smooth+", tooltip="Smoothing weight +0.1 (max 0.9)"),
        Binding("minus", "smoothing_down", "Smooth-", tooltip="Smoothing weight -0.1 (0 turns it off)"),
        Binding("t", "toggle_train", "Train", tooltip="Show or hide the training curves"),
        Binding("r", "set_reference", "Reference", tooltip="Measure deltas against the selected run"),
        Binding("a", "toggle_all_settings", "All settings", tooltip="Settings: only differing, or all"),
    ]
    HELP_NAME = "compare"
    MARKERS = (
        ("• dots", "validation, one point per epoch (or per logged step), joined"),
        ("⠿ line", "training (t hides it)"),
        ("colour", "the run: ■ #n in the key under the plot; ◆ the reference run"),
        ("Δ", "run − reference (r makes the selected run the reference)"),
    )

    def __init__(self, records: Sequence[RunRecord], reference: str | None = None) -> None:
        super().__init__()
        self.records: list[RunRecord] = unique_runs(records)
        ids = [record.id for record in self.records]
        self.reference_index = ids.index(reference) if reference in ids else 0
        self.metric = "loss"
        self.x_axis = "epoch"
        self.log_y = False
        self.smoothing_tenths = 0
        self._last_smoothing_tenths = DEFAULT_SMOOTHING_TENTHS
        self.show_train = True
        self.show_all_settings = False
        self.rows: list[ComparisonRow] = []
        self.settings: list[SettingRow] = []
        self.notes: list[str] = []

    @property
    def smoothing(self) -> float:
        return self.smoothing_tenths / 10

    def compose(self) -> ComposeResult:
        yield PartsLine(id="compare-status")
        yield OverlayPlot(id="compare-plot")
        yield Static(id="compare-legend")
        with Horizontal(id="compare-bottom"):
            with Vertical(id="compare-runs-pane"):
                yield Static(id="compare-runs-title", classes="pane-title")
                # The # column (the run's colour) stays put when the table scrolls sideways.
                yield DataTable(id="compare-table", cursor_type="row", zebra_stripes=True, fixed_columns=1)
            with Vertical(id="compare-settings-pane"):
                yield Static(id="compare-settings-title", classes="pane-title")
                # A column cursor: right / left step a run at a time, the table scrolling with it;
                # the setting names stay.
                yield DataTable(id="compare-settings", cursor_type="column", fixed_columns=1)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#compare-table", DataTable).focus()

    def update_records(self, records: Sequence[RunRecord]) -> None:
        """New data for (some of) the runs shown, e.g. a run still training. Redraws at most
        4 times a second; the reference run stays the same run."""
        reference_id = self.records[self.reference_index].id if self.records else None
        self.records = unique_runs(records)
        ids = [record.id for record in self.records]
        self.reference_index = ids.index(reference_id) if reference_id in ids else 0
        self.throttle.request()

    # -- drawing ------------------------------------------------------------------------------

    def draw(self) -> None:
        painter = painter_for(self.app)
        self._draw_plot(painter)
        self._draw_status()
        self._draw_legend(painter)
        self._fill_table(painter)
        self._fill_settings()

    def _smoothed(self, curve: Curve) -> Curve:
        xs, ys = curve
        return (xs, ema(ys, self.smoothing)) if self.smoothing_tenths else (xs, ys)

    def _draw_plot(self, painter: CurvePainter) -> None:
        series: list[PlotSeries] = []
        missing: list[str] = []
        for index, record in enumerate(self.records):
            val, train = run_curves(record, self.metric, self.x_axis)
            if val is None and (train is None or not self.show_train):
                missing.append(f"#{index + 1}")
            if self.show_train and train is not None:
                series.append(PlotSeries(*self._smoothed(train), painter.color(index), painter.marker(index, "train")))
            if val is not None:
                # With colour: a point per measurement joined by a line (dots drew stair steps).
                marker, points = painter.marker(index, "val"), ""
                if not painter.no_color:
                    marker, points = painter.train_marker, VAL_POINT
                series.append(PlotSeries(*self._smoothed(val), painter.color(index), marker, points=points))
        self.notes = []
        if missing and self.records:
            self.notes.append(f"no {self.x_axis} data for {', '.join(missing)}")
        self.query_one("#compare-plot", OverlayPlot).show(
            series,
            title=f"{self.metric}: validation and training" if self.show_train else f"validation {self.metric}",
            xlabel=X_LABELS[self.x_axis],
            ylabel=self.metric,
            log_y=self.log_y,
            integer_x=self.x_axis != "time",
            message="no runs to compare" if not self.records else f"no {self.x_axis} data to plot",
        )

    def _draw_status(self) -> None:
        smoothing = f"EMA {self.smoothing:.1f}" if self.smoothing_tenths else "off"
        reference = (
            f"#{self.reference_index + 1} {self.records[self.reference_index].config.label}" if self.records else "—"
        )
        parts = [
            counted(len(self.records), "run"),
            f"metric: {self.metric}",
            f"x: {self.x_axis}",
            f"y: {'log' if self.log_y else 'linear'}",
            f"smoothing: {smoothing}",
            f"reference: {reference}",
            *self.notes,
        ]
        self.query_one("#compare-status", Static).update(Text(" · ".join(parts)))

    def _draw_legend(self, painter: CurvePainter) -> None:
        legend_widget = self.query_one("#compare-legend", Static)
        width = legend_widget.content_region.width or self.size.width - 2
        labels = run_labels(self.records)
        # The legend has 4 lines for runs (and one for the marks): with many runs, the parts
        # every run shares go (the status line and table say them), then the names.
        for candidate in (labels, shorter_labels(labels), [""] * len(labels)):
            legend = pack_entries(self._legend_entries(painter, candidate), width)
            if legend.plain.count("\n") < LEGEND_RUN_LINES:
                break
        if not painter.no_color:
            train = f"  training: {marker_symbol(painter.train_marker)}" if self.show_train else ""
            legend.append(f"\nvalidation: ⠒{VAL_POINT}⠒ (points joined){train}", style="dim")
        legend_widget.update(legend)

    def _legend_entries(self, painter: CurvePainter, labels: list[str]) -> list[Text]:
        entries = []
        for index, label in enumerate(labels):
            entry = Text()
            entry.append("■ " if not painter.no_color else "", style=painter.swatch(index))
            entry.append(f"#{index + 1} {label}".rstrip(), style=painter.swatch(index))
            if painter.no_color:
                train = f", train {marker_symbol(painter.marker(index, 'train'))}" if self.show_train else ""
                entry.append(f" (val {marker_symbol(painter.marker(index, 'val'))}{train})")
            entries.append(entry)
        return entries

    def on_resize(self) -> None:
        # The legend is packed for the width it had: pack it again for the new one.
        if self.is_mounted:
            self._draw_legend(painter_for(self.app))

    def _fill_table(self, painter: CurvePainter) -> None:
        table = self.query_one("#compare-table", DataTable)
        cursor = table.cursor_row
        table.clear(columns=True)
        metric = self.metric
        # The numbers first, the run's name last: a narrow table shows what it compares and
        # scrolls sideways (left / right) to the rest; the legend above names every #.
        table.add_column("#", key="index")
        for key, title in (("final", "final val"), ("best", "best val"), ("test", "test")):
            table.add_column(title, key=key)
            table.add_column("Δ", key=f"d_{key}")
        table.add_column("ep", key="epochs")
        table.add_column("status", key="status")
        table.add_column("run", key="run")
        self.query_one("#compare-runs-title", Static).update(
            Text(f"{metric.capitalize()}: Δ = run − reference ◆ (r: set)")
        )
        self.rows = comparison_rows(self.records, self.reference_index, metric)
        for index, row in enumerate(self.rows):
            mark = "◆" if row.is_reference else " "
            cells: list[object] = [Text(f"{mark}{index + 1}", style=painter.swatch(index))]
            for key in ("final", "best", "test"):
                cells.append(Text(metric_value(metric, getattr(row.values, key)), justify="right"))
                delta = "ref" if row.is_reference else metric_delta(metric, getattr(row.deltas, key))
                cells.append(Text(delta, justify="right"))
            cells += [str(row.epochs), row.status, row.label]
            table.add_row(*cells, key=row.run_id)
        if self.rows:
            table.move_cursor(row=min(cursor, len(self.rows) - 1))

    def _fill_settings(self) -> None:
        table = self.query_one("#compare-settings", DataTable)
        table.clear(columns=True)
        self.settings = config_diff(self.records, self.show_all_settings) if self.records else []
        shown = "all settings (≠ marks a difference)" if self.show_all_settings else "settings that differ"
        self.query_one("#compare-settings-title", Static).update(Text(f"{shown.capitalize()} (a: toggle)"))
        table.add_column("setting", key="setting")
        for index in range(len(self.records)):
            table.add_column(f"#{index + 1}", key=f"run{index}")
        if not self.settings:
            table.add_row("(all settings equal)", *[""] * len(self.records), key="(none)")
            return
        for setting in self.settings:
            name = Text(f"≠ {setting.name}" if self.show_all_settings and setting.differs else setting.name)
            if setting.differs:
                name.stylize("bold")
            table.add_row(name, *setting.values, key=setting.name)

    # -- actions ------------------------------------------------------------------------------

    def action_close(self) -> None:
        self.dismiss()

    def action_toggle_metric(self) -> None:
        self.metric = METRICS[(METRICS.index(self.metric) + 1) % len(METRICS)]
        self.redraw()

    def action_toggle_log(self) -> None:
        self.log_y = not self.log_y
        self.redraw()

    def action_cycle_x_axis(self) -> None:
        self.x_axis = X_AXES[(X_AXES.index(self.x_axis) + 1) % len(X_AXES)]
        self.redraw()

    def action_toggle_smoothing(self) -> None:
        if self.smoothing_tenths:
            self._last_smoothing_tenths = self.smoothing_tenths
            self.smoothing_tenths = 0
        else:
            self.smoothing_tenths = self._last_smoothing_tenths
        self.redraw()

    def action_smoothing_up(self) -> None:
        self.smoothing_tenths = min(self.smoothing_tenths + 1, MAX_SMOOTHING_TENTHS)
        self.redraw()

    def action_smoothing_down(self) -> None:
        if self.smoothing_tenths:
            self.smoothing_tenths -= 1
            if self.smoothing_tenths:
                self._last_smoothing_tenths = self.smoothing_tenths
        self.redraw()

    def action_toggle_train(self) -> None:
        self.show_train = not self.show_train
        self.redraw()

    def action_set_reference(self) -> None:
        table = self.query_one("#compare-table", DataTable)
        if self.records and 0 <= table.cursor_row < len(self.records):
            self.reference_index = table.cursor_row
            self.redraw()

    def action_toggle_all_settings(self) -> None:
        self.show_all_settings = not self.show_all_settings
        self._fill_settings()
