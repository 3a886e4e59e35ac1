"""Which devices this machine has, found by a short `python -c` subprocess.

The subprocess imports torch so that the UI process never does: the first paint stays fast and
the app's memory stays small. The app calls `detect_devices` from a thread worker."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

_DETECT = (
    "import json\n"
    "from bntui.engine.device import available_devices\n"
    "print(json.dumps([[d.name, d.description] for d in available_devices()]))\n"
)


@dataclass(frozen=True)
class DeviceChoice:
    name: str  # "cpu", "cuda:0", "mps"
    description: str  # e.g. the GPU's name


class DeviceDetectionError(RuntimeError):
    pass


def detect_devices(timeout: float = 120.0) -> list[DeviceChoice]:
    try:
        done = subprocess.run(
            [sys.executable, "-c", _DETECT], capture_output=True, text=True, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DeviceDetectionError(f"device detection failed: {exc}") from None
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise DeviceDetectionError(f"device detection failed: {reason}")
    try:
        return [DeviceChoice(str(name), str(text)) for name, text in json.loads(done.stdout)]
    except (ValueError, TypeError) as exc:
        raise DeviceDetectionError(f"device detection printed something unexpected: {exc}") from None


def auto_device(devices: list[DeviceChoice]) -> str:
    """What `auto` resolves to (the engine's rule): the first GPU, else the CPU."""
    names = [d.name for d in devices]
    for name in names:
        if name.startswith("cuda"):
            return name
    return "mps" if "mps" in names else "cpu"


def device_options(devices: list[DeviceChoice] | None) -> list[tuple[str, str]]:
    """(label, value) pairs for the device choice; `None` means not detected yet."""
    if devices is None:
        return [("auto (detecting...)", "auto"), ("cpu", "cpu")]
    options = [(f"auto ({auto_device(devices)})", "auto")]
    for device in devices:
        label = device.name if device.name == "cpu" else f"{device.name} {device.description}"
        options.append((label, device.name))
    return options
