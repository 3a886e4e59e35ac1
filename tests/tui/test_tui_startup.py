"""The UI process never imports torch: devices are found by a subprocess, training happens in
trainer processes. Checked in a fresh interpreter, after the app has mounted and painted. The
devices found then show in the device choice."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from textual.notifications import Notification
from textual.widgets import OptionList, Select

from bntui.settings import AppSettings
from bntui.tui.app import BntuiApp
from bntui.tui.devices import DeviceChoice, DeviceDetection
from tuihelpers import collect_notifications, wait_for

SCRIPT = """
import asyncio, json, sys
from pathlib import Path
from bntui.settings import AppSettings
from bntui.tui.app import BntuiApp

async def main(tmp):
    app = BntuiApp(AppSettings(runs_dir=tmp / "runs", data_dir=tmp / "data"))
    async with app.run_test() as pilot:
        await pilot.pause(0.2)
        after_mount = "torch" in sys.modules
        for _ in range(600):  # the device list arrives from the detection subprocess
            if app.devices is not None:
                break
            await pilot.pause(0.1)
        print(json.dumps({"after_mount": after_mount, "after_devices": "torch" in sys.modules,
                          "devices": [d.name for d in app.devices or []]}))

asyncio.run(main(Path(sys.argv[1])))
"""


def test_the_app_never_imports_torch(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"after_mount": False, "after_devices": False, "devices": result["devices"]}
    assert "cpu" in result["devices"]


async def test_the_device_choice_shows_what_detection_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    found = [DeviceChoice("cpu", "x86_64"), DeviceChoice("cuda:0", "NVIDIA H100")]
    monkeypatch.setattr(DeviceDetection, "run", lambda self: found)
    app = BntuiApp(AppSettings(runs_dir=tmp_path / "runs", data_dir=tmp_path / "data"))
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for(pilot, lambda: app.devices == found, "the detected devices")
        select = app.main.query_one("#field-device", Select)
        label = select.query_one("SelectCurrent #label")
        # The value stays "auto"; its label must still change from "detecting...".
        await wait_for(pilot, lambda: "auto (cuda:0)" in str(label.render()), "the label naming the GPU")
        assert select.value == "auto"
        shown = [str(option.prompt) for option in select.query_one("SelectOverlay", OptionList).options]
        assert shown == ["auto (cuda:0)", "cpu", "cuda:0 NVIDIA H100"]


async def test_a_configured_device_this_machine_lacks_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(DeviceDetection, "run", lambda self: [DeviceChoice("cpu", "x86_64")])
    notes: list[Notification] = []
    app = BntuiApp(AppSettings(runs_dir=tmp_path / "runs", data_dir=tmp_path / "data", device="cuda:1"))
    async with app.run_test(size=(140, 40), message_hook=collect_notifications(notes)) as pilot:
        await wait_for(pilot, lambda: bool(notes), "a message about the device")
        assert [note.message for note in notes] == [
            "device 'cuda:1' from the settings is not on this machine; using auto"
        ]
        assert app.main.query_one("#field-device", Select).value == "auto"
