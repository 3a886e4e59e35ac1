"""Runs written by another process (a headless `bntui run`) show up in the run list and update;
every action can be found and run from the command palette."""

from __future__ import annotations

import time
from pathlib import Path


from bntui.config import RunConfig
from bntui.engine.events import EpochEnded, RunFinished, RunStarted
from bntui.settings import AppSettings
from bntui.store import RunWriter
from bntui.tui.app import BntuiApp
from bntui.tui.devices import DeviceChoice
from bntui.tui.keys import KEYMAP
from tuihelpers import wait_for


def make_app(tmp_path: Path) -> BntuiApp:
    settings = AppSettings(runs_dir=tmp_path / "runs", data_dir=tmp_path / "data")
    return BntuiApp(settings, devices=[DeviceChoice("cpu", "CPU")], poll_seconds=0.05)


def row(app: BntuiApp, key: str) -> list[str]:
    return [str(cell) for cell in app.main.runs.get_row(key)]


async def test_a_run_written_by_another_process_appears_and_updates(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        writer = RunWriter(tmp_path / "runs", RunConfig(epochs=2, hidden_sizes=[8]))
        writer.write_event(RunStarted("cpu", "CPU", "2", 10, 5, 2, 40, 10, 10, "h", time.time()))
        key = writer.run_id
        await wait_for(pilot, lambda: key in app.session.views and app.main.runs.row_count == 1, "the new run")
        assert app.session.views[key].status == "running"

        writer.write_event(EpochEnded(1, 5, 1.0, 1.1, 0.5, 0.45, 0.1, 0.1))
        await wait_for(pilot, lambda: "1/2" in row(app, key), "the first epoch in the run list")

        writer.write_event(EpochEnded(2, 10, 0.8, 0.9, 0.6, 0.55, 0.1, 0.2))
        writer.write_event(RunFinished(0.8, 0.6, 0.9, 0.55, 0.95, 0.5, 10, 0.2, 0.3))
        writer.finish()
        await wait_for(pilot, lambda: "finished" in row(app, key), "the finished run")
        assert "2/2" in row(app, key) and "50.0%" in row(app, key)
        assert app.main.plots[0].curves  # the only run is selected and plotted

        # A run that has ended cannot be stopped: the app says so, nothing breaks.
        await pilot.press("ctrl+t")
        assert app.session.views[key].status == "finished"


async def test_the_command_palette_lists_and_runs_every_action(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.press(*"Loss/Acc")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert app.main.has_class("show-accuracy")

        from bntui.tui.commands import ActionsProvider

        provider = ActionsProvider(app.main)
        hits = [hit async for hit in provider.discover()]
        assert len(hits) == len({key.action for key in KEYMAP})  # one entry per action
