"""Helpers shared by the TUI tests: waiting on a running app, and the stored fixture runs."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

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
