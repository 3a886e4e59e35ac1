"""End-to-end tests of the TUI with real (detached) trainer processes training tiny runs on
mnist-mini. The TUI sees its own runs only through the store, like any other view."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from textual.notifications import Notification
from textual.pilot import Pilot
from textual.widgets import Input, OptionList, Select

from bntui.settings import AppSettings
from bntui.store import list_runs
from bntui.tui.app import BntuiApp
from bntui.tui.devices import DeviceChoice
from bntui.tui.widgets.metric_plot import MetricPlot
from tuihelpers import collect_notifications, wait_for as wait_briefly

pytestmark = pytest.mark.slow

CPU_ONLY = [DeviceChoice("cpu", "test CPU")]
# Real trainers on a busy 2-core machine: waits are generous.
wait_for = functools.partial(wait_briefly, timeout=120, step=0.1)


def make_app(tmp_path: Path, **kwargs) -> BntuiApp:
    settings = AppSettings(runs_dir=tmp_path / "runs", data_dir=tmp_path / "data")
    return BntuiApp(settings, devices=CPU_ONLY, poll_seconds=0.2, **kwargs)


async def type_into(pilot: Pilot, name: str, text: str) -> None:
    field = pilot.app.screen.query_one(f"#field-{name}", Input)
    field.focus()
    field.value = ""
    await pilot.press(*text)


async def choose(pilot: Pilot, name: str, value: str) -> None:
    """Pick an option of a Select with the keyboard, as a user would."""
    select = pilot.app.screen.query_one(f"#field-{name}", Select)
    select.focus()
    await pilot.press("enter")
    await wait_for(pilot, lambda: select.expanded, "the option list to open", timeout=10)
    await pilot.pause()
    # The form's choices are shown as their values: find them in the list as a user would.
    shown = [str(option.prompt) for option in select.query_one("SelectOverlay", OptionList).options]
    steps = shown.index(value) - shown.index(str(select.value))
    await pilot.press(*(["down"] * steps if steps > 0 else ["up"] * -steps), "enter")
    await wait_for(pilot, lambda: select.value == value, f"{name} to become {value}", timeout=10)


async def tiny_run_settings(pilot: Pilot, epochs: int = 2) -> None:
    await type_into(pilot, "epochs", str(epochs))
    await type_into(pilot, "hidden_sizes", "16")
    await type_into(pilot, "batch_size", "256")


def session_views(app: BntuiApp) -> list:
    return list(app.session.views.values())


async def test_train_a_tiny_run_from_the_panes(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        info = app.screen.query_one("#dataset-info")
        await choose(pilot, "dataset", "fashion-mnist")
        assert "missing" in str(info.render())  # nothing in the empty data dir
        await choose(pilot, "dataset", "mnist-mini")
        assert "built in" in str(info.render())
        await choose(pilot, "bn", "on")
        await tiny_run_settings(pilot, epochs=2)

        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: len(app.session.views) == 1, "the run to appear from the store")
        (view,) = session_views(app)
        assert view.status in ("queued", "running")
        await wait_for(pilot, lambda: session_views(app)[0].status == "finished", "the run to finish")
        await pilot.pause(0.5)  # one more redraw tick

        (view,) = session_views(app)
        loss_plot = app.screen.query_one("#loss-plot", MetricPlot)
        epoch_curves = [c for c in loss_plot.curves if not c.scatter]
        assert [c.label for c in epoch_curves] == ["train", "val"]
        assert all(c.xs == [1.0, 2.0] for c in epoch_curves)

        table = app.screen.query_one("#runs")
        assert app.main.runs.selected_key == view.key  # the launch's first run is selected
        row = [str(cell) for cell in table.get_row(view.key)]
        assert "finished" in row and "2/2" in row and view.run_id in row

        stored = list_runs(tmp_path / "runs")
        assert [(run.id, run.status) for run in stored] == [(view.run_id, "finished")]
        assert stored[0].record.config.bn is True
        assert stored[0].record.config.hidden_sizes == [16]
        assert len(stored[0].record.history) == 2


async def test_stop_takes_a_queued_run_off_the_queue_and_stops_a_running_one(tmp_path: Path) -> None:
    settings = AppSettings(runs_dir=tmp_path / "runs", data_dir=tmp_path / "data", pack="off")  # not one pack
    app = BntuiApp(settings, devices=CPU_ONLY, poll_seconds=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        await choose(pilot, "bn", "both")  # two runs: the second waits for the first (one CPU)
        await type_into(pilot, "seeds", "1")
        await tiny_run_settings(pilot, epochs=500)
        await pilot.press("ctrl+r")
        await wait_for(
            pilot,
            lambda: [v.status for v in session_views(app)] == ["running", "queued"],
            "one run training and one queued",
        )
        first, second = session_views(app)

        table = app.screen.query_one("#runs")
        table.focus()
        table.select_key(second.key)
        await pilot.press("x")  # the run list's own key for stopping
        await wait_for(
            pilot, lambda: app.session.views[second.key].status == "cancelled", "the queued run to be cancelled"
        )

        await wait_for(pilot, lambda: app.session.views[first.key].epochs_done >= 1, "a first epoch")
        table.select_key(first.key)
        await pilot.press("ctrl+t")
        await wait_for(
            pilot, lambda: app.session.views[first.key].status == "cancelled", "the running run to stop", timeout=60
        )

        stored = {run.id: run for run in list_runs(tmp_path / "runs")}
        assert stored[first.key].status == stored[second.key].status == "cancelled"
        assert len(stored[first.key].record.history) >= 1  # the completed epochs are kept
        assert len(stored[second.key].record.history) == 0  # it never trained


async def test_missing_dataset_is_reported_and_the_app_carries_on(tmp_path: Path) -> None:
    notes: list[Notification] = []
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30), message_hook=collect_notifications(notes)) as pilot:
        await choose(pilot, "dataset", "mnist")  # the data dir is empty
        await choose(pilot, "bn", "on")
        await tiny_run_settings(pilot)
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: [v.status for v in session_views(app)] == ["failed"], "the run to fail")

        errors = [note for note in notes if note.severity == "error"]
        assert errors and "mnist" in errors[0].message.lower()
        (stored,) = list_runs(tmp_path / "runs")
        assert stored.status == "failed"
        assert app.is_running
        await choose(pilot, "dataset", "mnist-mini")  # still usable
