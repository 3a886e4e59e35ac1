"""The widget every plot is: it holds a `Figure` (bntui.tui.widgets.figure), builds it in a
thread worker at the widget's size and in its theme colours, and hands out the finished lines
(Textual's line API). At most one build runs at a time and at most 4 start a second; a build
that ends starts the next with whatever is latest then (newer data wins, none piles up)."""

from __future__ import annotations

from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget
from textual.worker import Worker, WorkerState

from bntui.tui.throttle import RedrawThrottle
from bntui.present.plots import Figure
from bntui.tui.widgets.figure import FigureRequest, draw

# Below this size there is no room for axes: nothing is built.
MIN_WIDTH, MIN_HEIGHT = 12, 5


class FigureWidget(Widget):
    DEFAULT_CSS = """
    FigureWidget {
        width: 1fr;
        height: 1fr;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.figure = Figure()
        self._strips: list[Strip] = []
        self._drawn: FigureRequest | None = None
        self._drawing = False
        self._throttle = RedrawThrottle(self, self._draw_latest)

    def show_figure(self, figure: Figure) -> None:
        self.figure = figure
        self._throttle.request()

    def on_resize(self) -> None:
        self._throttle.request()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        # The canvas colour comes from the CSS, which a theme switch updates after the screen
        # has asked for the recoloured curves: draw again once it has changed.
        if self.is_mounted:
            self._throttle.request()

    def _request(self) -> FigureRequest:
        _, _, background, foreground = self.colors
        return FigureRequest(self.figure, self.size.width, self.size.height, foreground.rgb, background.rgb)

    def _too_small(self, request: FigureRequest) -> bool:
        return request.width < MIN_WIDTH or request.height < MIN_HEIGHT

    def _draw_latest(self) -> None:
        """Start a build of what should be on screen now, unless one is running."""
        if self._drawing or not self.is_mounted:
            return
        request = self._request()
        if request == self._drawn:
            return
        if self._too_small(request):
            self._drawn, self._strips = request, []
            self.refresh()
            return
        self._drawing = True
        self.run_worker(lambda: (request, draw(request)), thread=True, exit_on_error=False, group="plot", name="plot")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Worker messages do not bubble: this plot's builds report here, and only here."""
        worker = event.worker
        if event.state == WorkerState.SUCCESS:
            self._drawing = False
            if worker.result is not None:  # a build always returns its request and strips
                self._drawn, self._strips = worker.result
            self.refresh()
            self._throttle.request()
        elif event.state in (WorkerState.ERROR, WorkerState.CANCELLED):
            self._drawing = False
            if event.state == WorkerState.ERROR:
                self.notify(
                    f"{self.figure.title or 'plot'}: {worker.error}",
                    title="Plot failed",
                    severity="error",
                    markup=False,
                )

    @property
    def up_to_date(self) -> bool:
        """The plot on screen shows the latest figure at the current size."""
        return not self._drawing and not self._throttle.pending and self._request() == self._drawn

    @property
    def strips(self) -> list[Strip]:
        """The lines on screen (the last finished build)."""
        return self._strips

    @property
    def text(self) -> str:
        """What the plot shows, as plain text (a line per row)."""
        return "\n".join(strip.text for strip in self._strips)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if y < len(self._strips) and self._strips[y].cell_length == width:
            return self._strips[y]
        _, _, background, _ = self.colors
        blank = Style(bgcolor=background.rich_color)
        if y >= len(self._strips):
            return Strip.blank(width, blank)
        # Just resized: show the last drawing cut or padded until the new one is ready.
        return self._strips[y].crop_extend(0, width, blank)
