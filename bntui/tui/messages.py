"""Every message the app's workers and widgets post, as small dataclasses.

Workers run in threads and never touch widgets: they post one of these to the app, whose
handlers (on the event loop) update the widgets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message


@dataclass
class LaunchDone(Message):
    """A launch was queued in the run store (its run ids), or refused (`error`, one line)."""

    run_ids: list[str]
    backend: str
    error: str | None = None


@dataclass
class RunsCancelled(Message):
    """Cancel requests were made; one line per run says what happened."""

    lines: list[str]


@dataclass
class StoreChanged(Message):
    """Runs in the run store that appeared, changed or vanished since the last poll."""

    changed: list[Any] = field(default_factory=list)  # bntui.store.StoredRun
    removed: list[str] = field(default_factory=list)
    problem: str | None = None  # the runs dir became unreadable (reported once)


@dataclass
class DevicesFound(Message):
    """The devices this machine has (found by a short subprocess, so the UI never imports torch)."""

    devices: list[Any]  # bntui.tui.devices.DeviceChoice
    warnings: list[str] = field(default_factory=list)  # why a GPU may be missing


@dataclass
class SettingsChanged(Message):
    """The settings form changed; `errors` maps each invalid field to its message."""

    errors: dict[str, str]
