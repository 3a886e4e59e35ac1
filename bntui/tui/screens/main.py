"""The workbench: settings on the left; plots, the progress line and the run list on the right."""

from __future__ import annotations

from pathlib import Path

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Static

from bntui.tui.devices import DeviceChoice
from bntui.tui.keys import bindings
from bntui.tui.widgets.key_footer import KeyFooter
from bntui.tui.widgets.metric_plot import MetricPlot
from bntui.tui.widgets.progress_line import ProgressLine
from bntui.tui.widgets.run_table import RunTable
from bntui.tui.widgets.settings_form import SettingsForm


# Below this the settings, plots and run list cannot all fit (at 40x12 the run list was two
# columns wide): the screen says how large to make the terminal instead of drawing them broken.
MIN_WIDTH, MIN_HEIGHT = 70, 20


class MainScreen(Screen):
    BINDINGS = bindings("main")
    # Wide terminals show the loss and accuracy plots side by side, narrow ones one at a time.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (130, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (36, "-tall")]

    def __init__(
        self,
        data_dir: Path,
        device: str,
        devices: list[DeviceChoice] | None,
        backends: tuple[str, ...] = ("local",),
        backend: str = "local",
    ) -> None:
        super().__init__()
        self.data_dir = data_dir
        self.device = device
        self.devices = devices
        self.backends = backends
        self.backend = backend

    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            yield SettingsForm(
                self.data_dir, self.device, self.devices, backends=self.backends, backend=self.backend, id="settings"
            )
            with Vertical(id="workspace"):
                with Horizontal(id="plots") as plots:
                    plots.border_title = "Curves"
                    yield MetricPlot("loss", id="loss-plot")
                    yield MetricPlot("accuracy", id="accuracy-plot")
                yield ProgressLine(id="progress")
                runs = RunTable(id="runs")
                runs.border_title = "Runs"
                yield runs
        yield Static(id="too-small")
        yield KeyFooter()

    @property
    def form(self) -> SettingsForm:
        return self.query_one(SettingsForm)

    @property
    def runs(self) -> RunTable:
        return self.query_one(RunTable)

    @property
    def progress(self) -> ProgressLine:
        return self.query_one(ProgressLine)

    @property
    def plots(self) -> list[MetricPlot]:
        return list(self.query(MetricPlot))

    @property
    def shows_both_plots(self) -> bool:
        return self.has_class("-wide")

    def toggle_metric(self) -> None:
        self.toggle_class("show-accuracy")

    def on_resize(self, event: events.Resize) -> None:
        width, height = event.size
        too_small = width < MIN_WIDTH or height < MIN_HEIGHT
        self.set_class(too_small, "-too-small")
        if too_small:
            self.query_one("#too-small", Static).update(
                f"Make the terminal at least {MIN_WIDTH}x{MIN_HEIGHT}\n(it is {width}x{height})"
            )
        # Runs after Textual set the breakpoint classes: crossing the wide breakpoint shows or
        # hides ^g in the footer (BntuiApp.check_action).
        self.refresh_bindings()
