"""What the machine is doing: CPU and memory (psutil), and each GPU's use, memory, temperature
and power (NVIDIA's NVML, through nvidia-ml-py). One reading is a few library calls that may
take milliseconds: call it from a thread, never from the event loop. No torch, no textual.

The NVML module is a parameter (the seam tests fill with a fake): a machine without the NVIDIA
driver, or with no GPU, reads as "no GPU", never as an error."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GpuReading:
    index: int
    name: str
    utilization: float | None  # percent, over the driver's last sample period
    memory_used: int | None  # bytes
    memory_total: int | None
    temperature: float | None  # degrees Celsius
    power: float | None  # watts


@dataclass(frozen=True)
class SystemReading:
    cpu_percent: float
    memory_used: int
    memory_total: int
    gpus: tuple[GpuReading, ...] = ()
    gpu_note: str | None = None  # why there are no GPU figures ("no GPU ...")


class SystemReader:
    """Reads the machine; NVML is started once, on the first reading."""

    def __init__(self, nvml: Any = None) -> None:
        self._nvml = nvml
        self._started: bool | None = None  # None: not tried yet
        self._note: str | None = None
        self._lock = threading.Lock()

    def read(self) -> SystemReading:
        import psutil

        memory = psutil.virtual_memory()
        cpu = psutil.cpu_percent(interval=None)  # since the previous call: never waits
        with self._lock:
            gpus, note = self._gpus()
        return SystemReading(cpu, memory.total - memory.available, memory.total, gpus, note)

    def _start(self) -> bool:
        if self._started is None:
            try:
                if self._nvml is None:
                    import pynvml as nvml
                else:
                    nvml = self._nvml
                nvml.nvmlInit()
                self._nvml, self._started = nvml, True
            except Exception as exc:  # noqa: BLE001 - no driver, no library: no GPU to show
                self._started = False
                self._note = f"no GPU (NVIDIA driver not found: {' '.join(str(exc).split())[:80]})"
        return self._started

    def _gpus(self) -> tuple[tuple[GpuReading, ...], str | None]:
        if not self._start():
            return (), self._note
        nvml = self._nvml
        try:
            count = nvml.nvmlDeviceGetCount()
        except Exception as exc:  # noqa: BLE001
            return (), f"no GPU (NVML: {' '.join(str(exc).split())[:80]})"
        if count == 0:
            return (), "no GPU"
        return tuple(self._gpu(nvml, index) for index in range(count)), None

    @staticmethod
    def _gpu(nvml: Any, index: int) -> GpuReading:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)

        def ask(function, *args):
            try:
                return function(handle, *args)
            except Exception:  # noqa: BLE001 - a figure this GPU does not report
                return None

        name = ask(nvml.nvmlDeviceGetName) or f"GPU {index}"
        if isinstance(name, bytes):
            name = name.decode(errors="replace")
        rates = ask(nvml.nvmlDeviceGetUtilizationRates)
        memory = ask(nvml.nvmlDeviceGetMemoryInfo)
        temperature = ask(nvml.nvmlDeviceGetTemperature, getattr(nvml, "NVML_TEMPERATURE_GPU", 0))
        milliwatts = ask(nvml.nvmlDeviceGetPowerUsage)
        return GpuReading(
            index=index,
            name=str(name),
            utilization=float(rates.gpu) if rates is not None else None,
            memory_used=int(memory.used) if memory is not None else None,
            memory_total=int(memory.total) if memory is not None else None,
            temperature=float(temperature) if temperature is not None else None,
            power=milliwatts / 1000 if milliwatts is not None else None,
        )
