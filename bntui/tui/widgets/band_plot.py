"""Curves with a band around them: a mean over seeds ± one std (group view), or the 50th
percentile between the 15th and 85th (BatchNorm diagnostics, as in the paper's Figure 1).

plotext cannot shade between two curves, so a band is three curves of one colour: the centre
in the solid marker, the two edges dotted. The plot's legend says what the edges are."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bntui.tui.widgets.overlay_plot import OverlayPlot, PlotSeries


@dataclass(frozen=True)
class BandSeries:
    xs: list[float]
    mid: list[float]
    low: list[float]
    high: list[float]
    color: tuple[int, int, int] | None
    label: str  # e.g. "BN mean", "p50"
    edge_label: str  # e.g. "BN ± 1 std", "p15 / p85"
    mid_marker: str = "braille"
    edge_marker: str = "dot"

    def curves(self) -> list[PlotSeries]:
        # Edges first so the centre line is drawn on top of them.
        return [
            PlotSeries(self.xs, self.low, self.color, self.edge_marker, self.edge_label),
            PlotSeries(self.xs, self.high, self.color, self.edge_marker, None),
            PlotSeries(self.xs, self.mid, self.color, self.mid_marker, self.label),
        ]


class BandPlot(OverlayPlot):
    """An OverlayPlot fed with bands (and optionally extra plain curves)."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.bands: list[BandSeries] = []

    def show_bands(self, bands: Sequence[BandSeries], *, extra: Sequence[PlotSeries] = (), **options: Any) -> None:
        """The bands' curves, then `extra` curves; `options` are those of OverlayPlot.show."""
        self.bands = list(bands)
        curves = [curve for band in self.bands for curve in band.curves()]
        self.show([*curves, *extra], **options)
