"""One BN / no-BN group: per arm, the mean validation curve over the paired seeds with a band
of ± one standard deviation, and the group's result card (the same text `bntui compare
--group` prints). The numbers come from bntui.stats.summarize_group; nothing is recomputed."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Static

from bntui.present.cards import group_card_text
from bntui.stats import ArmSummary, Band, GroupSummary, summarize_group
from bntui.store.schema import RunRecord
from bntui.tui.widgets.key_footer import KeyFooter
from bntui.tui.widgets.parts_line import PartsLine
from bntui.tui.widgets.band_plot import BandPlot, BandSeries
from bntui.tui.screens.live import LiveRecordsScreen
from bntui.present.words import counted
from bntui.tui.widgets.overlay_plot import CurvePainter, painter_for

VIEWS = ("both", "loss", "accuracy")


def band_words(summary: GroupSummary) -> str:
    """How the band is drawn, for titles and legends."""
    return "± 1 std" if summary.band_kind == "std" else "min–max"


def arm_band(arm: ArmSummary, band: Band, words: str, painter: CurvePainter, index: int) -> BandSeries:
    """One arm's band, in run colour `index`; x is the epoch (1-based)."""
    epochs = [float(epoch) for epoch in range(1, len(band.mean) + 1)]
    mid_marker, edge_marker = painter.band_markers(index)
    return BandSeries(
        xs=epochs,
        mid=list(band.mean),
        low=list(band.low),
        high=list(band.high),
        color=painter.color(index),
        label=f"{arm.label} mean",
        edge_label=f"{arm.label} {words}",
        mid_marker=mid_marker,
        edge_marker=edge_marker,
    )


class GroupScreen(LiveRecordsScreen):
    """`records`: the runs of one group (both arms, every seed)."""

    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("m", "cycle_view", "Loss/Acc", tooltip="Show both plots, only loss, or only accuracy"),
        # The main screen's key for the same thing; one footer entry is enough.
        Binding("ctrl+g", "cycle_view", "Loss/Acc", show=False, tooltip="Show both plots, only loss, or only accuracy"),
    ]
    HELP_NAME = "group (paired BN ablation)"
    MARKERS = (
        ("⠿ line", "an arm's mean over seeds, per epoch"),
        ("╌ dashes", "that mean ± 1 standard deviation over seeds (the band's edges)"),
        ("colour", "BN: the 1st plot colour, no BN: the 2nd"),
    )

    def __init__(self, records: Sequence[RunRecord]) -> None:
        super().__init__()
        self.records: list[RunRecord] = list(records)
        self.summary: GroupSummary | None = None
        self.problem: str | None = None
        self.card_text = ""
        self.view = "both"

    def compose(self) -> ComposeResult:
        yield PartsLine(id="group-status")
        with Horizontal(id="group-body"):
            with Vertical(id="group-plots"):
                yield BandPlot(id="group-loss")
                yield BandPlot(id="group-accuracy")
            with VerticalScroll(id="group-card-pane"):
                yield Static(id="group-card")
        yield KeyFooter()

    def update_records(self, records: Sequence[RunRecord]) -> None:
        """The group's runs again, as the store now has them. Redraws at most 4 times a second."""
        self.records = list(records)
        self.throttle.request()

    def _summarize(self) -> None:
        self.summary, self.problem = None, None
        if not self.records:
            self.problem = "no runs in this group"
            return
        try:
            self.summary = summarize_group(self.records)
        except ValueError as exc:  # runs of several groups: say so instead of mixing them
            self.problem = str(exc)

    def draw(self) -> None:
        self._summarize()
        painter = painter_for(self.app)
        loss_plot = self.query_one("#group-loss", BandPlot)
        accuracy_plot = self.query_one("#group-accuracy", BandPlot)
        loss_plot.display = self.view in ("both", "loss")
        accuracy_plot.display = self.view in ("both", "accuracy")
        summary = self.summary
        if summary is None:
            self.card_text = self.problem or ""
            self.query_one("#group-status", Static).update(Text(self.card_text))
            self.query_one("#group-card", Static).update(Text(self.card_text))
            loss_plot.show_bands([], message=self.card_text)
            accuracy_plot.show_bands([], message=self.card_text)
            return
        words = band_words(summary)
        spread = (
            "band: mean ± one standard deviation over seeds"
            if summary.band_kind == "std"
            else "band: min to max over seeds"
        )
        self.query_one("#group-status", Static).update(
            Text(
                f"Group {summary.group or '(none)'} · {summary.title} · {counted(summary.k, 'seed pair')} · "
                f"{spread} (dotted edges) · verdict: {summary.verdict}"
            )
        )
        arms = ((summary.bn, 0), (summary.no_bn, 1))
        empty = "no finished BN / no-BN pair yet"
        plots = (
            (loss_plot, "validation loss", "val_loss"),
            (accuracy_plot, "validation accuracy", "val_accuracy"),
        )
        for plot, metric, attr in plots:
            bands = [
                arm_band(arm, getattr(arm, attr), words, painter, index)
                for arm, index in arms
                if getattr(arm, attr).mean
            ]
            plot.show_bands(
                bands,
                title=f"{metric}: mean {words} over {counted(summary.k, 'seed')}",
                xlabel="epoch",
                integer_x=True,
                ylabel=metric.split()[-1],
                message=empty,
            )
        self.card_text = group_card_text(summary)
        # Text, not markup: the card holds brackets ("95% CI [+1.2, +3.4]").
        self.query_one("#group-card", Static).update(Text(self.card_text))

    def action_close(self) -> None:
        self.dismiss()

    def action_cycle_view(self) -> None:
        self.view = VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)]
        self.redraw()
