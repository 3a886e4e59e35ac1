"""The TUI refuses bad settings, survives trainers that crash, and asks before quitting."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from textual.notifications import Notification
from textual.pilot import Pilot
from textual.widgets import Button, Input, Static

from bntui.settings import AppSettings
from bntui.store import list_runs
from bntui.tui.app import BntuiApp
from bntui.tui.devices import DeviceChoice
from bntui.tui.adapters import being_removed
from bntui.tui.screens.confirm_quit import ConfirmQuitScreen
from bntui.tui.widgets.progress_line import ProgressLine
from tuihelpers import collect_notifications, wait_for

CPU_ONLY = [DeviceChoice("cpu", "test CPU")]


def make_app(tmp_path: Path) -> BntuiApp:
    # pack off: these tests follow a queue of separate runs (a BN on/off pair would be one pack)
    settings = AppSettings(runs_dir=tmp_path / "runs", data_dir=tmp_path / "data", pack="off")
    return BntuiApp(settings, devices=CPU_ONLY, poll_seconds=0.2)


def views(app: BntuiApp) -> list:
    return list(app.session.views.values())


async def shows(pilot: Pilot, label: Static, text: str) -> None:
    """Validation runs after the next refresh: wait for it rather than assume it ran."""
    await wait_for(pilot, lambda: text in str(label.render()), f"{text!r} next to the field")


async def set_field(pilot: Pilot, name: str, text: str) -> None:
    field = pilot.app.screen.query_one(f"#field-{name}", Input)
    field.focus()
    field.value = ""
    await pilot.press(*text)
    await pilot.pause()


async def test_invalid_learning_rate_shows_its_message_and_does_not_start(tmp_path: Path) -> None:
    notes: list[Notification] = []
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30), message_hook=collect_notifications(notes)) as pilot:
        error = app.screen.query_one("#error-lr", Static)
        start = app.screen.query_one("#start", Button)
        for text, expected in (("abc", "valid number"), ("-1", "greater than 0")):
            await set_field(pilot, "lr", text)
            await shows(pilot, error, expected)
            assert start.disabled
            await pilot.press("ctrl+r")
            await pilot.pause()
            assert not app.session.views
            assert notes[-1].severity == "error" and "lr: " in notes[-1].message
        await set_field(pilot, "lr", "0.01")
        await wait_for(pilot, lambda: str(error.render()) == "", "the lr error to clear")
        assert not start.disabled


async def test_batch_size_one_with_batchnorm_is_refused_next_to_the_field(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await set_field(pilot, "batch_size", "1")
        await shows(pilot, app.screen.query_one("#error-batch_size", Static), "at least 2")
        await pilot.press("ctrl+r")
        assert not app.session.views


async def test_seeds_that_would_pass_the_largest_seed_are_refused_next_to_the_seeds_field(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await set_field(pilot, "seed", "2147483647")
        await set_field(pilot, "seeds", "2")
        error = app.screen.query_one("#error-seeds", Static)
        await shows(pilot, error, "start at seed 2147483646 or lower")
        assert str(app.screen.query_one("#error-seed", Static).render()) == ""  # the seed is fine
        await pilot.press("ctrl+r")
        assert not app.session.views
        await set_field(pilot, "seeds", "1")
        await wait_for(pilot, lambda: str(error.render()) == "", "the error to clear")


async def test_a_field_that_does_not_apply_cannot_block_a_start(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await set_field(pilot, "hidden_sizes", "abc")
        error = app.screen.query_one("#error-hidden_sizes", Static)
        await shows(pilot, error, "comma-separated positive integers")
        app.main.form.set_value("arch", "lenet5")  # hidden sizes are for the MLP only
        await wait_for(pilot, lambda: str(error.render()) == "", "the hidden sizes error to clear")
        reading = app.main.form.read()
        assert not reading.errors and reading.fields.arch == "lenet5"
        start = app.screen.query_one("#start", Button)
        await wait_for(pilot, lambda: not start.disabled, "the start button to be enabled")


async def test_a_negative_diagnostics_interval_is_refused_next_to_the_field(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        field = app.screen.query_one("#field-diagnostics_every", Input)
        assert field.value == "25"  # the model's default, shown
        await set_field(pilot, "diagnostics_every", "-5")
        error = app.screen.query_one("#error-diagnostics_every", Static)
        await shows(pilot, error, "greater than or equal to 0")
        await pilot.press("ctrl+r")
        assert not app.session.views
        await set_field(pilot, "diagnostics_every", "0")  # 0 turns them off: allowed
        await wait_for(pilot, lambda: str(error.render()) == "", "the error to clear")
        assert app.main.form.read().fields.diagnostics_every == 0


async def test_each_norm_reads_only_its_own_parameters_and_their_errors(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 40)) as pilot:
        form = app.main.form

        def shown() -> set[str]:
            """The norm fields not greyed (a greyed one keeps its row and its place)."""
            names = (
                "norm_groups",
                "ghost_batch_size",
                "renorm_rmax",
                "renorm_dmax",
                "renorm_warmup_steps",
                "bn_momentum",
            )
            return {n for n in names if not app.screen.query_one(f"#field-{n}").has_class("-not-applicable")}

        assert shown() == {"bn_momentum"}  # BatchNorm: momentum only
        form.set_value("norm", "group")
        await wait_for(pilot, lambda: shown() == {"norm_groups"}, "the groups field alone")
        await set_field(pilot, "hidden_sizes", "64")
        await set_field(pilot, "norm_groups", "7")
        error = app.screen.query_one("#error-norm_groups", Static)
        await shows(pilot, error, "7 does not divide layer fc1's width 64")
        await pilot.press("ctrl+r")
        assert not app.session.views  # refused
        form.set_value("norm", "ghost")  # groups do not apply: their error goes with them
        await wait_for(pilot, lambda: str(error.render()) == "", "the groups error to clear")
        assert shown() == {"ghost_batch_size", "bn_momentum"}
        form.set_value("norm", "renorm")
        await wait_for(pilot, lambda: "renorm_rmax" in shown(), "the renorm fields")
        assert shown() == {"renorm_rmax", "renorm_dmax", "renorm_warmup_steps", "bn_momentum"}
        await set_field(pilot, "renorm_rmax", "0.5")
        await shows(pilot, app.screen.query_one("#error-renorm_rmax", Static), "greater than or equal to 1")
        await set_field(pilot, "renorm_rmax", "2")
        await wait_for(pilot, lambda: not form.read().errors, "no errors")
        fields = form.read().fields
        assert (fields.norm, fields.renorm_rmax) == ("renorm", 2.0)


async def long_runs(pilot: Pilot) -> None:
    """Both arms of one seed, training far longer than any test waits."""
    await set_field(pilot, "seeds", "1")
    await set_field(pilot, "epochs", "500")
    await set_field(pilot, "hidden_sizes", "16")
    await pilot.press("ctrl+r")
    await wait_for(
        pilot,
        lambda: [v.status for v in views(pilot.app)] == ["running", "queued"],
        "one run training and one queued",
        timeout=120,
    )


async def test_a_trainer_killed_mid_run_is_reported_as_crashed_and_the_app_carries_on(tmp_path: Path) -> None:
    notes: list[Notification] = []
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30), message_hook=collect_notifications(notes)) as pilot:
        await long_runs(pilot)
        first = views(app)[0]
        os.kill(app.session.stored[first.key].owner.pid, signal.SIGKILL)  # as the OOM killer would
        await wait_for(pilot, lambda: app.session.views[first.key].status == "crashed", "the crash", timeout=60)
        crashes = [note for note in notes if note.title == "Run crashed"]
        assert crashes and "the trainer ended without a final status" in crashes[0].message
        # The queue goes on: the run behind it starts.
        await wait_for(pilot, lambda: views(app)[1].status == "running", "the next run to start", timeout=120)
        assert app.is_running


async def test_the_start_button_launches_and_a_failed_run_is_reported(tmp_path: Path) -> None:
    notes: list[Notification] = []
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 50), message_hook=collect_notifications(notes)) as pilot:
        app.main.form.set_value("dataset", "cifar10")  # not in the empty data dir: each run fails
        app.main.form.set_value("seeds", "1")  # one BN / no-BN pair
        start = app.screen.query_one("#start", Button)
        # The form validates after its first refresh and enables Start then: under load, later.
        await wait_for(pilot, lambda: not start.disabled, "the Start button to be enabled")
        start.scroll_visible(animate=False)  # after the dataset line grew: the button moved down
        await pilot.pause()
        assert await pilot.click(start)  # the Start button does what ctrl+r does
        await wait_for(
            pilot,
            lambda: [v.status for v in views(app)] == ["failed", "failed"],
            "both runs of the launch to fail",
            timeout=120,
        )
        failures = [note for note in notes if note.title == "Run failed"]
        assert len(failures) == 2 and all("cifar-10-batches-py" in note.message for note in failures)


async def test_quit_asks_whether_to_leave_the_runs_running_and_they_go_on(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await long_runs(pilot)
        await pilot.press("ctrl+q", "ctrl+q")  # pressed twice: still one question
        assert isinstance(app.screen, ConfirmQuitScreen)
        assert sum(isinstance(screen, ConfirmQuitScreen) for screen in app.screen_stack) == 1
        await pilot.press("n")
        assert not isinstance(app.screen, ConfirmQuitScreen) and app.is_running

        await pilot.press("ctrl+q")
        await pilot.press("enter")  # the default: leave them running
        await wait_for(pilot, lambda: not app.is_running, "the app to quit")
    # The app is gone; its runs are not.
    time.sleep(1.0)
    assert [run.status for run in list_runs(tmp_path / "runs")] == ["running", "queued"]


async def test_quit_can_stop_the_runs(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await long_runs(pilot)
        await pilot.press("ctrl+q")
        pressing = asyncio.ensure_future(pilot.press("s"))  # the app quits while handling it
        deadline = time.monotonic() + 30
        while app.is_running and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        pressing.cancel()
        assert not app.is_running
    deadline = time.monotonic() + 60
    while any(run.active for run in list_runs(tmp_path / "runs")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [run.status for run in list_runs(tmp_path / "runs")] == ["cancelled", "cancelled"]


async def test_a_redraw_tick_while_the_app_shuts_down_is_skipped(tmp_path: Path) -> None:
    """At exit Textual removes the widgets one await at a time and the redraw timer keeps
    ticking in between; a tick that found the progress line gone once crashed the exit. Here a
    widget on the main screen ticks as it is removed, in the middle of the shutdown."""
    app = make_app(tmp_path)
    skipped: list[bool] = []

    class TicksWhenRemoved(Static):
        def on_unmount(self) -> None:
            skipped.append(being_removed(app.main))
            app._redraw()
            app.on_data_table_row_highlighted()

    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: bool(app.main.query(ProgressLine)), "the main screen")
        await app.main.mount(TicksWhenRemoved())
    assert skipped == [True]  # the ticks ran during the shutdown, and nothing raised


async def test_a_screen_being_removed_counts_as_removed(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        label = Static("a widget of this test's own: the app's timers never look for it")
        assert being_removed(label)  # not mounted yet
        await app.main.mount(label)
        assert not being_removed(label) and not being_removed(app.main)
        removal = label.remove()
        assert being_removed(label)  # at once, before the removal has finished
        await removal
        assert being_removed(label) and not being_removed(app.main)


async def test_group_keys_on_an_empty_run_list_say_that_no_run_is_selected(tmp_path: Path) -> None:
    notes: list[Notification] = []
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30), message_hook=collect_notifications(notes)) as pilot:
        app.main.runs.focus()
        for key in ("g", "G"):
            await pilot.press(key)
            await wait_for(pilot, lambda: bool(notes), f"a message for {key}")
            assert notes.pop().message == "No run is selected: start runs with ^r first."


async def test_a_runs_dir_that_is_a_file_refuses_the_start_in_one_message(tmp_path: Path) -> None:
    (tmp_path / "runs").write_text("not a folder")
    notes: list[Notification] = []
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30), message_hook=collect_notifications(notes)) as pilot:
        await pilot.press("ctrl+r")
        await pilot.pause()
        refusals = [note for note in notes if note.title == "Cannot start"]
        assert [note.message for note in refusals] == [f"runs dir {tmp_path / 'runs'} is a file, not a folder"]
        assert not app.session.views
    assert (tmp_path / "runs").read_text() == "not a folder"


async def test_the_backend_choice_appears_only_with_slurm_and_reaches_the_launch(tmp_path: Path, monkeypatch) -> None:
    async with make_app(tmp_path).run_test(size=(100, 50)) as pilot:
        assert not pilot.app.screen.query("#field-backend")  # no sbatch: nothing to choose

    notes: list[Notification] = []
    settings = AppSettings(runs_dir=tmp_path / "runs", data_dir=tmp_path / "data")
    app = BntuiApp(settings, devices=CPU_ONLY, backends=("local", "slurm"), poll_seconds=0.2)
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))  # the cluster's tools went away since
    async with app.run_test(size=(100, 50), message_hook=collect_notifications(notes)) as pilot:
        app.main.form.set_value("backend", "slurm")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: any(note.title == "Cannot start" for note in notes), "the refusal")
        (refusal,) = [note for note in notes if note.title == "Cannot start"]
        assert refusal.message.startswith("--backend slurm: sbatch is not on PATH")
        assert not app.session.views and list_runs(tmp_path / "runs") == []
