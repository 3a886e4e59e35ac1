"""Which devices this machine has, found by a short `python -c` subprocess.

The subprocess imports torch so that the UI process never does: the first paint stays fast and
the app's memory stays small. The app runs a `DeviceDetection` in a thread worker."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass

from bntui.child_python import python_command
from bntui.engine.device import lane_for

_DETECT = (
    "import json\n"
    "from bntui.engine.device import available_devices, device_warnings\n"
    "print(json.dumps({'devices': [[d.name, d.description] for d in available_devices()],\n"
    "                  'warnings': list(device_warnings())}))\n"
)


def detect_command() -> list[str]:
    return python_command("-c", _DETECT)  # never imports from the working folder


@dataclass(frozen=True)
class DeviceChoice:
    name: str  # "cpu", "cuda:0", "mps"
    description: str  # e.g. the GPU's name


class DeviceDetectionError(RuntimeError):
    pass


class DeviceDetection:
    """One run of the detection subprocess; `cancel` (from any thread) ends it early, so
    quitting right after start-up does not wait for torch to finish importing."""

    def __init__(self, timeout: float = 120.0) -> None:
        self.timeout = timeout
        # What torch warned about while looking (why a GPU is missing), once `run` returned.
        self.warnings: list[str] = []
        self._process: subprocess.Popen[str] | None = None
        self._cancelled = False

    def run(self) -> list[DeviceChoice]:
        if self._cancelled:
            raise DeviceDetectionError("device detection cancelled")
        try:
            self._process = subprocess.Popen(
                detect_command(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
            )
            stdout, stderr = self._process.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.cancel()
            raise DeviceDetectionError(f"device detection took over {self.timeout:.0f} s") from None
        except OSError as exc:
            raise DeviceDetectionError(f"device detection failed: {exc}") from None
        if self._process.returncode != 0:
            reason = (stderr.strip().splitlines() or ["no message"])[-1]
            raise DeviceDetectionError(f"device detection failed: {reason}")
        try:
            found = json.loads(stdout.strip().splitlines()[-1])
            devices = [DeviceChoice(str(name), str(text)) for name, text in found["devices"]]
            self.warnings = [str(text) for text in found.get("warnings", [])]
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise DeviceDetectionError(f"device detection printed something unexpected: {exc!r}") from None
        return devices

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        self._cancelled = True
        if self._process is not None and self._process.poll() is None:
            self._process.kill()


def auto_device(devices: list[DeviceChoice]) -> str:
    """What `auto` resolves to (the engine's rule): cuda:0, else mps, else the CPU."""
    return lane_for("auto", [d.name for d in devices])


def device_options(devices: list[DeviceChoice] | None) -> list[tuple[str, str]]:
    """(label, value) pairs for the device choice; `None` means not detected yet."""
    if devices is None:
        return [("auto (detecting...)", "auto"), ("cpu", "cpu")]
    options = [(f"auto ({auto_device(devices)})", "auto")]
    for device in devices:
        label = device.name if device.name == "cpu" else f"{device.name} {device.description}"
        options.append((label, device.name))
    return options
