"""The run list opens the analysis screens by keyboard: mark, compare, group, diagnostics,
export, and F2 cycles the theme (saved for next start)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from textual.notifications import Notification

from bntui.config import RunConfig
from bntui.settings import AppSettings
from bntui.store import import_runs
from bntui.tui.app import BntuiApp
from bntui.tui.devices import DeviceChoice
from bntui.tui.screens.compare import CompareScreen
from bntui.tui.screens.diagnostics import DiagnosticsScreen
from bntui.tui.screens.export_dialog import ExportDialog
from bntui.tui.screens.group import GroupScreen
from bntui.tui.widgets.run_table import RunTable
from tuihelpers import collect_notifications, wait_for, export_written

FIXTURE = Path(__file__).parents[1] / "fixtures" / "compare_runs"
DEVICES = [DeviceChoice("cpu", "x86_64")]


@pytest.fixture
def app(tmp_path: Path) -> BntuiApp:
    runs_dir = tmp_path / "runs"
    shutil.copytree(FIXTURE, runs_dir, ignore=shutil.ignore_patterns("*.py"))
    settings = AppSettings(runs_dir=runs_dir, data_dir=tmp_path / "data", theme="bntui-dark")
    return BntuiApp(settings, devices=DEVICES, poll_seconds=0.1, save_theme=True)


async def loaded(pilot, rows: int = 7) -> RunTable:
    table = pilot.app.main.runs
    for _ in range(200):
        if table.row_count == rows:
            break
        await pilot.pause(0.05)
    assert table.row_count == rows
    table.focus()
    await pilot.pause()
    return table


def select(table: RunTable, run_id: str) -> None:
    table.select_key(run_id)


async def test_mark_two_runs_and_compare_them(app):
    async with app.run_test(size=(140, 44)) as pilot:
        table = await loaded(pilot)
        select(table, "fx-bn-s0")
        await pilot.press("space")
        select(table, "fx-lr-nodiag")
        await pilot.press("space")
        assert table.marked == {"fx-bn-s0", "fx-lr-nodiag"}
        await pilot.press("c")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        assert [record.id for record in screen.records] == ["fx-bn-s0", "fx-lr-nodiag"]
        await pilot.press("escape")
        assert app.screen is app.main


async def test_group_key_marks_the_group_and_opens_its_card(app):
    async with app.run_test(size=(140, 44)) as pilot:
        table = await loaded(pilot)
        select(table, "fx-nobn-s1")
        await pilot.press("G")
        assert table.marked == {f"fx-{arm}-s{seed}" for arm in ("bn", "nobn") for seed in range(3)}
        await pilot.press("g")
        await pilot.pause()
        assert isinstance(app.screen, GroupScreen)
        assert len(app.screen.records) == 6
        await pilot.press("escape")
        await pilot.press("G")
        assert table.marked == set()


def footer_descriptions(screen) -> list[str]:
    """What the footer lists: the shown bindings of the screen's active binding chain."""
    return [active.binding.description for active in screen.active_bindings.values() if active.binding.show]


async def test_loss_acc_is_one_working_key_on_the_main_and_group_screens(app):
    async with app.run_test(size=(120, 44)) as pilot:  # below 130 columns: one plot at a time
        table = await loaded(pilot)
        app.main.query_one("#field-epochs").focus()  # a text field: ^g must still work
        await pilot.press("ctrl+g")
        assert app.main.has_class("show-accuracy")
        assert footer_descriptions(app.main).count("Loss/Acc") == 1

        table.focus()
        select(table, "fx-bn-s0")
        await pilot.press("g")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, GroupScreen)
        assert footer_descriptions(screen).count("Loss/Acc") == 1
        await pilot.press("ctrl+g")  # the main screen's key does the same here
        assert screen.view == "loss"
        await pilot.press("m")
        assert screen.view == "accuracy"
        assert app.main.has_class("show-accuracy")  # the main screen was left alone


@pytest.mark.parametrize(
    ("marked", "selected", "shown"),
    [
        ((), "fx-bn-s0", ["fx-bn-s0", "fx-nobn-s0"]),
        # marks are for compare and export: d follows the selected run and its twin
        (("fx-bn-s0", "fx-nobn-s0"), "fx-nobn-s2", ["fx-bn-s2", "fx-nobn-s2"]),
    ],
)
async def test_diagnostics_open_for_the_selected_run_and_its_twin(app, marked, selected, shown):
    async with app.run_test(size=(140, 44)) as pilot:
        table = await loaded(pilot)
        for run_id in marked:
            select(table, run_id)
            await pilot.press("space")
        select(table, selected)
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, DiagnosticsScreen)
        assert sorted(record.id for record in app.screen.records) == shown


async def test_landscape_opens_for_the_selected_run_and_its_twin(app):
    from bntui.tui.screens.landscape import LandscapeScreen

    async with app.run_test(size=(140, 44)) as pilot:
        table = await loaded(pilot)
        select(table, "fx-nobn-s2")
        await pilot.press("l")
        await pilot.pause()
        assert isinstance(app.screen, LandscapeScreen)
        assert [record.id for record in app.screen.records] == ["fx-bn-s2", "fx-nobn-s2"]  # BN left


def queue_without_scheduler(runs_dir, run_id: str) -> None:
    """Make `run_id` a queued run: its config alone, and a queue entry that no local scheduler
    takes (the app starts one for local entries): one for a cluster that has not started it."""
    from bntui.store.queue import LaunchSpec, write_entry

    write_entry(runs_dir, LaunchSpec(run_id=run_id, data_dir=runs_dir, backend="slurm"))


async def test_a_run_still_queued_when_compare_opened_joins_it_once_it_starts(tmp_path):
    runs_dir = tmp_path / "runs"
    shutil.copytree(FIXTURE, runs_dir, ignore=shutil.ignore_patterns("*.py", "fx-nobn-s1"))
    (runs_dir / "fx-nobn-s1").mkdir()
    shutil.copy(FIXTURE / "fx-nobn-s1" / "config.json", runs_dir / "fx-nobn-s1")
    queue_without_scheduler(runs_dir, "fx-nobn-s1")
    settings = AppSettings(runs_dir=runs_dir, data_dir=tmp_path / "data")
    app = BntuiApp(settings, devices=DEVICES, poll_seconds=0.1)
    async with app.run_test(size=(140, 44)) as pilot:
        table = await loaded(pilot, rows=7)
        assert app.session.views["fx-nobn-s1"].status == "queued"
        select(table, "fx-bn-s1")
        await pilot.press("c")  # the selected run and its twin, which has not started
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        assert [record.id for record in screen.records] == ["fx-bn-s1"]

        # It starts (and here, at once, ends): the store has its events now.
        from bntui.store.queue import withdraw

        withdraw(runs_dir, "fx-nobn-s1")
        shutil.copytree(FIXTURE / "fx-nobn-s1", runs_dir / "fx-nobn-s1", dirs_exist_ok=True)
        await wait_for(pilot, lambda: len(screen.records) == 2, "the started twin on the compare screen")
        assert sorted(record.id for record in screen.records) == ["fx-bn-s1", "fx-nobn-s1"]


async def test_a_run_removed_from_the_store_leaves_the_open_compare_screen(app):
    notes: list[Notification] = []
    async with app.run_test(size=(140, 44), message_hook=collect_notifications(notes)) as pilot:
        table = await loaded(pilot)
        select(table, "fx-bn-s0")
        await pilot.press("c")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, CompareScreen) and len(screen.records) == 2
        shutil.rmtree(app.settings.runs_dir / "fx-nobn-s0")  # `bntui rm` in another shell
        await wait_for(pilot, lambda: [r.id for r in screen.records] == ["fx-bn-s0"], "the removed run to go")
        assert any(note.message == "removed from the run store: fx-nobn-s0" for note in notes)

        shutil.rmtree(app.settings.runs_dir / "fx-bn-s0")  # the last one shown: back to the list
        await wait_for(pilot, lambda: app.screen is app.main, "the compare screen to close")


async def test_compare_on_a_run_that_has_not_started_says_so(tmp_path):
    from bntui.store.writer import reserve_run

    notes: list[Notification] = []
    runs_dir = tmp_path / "runs"
    queue_without_scheduler(runs_dir, reserve_run(runs_dir, RunConfig(), group=None))
    settings = AppSettings(runs_dir=runs_dir, data_dir=tmp_path / "data")
    app = BntuiApp(settings, devices=DEVICES, poll_seconds=0.1)
    async with app.run_test(size=(140, 44), message_hook=collect_notifications(notes)) as pilot:
        await wait_for(pilot, lambda: app.main.runs.row_count == 1, "the queued row")
        app.main.runs.focus()
        for key in ("c", "d", "l"):
            await pilot.press(key)
            await wait_for(pilot, lambda: bool(notes), f"a message for {key}")
            assert notes.pop().message == "Not started yet: open this again once the run is training."
            assert app.screen is app.main


async def test_export_marked_runs_writes_a_file_that_imports_back(app, tmp_path):
    target = tmp_path / "exported.json"
    async with app.run_test(size=(140, 44)) as pilot:
        table = await loaded(pilot)
        for run_id in ("fx-bn-s2", "fx-nobn-s2"):
            select(table, run_id)
            await pilot.press("space")
        await pilot.press("e")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, ExportDialog)
        from textual.widgets import Input

        field = dialog.query_one(Input)
        field.value = str(target)
        await pilot.press("enter")
        await export_written(pilot)
        assert app.screen is app.main
    report = import_runs(tmp_path / "fresh", target)
    assert sorted(source for source, _ in report.imported) == ["fx-bn-s2", "fx-nobn-s2"]
    assert not report.rejected


async def test_f2_cycles_bntui_themes_and_saves_the_choice(app):
    from bntui.settings import AppSettings as Fresh

    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        names = list(app.themes_catalog.themes)
        await pilot.press("f2")
        await pilot.pause()
        assert app.theme == names[(names.index("bntui-dark") + 1) % len(names)]
    assert Fresh().theme == app.theme


async def test_f3_loads_the_paper_figure_1_preset(app):
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        await pilot.press("f3")
        await pilot.pause()
        reading = app.main.form.read()
        assert not reading.errors
        fields = reading.fields
        assert (fields.dataset, fields.hidden_sizes, fields.activation) == ("mnist-mini", [100, 100, 100], "sigmoid")
        assert (fields.batch_size, fields.optimizer, fields.sgd_momentum, fields.diagnostics_every) == (
            60,
            "sgd",
            0.0,
            10,
        )
        assert (reading.bn, reading.seeds) == ("both", 1)
        assert app.main.form.value("diagnostics_every") == "10"  # shown in its field


async def test_f2_says_when_an_environment_variable_will_override_the_saved_theme(app, monkeypatch):
    monkeypatch.setenv("BNTUI_THEME", "nord")
    notes: list[Notification] = []
    async with app.run_test(size=(120, 40), message_hook=collect_notifications(notes)) as pilot:
        await loaded(pilot)
        await pilot.press("f2")
        await wait_for(pilot, lambda: any("BNTUI_THEME" in note.message for note in notes), "the warning")
    [warning] = [note for note in notes if "BNTUI_THEME" in note.message]
    assert warning.message == "theme saved, but BNTUI_THEME=nord is set and wins at the next start"


async def test_starting_the_app_writes_no_config_file(app):
    from bntui.settings import default_config_file

    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        await pilot.pause(0.3)
    assert not default_config_file().exists()
