"""The system pane (f4): CPU and memory, each GPU's use, memory, temperature and power, and each
running run's speed and ETA. Readings come from a thread (bntui.system_stats) every
REFRESH_SECONDS; the event loop only draws them."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from bntui.system_stats import SystemReader, SystemReading
from bntui.present.text import escape
from bntui.tui.run_view import RunView
from bntui.present.units import duration

REFRESH_SECONDS = 2.0
GIB = 1024**3


def _gib(count: int | None) -> str:
    return "?" if count is None else f"{count / GIB:.1f}"


def describe_system(reading: SystemReading | None, runs: Sequence[RunView]) -> str:
    """The pane's text (Rich markup)."""
    if reading is None:
        lines = ["reading the machine..."]
    else:
        lines = [
            f"[b]CPU[/b] {reading.cpu_percent:.0f}%   "
            f"[b]memory[/b] {_gib(reading.memory_used)} of {_gib(reading.memory_total)} GiB",
        ]
        if not reading.gpus:
            lines.append(escape(reading.gpu_note or "no GPU"))
        for gpu in reading.gpus:
            parts = [f"[b]GPU {gpu.index}[/b] {escape(gpu.name)}"]
            parts.append("use ?" if gpu.utilization is None else f"use {gpu.utilization:.0f}%")
            parts.append(f"memory {_gib(gpu.memory_used)} of {_gib(gpu.memory_total)} GiB")
            if gpu.temperature is not None:
                parts.append(f"{gpu.temperature:.0f} °C")
            if gpu.power is not None:
                parts.append(f"{gpu.power:.0f} W")
            lines.append(" · ".join(parts))
    running = [view for view in runs if view.status == "running"]
    lines.append("")
    if not running:
        lines.append("no run is training")
    for view in running:
        speed = f"{view.steps_per_second:.0f} steps/s" if view.steps_per_second else "starting"
        eta = view.eta_seconds
        lines.append(
            f"{escape(view.run_id or view.key)} · {speed}" + (f" · ETA {duration(eta)}" if eta is not None else "")
        )
    return "\n".join(lines)


class SystemScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,f4", "dismiss", "Close", tooltip="Close the system pane")]

    def __init__(self, runs: Callable[[], Sequence[RunView]], reader: SystemReader | None = None) -> None:
        super().__init__()
        self.runs = runs
        self.reader = reader or SystemReader()
        self.reading: SystemReading | None = None

    def compose(self) -> ComposeResult:
        dialog = VerticalScroll(Static(describe_system(None, self.runs()), id="system-text"), id="system-dialog")
        dialog.border_title = "system"
        dialog.border_subtitle = "escape closes"
        yield dialog

    def on_mount(self) -> None:
        self.refresh_reading()
        self.set_interval(REFRESH_SECONDS, self.refresh_reading)

    def refresh_reading(self) -> None:
        # exclusive: a slow driver never piles readings up behind each other.
        self.run_worker(self._read, thread=True, exclusive=True, group="system-reading")

    def _read(self) -> None:
        reading = self.reader.read()
        self.app.call_from_thread(self._show, reading)

    def _show(self, reading: SystemReading) -> None:
        self.reading = reading
        if self.is_attached:
            self.query_one("#system-text", Static).update(describe_system(reading, self.runs()))
