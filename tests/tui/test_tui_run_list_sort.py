"""The run list sorts: `s` goes through the columns (best first), `S` turns the order around, a
click on a header sorts by it; the order holds as runs come and change, and the cursor stays
on its run."""

from __future__ import annotations

import time
from pathlib import Path

from bntui.config import RunConfig
from bntui.engine.events import EpochEnded, RunFinished, RunStarted
from bntui.settings import AppSettings
from bntui.store import RunWriter
from bntui.tui.app import BntuiApp
from bntui.tui.devices import DeviceChoice
from tuihelpers import wait_for


def make_app(tmp_path: Path) -> BntuiApp:
    settings = AppSettings(runs_dir=tmp_path / "runs", data_dir=tmp_path / "data")
    return BntuiApp(settings, devices=[DeviceChoice("cpu", "CPU")], poll_seconds=0.05)


def ended_run(runs_dir: Path, seed: int, test_accuracy: float, val_loss: float) -> str:
    writer = RunWriter(runs_dir, RunConfig(epochs=1, hidden_sizes=[8], seed=seed))
    writer.write_event(RunStarted("cpu", "CPU", "2", 10, 5, 1, 40, 10, 10, "h", time.time()))
    writer.write_event(EpochEnded(1, 5, 1.0, val_loss, 0.5, 0.45, 0.1, 0.1))
    writer.write_event(RunFinished(0.8, 0.6, val_loss, 0.45, 0.9, test_accuracy, 5, 0.2, 0.3))
    writer.finish()
    return writer.run_id


def order(app: BntuiApp) -> list[str]:
    table = app.main.runs
    return [table.coordinate_to_cell_key((row, 0)).row_key.value or "" for row in range(table.row_count)]


async def test_s_sorts_the_run_list_best_first_and_new_runs_take_their_place(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    low = ended_run(runs_dir, seed=1, test_accuracy=0.50, val_loss=0.9)
    high = ended_run(runs_dir, seed=2, test_accuracy=0.90, val_loss=0.3)
    middle = ended_run(runs_dir, seed=3, test_accuracy=0.70, val_loss=0.5)
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        table = app.main.runs
        await wait_for(pilot, lambda: table.row_count == 3, "the three runs")
        assert order(app) == [low, high, middle]  # the store's order: oldest first
        table.focus()
        table.select_key(middle)
        await pilot.press("s")  # test accuracy, the highest first
        await pilot.pause()
        assert order(app) == [high, middle, low]
        assert table.selected_key == middle  # the cursor stayed on its run
        assert "by test acc ↓" in str(table.border_title)

        await pilot.press("S")  # the lowest first
        await pilot.pause()
        assert order(app) == [low, middle, high]
        await pilot.press("S")

        # A run that comes in takes its place in the order, not the end of the list.
        best = ended_run(runs_dir, seed=4, test_accuracy=0.95, val_loss=0.4)
        await wait_for(pilot, lambda: table.row_count == 4, "the new run")
        await pilot.pause(0.3)
        assert order(app) == [best, high, middle, low]

        await pilot.press("s", "s")  # val acc (all equal: stable), then val loss, the lowest first
        await pilot.pause()
        assert order(app) == [high, best, middle, low]
        assert "by val loss ↑" in str(table.border_title)  # the arrow: values going up


async def test_a_click_on_a_header_sorts_by_it_and_a_second_turns_it_around(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    seeds = [ended_run(runs_dir, seed=seed, test_accuracy=0.5, val_loss=0.5) for seed in (3, 1, 2)]
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        table = app.main.runs
        await wait_for(pilot, lambda: table.row_count == 3, "the runs")
        table.sort_by("seed")  # what a click on the "seed" header does
        await pilot.pause()
        assert order(app) == [seeds[1], seeds[2], seeds[0]]
        assert str(table.border_title) == "Runs · by seed ↑"
        header = table.columns[next(key for key in table.columns if key.value == "seed")]
        table.post_message(table.HeaderSelected(table, header.key, table.get_column_index("seed"), header.label))
        await pilot.pause()
        assert order(app) == [seeds[0], seeds[2], seeds[1]]
        assert str(table.border_title) == "Runs · by seed ↓"
        table.sort_by("run")  # the store's order again
        await pilot.pause()
        assert order(app) == seeds and str(table.border_title) == "Runs"
