"""The TUI's side of sweeps: the form's list syntax, the run count, the large-grid question."""

from __future__ import annotations

from pathlib import Path

import pytest
from sweephelpers import make_lr_sweep
from tuihelpers import plots_drawn
from textual.app import App
from textual.widgets import Button, Input

from bntui.settings import AppSettings
from bntui.store import list_runs
from bntui.store.annotations import read_annotations
from bntui.tui.app import BntuiApp
from bntui.tui.devices import DeviceChoice
from bntui.tui.screens.confirm_launch import ConfirmLaunchScreen
from bntui.tui.screens.run_filter import AnnotateScreen, FilterScreen
from bntui.tui.screens.sweep import SweepScreen

CPU_ONLY = [DeviceChoice("cpu", "test CPU")]


def make_app(tmp_path: Path) -> BntuiApp:
    settings = AppSettings(runs_dir=tmp_path / "runs", data_dir=tmp_path / "data")
    return BntuiApp(settings, devices=CPU_ONLY, poll_seconds=0.2)


def capture_launches(app: BntuiApp) -> list:
    plans: list = []
    app._start_launch = lambda plan, options: plans.append(plan)  # no trainer in these tests
    return plans


async def set_field(pilot, name: str, text: str) -> None:
    field = pilot.app.screen.query_one(f"#field-{name}", Input)
    field.value = text
    await pilot.pause()
    pilot.app.main.form.validate_now()  # as the debounced validation will (no race on a busy machine)
    await pilot.pause()


async def test_a_list_in_a_field_is_a_grid_and_the_button_counts_its_runs(tmp_path):
    app = make_app(tmp_path)
    plans = capture_launches(app)
    async with app.run_test(size=(120, 40)) as pilot:
        start = app.screen.query_one("#start", Button)
        assert str(start.label) == "Start  ^r"  # no grid: the label is as ever
        await set_field(pilot, "lr", "0.01, 0.1")
        await set_field(pilot, "seeds", "2")
        assert str(start.label) == "Start 8 runs  ^r" and not start.disabled  # bn both x 2 seeds x 2 rates
        await pilot.press("ctrl+r")
        await pilot.pause()
        (plan,) = plans
        assert [(c.lr, c.seed, c.bn) for c in plan.configs] == [
            (lr, seed, bn) for lr in (0.01, 0.1) for seed in (0, 1) for bn in (True, False)
        ]
        assert plan.group is not None


async def test_a_bad_value_in_a_list_is_shown_under_its_field(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await set_field(pilot, "lr", "0.01,-1")
        error = str(app.screen.query_one("#error-lr").render())
        assert "-1: must be greater than 0" in error
        assert app.screen.query_one("#start", Button).disabled


async def test_a_grid_over_the_limit_asks_first(tmp_path):
    app = make_app(tmp_path)
    plans = capture_launches(app)
    async with app.run_test(size=(120, 40)) as pilot:
        await set_field(pilot, "seeds", "1")
        await set_field(pilot, "lr", ",".join(f"{0.001 * (i + 1):g}" for i in range(251)))
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmLaunchScreen) and app.screen.count == 502
        await pilot.press("n")
        await pilot.pause()
        assert plans == []
        await pilot.press("ctrl+r")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert len(plans) == 1 and len(plans[0].configs) == 502


# -- the sweep view --------------------------------------------------------------------------


class SweepApp(App):
    def __init__(self, records) -> None:
        super().__init__()
        self.records = records

    def on_mount(self) -> None:
        self.push_screen(SweepScreen(self.records))


@pytest.fixture
def sweep_app(tmp_path, monkeypatch) -> SweepApp:
    monkeypatch.setenv("BNTUI_THEME_DIR", str(tmp_path / "no-user-themes"))
    monkeypatch.delenv("NO_COLOR", raising=False)
    make_lr_sweep(tmp_path / "runs")
    records = sorted(
        (run.record for run in list_runs(tmp_path / "runs")),
        key=lambda r: (r.config.lr, r.config.seed, not r.config.bn),
    )
    return SweepApp(records)


def test_sweep_view_at_80x24(sweep_app, snap_compare) -> None:
    assert snap_compare(sweep_app, terminal_size=(80, 24), run_before=plots_drawn)


def test_sweep_view_at_160x48(sweep_app, snap_compare) -> None:
    assert snap_compare(sweep_app, terminal_size=(160, 48), run_before=plots_drawn)


async def test_sweep_view_shows_each_rate_and_the_diverged_runs(sweep_app) -> None:
    async with sweep_app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        screen = sweep_app.screen
        assert isinstance(screen, SweepScreen)
        status = str(screen.query_one("#sweep-status").render())
        assert "lr" in status and "diverged runs: 3" in status
        table = screen.summary
        assert [p.values[0] for p in table.points] == [0.001, 0.01, 0.1, 1.0]
        await pilot.press("m")
        assert screen.metric == "best_val_loss" and screen.summary.metric == "best_val_loss"


async def test_g_on_a_sweep_group_opens_the_sweep_view(tmp_path) -> None:
    make_lr_sweep(tmp_path / "runs", seeds=1)
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(200):
            if app.main.runs.row_count == 8:
                break
            await pilot.pause(0.05)
        app.main.runs.focus()
        await pilot.press("g")
        await pilot.pause()
        assert isinstance(app.screen, SweepScreen)


# -- the run list's filter, tags and notes ---------------------------------------------------


async def loaded(pilot, app, rows: int) -> None:
    for _ in range(200):
        if app.main.runs.row_count == rows:
            return
        await pilot.pause(0.05)
    raise AssertionError(f"{app.main.runs.row_count} rows, not {rows}")


async def test_slash_filters_the_run_list_live_with_one_line_errors(tmp_path) -> None:
    make_lr_sweep(tmp_path / "runs", seeds=1)  # 4 rates x BN on/off
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app, 8)
        app.main.runs.focus()
        await pilot.press("slash")
        await pilot.pause()
        assert isinstance(app.screen, FilterScreen)
        await pilot.press(*"bn=on lr>=0.1")
        await pilot.pause(0.3)
        assert app.main.runs.row_count == 2  # lr 0.1 and 1, BN on
        await pilot.press(*" lr<x")
        await pilot.pause(0.3)
        assert "lr takes a number" in str(app.screen.query_one("#filter-error").render())
        assert app.main.runs.row_count == 2  # a bad query leaves the list as it was
        for _ in range(5):
            await pilot.press("backspace")
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert not isinstance(app.screen, FilterScreen) and app.main.runs.row_count == 2
        assert "filter: bn=on lr>=0.1" in str(app.main.runs.border_title)
        await pilot.press("slash")
        await pilot.press(*["backspace"] * 20, "enter")
        await pilot.pause(0.3)
        assert app.main.runs.row_count == 8


async def test_t_tags_and_n_notes_the_selected_run_and_the_filter_sees_tags(tmp_path) -> None:
    make_lr_sweep(tmp_path / "runs", seeds=1)
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app, 8)
        app.main.runs.focus()
        selected = app.main.runs.selected_key
        await pilot.press("t")
        await pilot.pause()
        assert isinstance(app.screen, AnnotateScreen)
        await pilot.press(*"paper best", "enter")
        for _ in range(100):
            if not isinstance(app.screen, AnnotateScreen):
                break
            await pilot.pause(0.05)
        path = app.session.stored[selected].path
        assert read_annotations(path).tags == ["best", "paper"]
        await pilot.press("n")
        await pilot.pause()
        await pilot.press(*"a good run", "enter")
        for _ in range(100):
            if not isinstance(app.screen, AnnotateScreen):
                break
            await pilot.pause(0.05)
        assert read_annotations(path).note == "a good run"
        await pilot.press("slash")
        await pilot.pause(0.5)  # the tags load in a worker
        await pilot.press(*"tag:paper", "enter")
        await pilot.pause(0.3)
        assert app.main.runs.row_count == 1 and app.main.runs.selected_key == selected
