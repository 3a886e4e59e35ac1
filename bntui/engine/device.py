"""Which devices this machine has, and turning a config's device name into a torch.device."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class DeviceInfo:
    name: str  # "cpu", "cuda:0", "mps"
    description: str  # human label, e.g. the GPU's name


@lru_cache(maxsize=1)
def available_devices() -> tuple[DeviceInfo, ...]:
    import platform

    import torch

    found = [DeviceInfo("cpu", platform.processor() or platform.machine() or "CPU")]
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            found.append(DeviceInfo(f"cuda:{index}", torch.cuda.get_device_name(index)))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append(DeviceInfo("mps", "Apple Metal"))
    return tuple(found)


def resolve_device(name: str):  # -> torch.device
    """`auto` picks the first GPU when there is one, else the CPU. Raises ValueError for a
    device that is not present."""
    import torch

    present = {d.name for d in available_devices()}
    if name == "auto":
        for candidate in ("cuda:0", "mps"):
            if candidate in present:
                return torch.device(candidate)
        return torch.device("cpu")
    wanted = "cuda:0" if name == "cuda" else name
    if wanted not in present:
        raise ValueError(
            f"device: {name!r} is not present on this machine (present: {', '.join(sorted(present))})"
        )
    return torch.device(wanted)


def describe_device(device) -> str:
    for info in available_devices():
        if info.name == str(device) or (str(device) == "cuda" and info.name == "cuda:0"):
            return info.description
    return str(device)
