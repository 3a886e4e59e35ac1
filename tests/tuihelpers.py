"""Helpers shared by the TUI tests: waiting on a running app, and the stored fixture runs."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable
from pathlib import Path

from textual.app import App
from textual.notifications import Notification, Notify
from textual.pilot import Pilot

from bntui.store import list_runs
from bntui.store.schema import RunRecord

# Runs made for the compare, group and diagnostics screens (a BN / no-BN group with diagnostics).
COMPARE_RUNS = Path(__file__).parent / "fixtures" / "compare_runs"


async def wait_for(
    pilot: Pilot, condition: Callable[[], bool], what: str, timeout: float = 30, step: float = 0.05
) -> None:
    """Let the app run until `condition()` holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(step)


def collect_notifications(into: list[Notification]) -> Callable[[object], None]:
    """A `run_test(message_hook=...)` that appends every notification the app shows to `into`."""

    def hook(message: object) -> None:
        if isinstance(message, Notify):
            into.append(message.notification)

    return hook


def fixture_records(*ids: str) -> list[RunRecord]:
    runs = {run.id: run for run in list_runs(COMPARE_RUNS)}
    return [runs[run_id].record for run_id in ids]


# A run of text in Textual's SVG screenshot (Rich's export_svg): its x in pixels and its line.
_SVG_TEXT = re.compile(
    r'<text [^>]*?x="([0-9.]+)"[^>]*?textLength="([0-9.]+)"[^>]*?clip-path="url\(#[^)]*-line-(\d+)\)"[^>]*>([^<]*)</text>'
)


def screen_lines(app: App) -> list[str]:
    """The screen as the user sees it, a string per row, read from the app's public SVG
    screenshot (App.export_screenshot) rather than from Textual's private compositor."""
    width, height = app.size
    rows = [[" "] * width for _ in range(height)]
    runs = [
        (float(x), float(length), int(line), html.unescape(text).replace("\xa0", " "))
        for x, length, line, text in _SVG_TEXT.findall(app.export_screenshot())
    ]
    # Rich writes x as column * character width, and textLength as characters * that width.
    char_width = next((length / len(text) for _, length, _, text in runs if text), 1.0)
    for x, _, line, text in runs:
        column = round(x / char_width)
        for offset, char in enumerate(text):
            if line < height and column + offset < width:
                rows[line][column + offset] = char
    return ["".join(row) for row in rows]


async def plots_drawn(pilot: Pilot, timeout: float = 30) -> None:
    """Wait until every plot on the screen shows its latest figure (plots are built in a
    thread, so a pause alone does not mean they are drawn)."""
    from bntui.tui.widgets.figure_widget import FigureWidget

    def drawn() -> bool:
        return all(plot.up_to_date for plot in pilot.app.screen.query(FigureWidget))

    await wait_for(pilot, drawn, "the plots to be drawn", timeout=timeout)
    await pilot.pause()  # and painted


async def export_written(pilot: Pilot) -> None:
    """Let the export dialog's worker thread (the file write, off the event loop) finish."""
    for worker in [worker for worker in pilot.app.workers if worker.group == "export"]:
        await worker.wait()
    await pilot.pause()
