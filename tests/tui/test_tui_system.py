"""The system pane: machine readings through a fake NVML at the seam, the pane's text, and a
slow reading that never holds up the event loop."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

from textual.app import App

from bntui.system_stats import SystemReader, SystemReading
from bntui.tui.run_view import RunView
import bntui.tui.screens.system  # noqa: F401 - the module the app test patches
from bntui.tui.screens.system import SystemScreen, describe_system
from tuihelpers import wait_for

CSS = Path(__file__).parents[2] / "bntui" / "tui" / "app.tcss"
GIB = 1024**3


class FakeNvml:
    """Two GPUs; the second reports no power (as some boards do)."""

    NVML_TEMPERATURE_GPU = 0

    def __init__(self, count: int = 2, fail_init: bool = False) -> None:
        self.count, self.fail_init = count, fail_init

    def nvmlInit(self) -> None:
        if self.fail_init:
            raise OSError("libnvidia-ml.so.1: cannot open shared object file")

    def nvmlDeviceGetCount(self) -> int:
        return self.count

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> bytes:
        return b"NVIDIA H200" if handle == 0 else b"NVIDIA A100"

    def nvmlDeviceGetUtilizationRates(self, handle: int):
        return SimpleNamespace(gpu=87 if handle == 0 else 3)

    def nvmlDeviceGetMemoryInfo(self, handle: int):
        return SimpleNamespace(used=12 * GIB, total=140 * GIB)

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        return 61

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        if handle == 1:
            raise RuntimeError("Not Supported")
        return 312_500


def test_a_reading_names_every_gpu_and_what_it_reports() -> None:
    reading = SystemReader(FakeNvml()).read()
    assert reading.memory_total > 0 and 0 <= reading.cpu_percent <= 100 * 1024
    first, second = reading.gpus
    assert (first.name, first.utilization, first.temperature, first.power) == ("NVIDIA H200", 87.0, 61.0, 312.5)
    assert first.memory_used == 12 * GIB and first.memory_total == 140 * GIB
    assert second.power is None and reading.gpu_note is None
    text = describe_system(reading, []).replace("[b]", "").replace("[/b]", "")
    assert "GPU 0 NVIDIA H200 · use 87% · memory 12.0 of 140.0 GiB · 61 °C · 312 W" in text
    assert "GPU 1 NVIDIA A100 · use 3%" in text and "no run is training" in text


def test_no_driver_and_no_gpu_both_read_as_no_gpu() -> None:
    no_driver = SystemReader(FakeNvml(fail_init=True)).read()
    assert no_driver.gpus == () and no_driver.gpu_note.startswith("no GPU (NVIDIA driver not found")
    assert "no GPU" in describe_system(no_driver, [])
    none = SystemReader(FakeNvml(count=0)).read()
    assert none.gpu_note == "no GPU"


def test_running_runs_show_their_speed_and_eta() -> None:
    from bntui.config import RunConfig

    view = RunView(key="r1", config=RunConfig(epochs=2), status="running", run_id="r1")
    view.steps_per_second, view.steps_per_epoch, view.step = 100.0, 100, 50
    reading = SystemReading(10.0, GIB, 2 * GIB, (), "no GPU")
    finished = RunView(key="r2", config=None, status="finished", run_id="r2")
    text = describe_system(reading, [view, finished])
    assert "r1 · 100 steps/s · ETA 1.5s" in text and "r2" not in text


class SlowReader(SystemReader):
    def __init__(self) -> None:
        super().__init__(FakeNvml())
        self.release = threading.Event()

    def read(self) -> SystemReading:
        self.release.wait(10)
        return super().read()


class PaneApp(App):
    CSS_PATH = str(CSS)

    def __init__(self, reader: SystemReader) -> None:
        super().__init__()
        self.reader = reader

    def on_mount(self) -> None:
        self.push_screen(SystemScreen(lambda: [], self.reader))


async def test_a_slow_reading_never_blocks_the_event_loop() -> None:
    reader = SlowReader()
    app = PaneApp(reader)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, SystemScreen)
        began = time.monotonic()
        await pilot.pause(0.2)  # the reading is stuck in its thread; the app still runs
        assert time.monotonic() - began < 2 and screen.reading is None
        reader.release.set()
        await wait_for(pilot, lambda: screen.reading is not None, "the reading")
        text = str(screen.query_one("#system-text").render())
        assert "NVIDIA H200" in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, SystemScreen), "the pane to close")


async def test_f4_opens_the_pane_in_the_app_and_says_no_gpu_plainly(tmp_path: Path, monkeypatch) -> None:
    from bntui.settings import AppSettings
    from bntui.tui import screens
    from bntui.tui.app import BntuiApp
    from bntui.tui.devices import DeviceChoice

    monkeypatch.setattr(screens.system, "SystemReader", lambda: SystemReader(FakeNvml(count=0)))
    settings = AppSettings(runs_dir=tmp_path / "runs", data_dir=tmp_path / "data")
    app = BntuiApp(settings, devices=[DeviceChoice("cpu", "test CPU")], poll_seconds=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        await pilot.press("f4")
        await wait_for(pilot, lambda: isinstance(app.screen, SystemScreen), "the system pane")
        screen = app.screen
        await wait_for(pilot, lambda: screen.reading is not None, "the reading")
        assert "no GPU" in str(screen.query_one("#system-text").render())
        await pilot.press("f4")
        await wait_for(pilot, lambda: not isinstance(app.screen, SystemScreen), "the pane to close")
