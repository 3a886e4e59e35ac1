"""Which devices this machine has, turning a config's device name into a torch.device, and
the kernel settings every run trains under."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class DeviceInfo:
    name: str  # "cpu", "cuda:0", "mps"
    description: str  # human label, e.g. the GPU's name


def probe_devices() -> tuple[tuple[DeviceInfo, ...], tuple[str, ...]]:
    """(the devices, torch's warnings while looking), asked afresh; see available_devices."""
    import platform

    import torch

    found = [DeviceInfo("cpu", platform.processor() or platform.machine() or "CPU")]
    # torch says why it finds no GPU only as a warning (a driver older than the CUDA runtime,
    # a broken install): keep the reason for the user instead of printing it to stderr.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if torch.cuda.is_available():
            for index in range(torch.cuda.device_count()):
                found.append(DeviceInfo(f"cuda:{index}", torch.cuda.get_device_name(index)))
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            found.append(DeviceInfo("mps", "Apple Metal"))
    reasons = tuple(dict.fromkeys(" ".join(str(w.message).split()) for w in caught))
    return tuple(found), reasons


_probe = lru_cache(maxsize=1)(probe_devices)  # what the machine has does not change


def available_devices() -> tuple[DeviceInfo, ...]:
    """The CPU, then each CUDA GPU (cuda:0, cuda:1, ...), then MPS where present."""
    return _probe()[0]


def device_warnings() -> tuple[str, ...]:
    """What torch warned about while looking for devices (each once, on one line): the reason
    a GPU that should be there is missing, for instance a driver too old for this torch."""
    return _probe()[1]


def canonical_device_name(name: str, present: Collection[str]) -> str:
    """The one name of the device `name` means, given the device names `present`: `auto` is
    cuda:0 where present, else mps where present, else cpu; `cuda` is cuda:0; any other name
    is itself. The rule resolve_device trains by, so `cuda`, `cuda:0` and `auto` on a machine
    with one GPU all come out as "cuda:0"."""
    if name == "auto":
        return next((c for c in ("cuda:0", "mps") if c in present), "cpu")
    return "cuda:0" if name == "cuda" else name


def lane_for(device: str, present: Iterable[str]) -> str:
    """The queue lane of a run whose config says `device`, on a machine with the device
    names `present` (e.g. ("cpu", "cuda:0", "cuda:1"), as available_devices() names them).

    Runs in one lane share one device, so the lane is the device the run will train on, by
    resolve_device's rule: "auto", "cuda" and "cuda:0" are one lane on a machine whose first
    GPU is cuda:0; "AUTO " and "Cuda:1" are read like "auto" and "cuda:1". A device that is
    not present keeps its own lane (its run fails with a clear message when it starts).
    Names are taken as RunConfig's validation leaves them (bntui.config.check_device_name)."""
    return canonical_device_name(device.strip().lower(), set(present))


def resolve_device(name: str):  # -> torch.device
    """`auto` picks the first GPU when there is one, else the CPU. Raises ValueError for a
    device that is not present."""
    import torch

    present = {d.name for d in available_devices()}
    wanted = canonical_device_name(name, present)
    if wanted not in present:
        raise ValueError(absent_device_message(name, present))
    return torch.device(wanted)


def absent_device_message(name: str, present: Iterable[str]) -> str:
    """One line: the device is not here, what is, and torch's reason if it gave one."""
    message = f"device: {name!r} is not present on this machine (present: {', '.join(sorted(present))})"
    reasons = device_warnings()
    return f"{message}; torch says: {reasons[0]}" if reasons else message


def describe_device(device) -> str:
    for info in available_devices():
        if info.name == str(device) or (str(device) == "cuda" and info.name == "cuda:0"):
            return info.description
    return str(device)


@dataclass(frozen=True)
class KernelSettings:
    """The numerical settings a run trained under, for its recorded environment."""

    cuda: str  # CUDA runtime version torch uses on this run's device ("" off CUDA)
    cudnn: str  # cuDNN version, e.g. "92400" ("" off CUDA)
    deterministic: bool  # cuDNN picks deterministic algorithms (no benchmarking)
    tf32: bool  # TF32 allowed in convolutions or float32 matrix products


@contextlib.contextmanager
def reproducible_kernels(device) -> Iterator[KernelSettings]:
    """Train under deterministic cuDNN algorithms without benchmarking, and without TF32
    (torch lets cuDNN convolutions use TF32 by default: ten mantissa bits, so a rerun of
    LeNet-5 on a GPU would not repeat its losses bit for bit and would drift from float32
    results). The settings are process-wide: they come back as they were on exit. They cost
    speed on a GPU only (see the README's GPU section); on the CPU nothing changes."""
    import torch

    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = (cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32)
    cudnn.deterministic, cudnn.benchmark = True, False
    cudnn.allow_tf32 = matmul.allow_tf32 = False
    on_cuda = getattr(device, "type", str(device)) == "cuda"
    cudnn_version = cudnn.version() if on_cuda and cudnn.is_available() else None
    try:
        yield KernelSettings(
            cuda=(torch.version.cuda or "") if on_cuda else "",
            cudnn=str(cudnn_version) if cudnn_version else "",
            deterministic=True,
            tf32=False,
        )
    finally:
        cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32 = saved


@contextlib.contextmanager
def on_device(device) -> Iterator[None]:
    """Make a CUDA device the current one while a run trains on it (cuda:1's kernels,
    streams and caches then live on cuda:1, not on cuda:0); the previous one comes back."""
    import torch

    if getattr(device, "type", None) != "cuda":
        yield
        return
    with torch.cuda.device(device):
        yield


def seeded_gpus(device) -> list[int]:
    """The GPUs whose random state a run's seeding touches (torch.manual_seed seeds them all),
    for torch.random.fork_rng to put back afterwards."""
    import torch

    if getattr(device, "type", None) == "cuda" or torch.cuda.is_initialized():
        return list(range(torch.cuda.device_count()))
    return []
