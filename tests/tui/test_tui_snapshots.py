"""Snapshots of the main screen with two finished runs (a BN / no-BN pair) from the fixture store.

Everything on screen comes from committed files or is fixed here: the runs (tests/fixtures/runs),
the device list, the theme (no user theme folder, no config file). Regenerate after a deliberate
change with `pytest tests/tui/test_tui_snapshots.py --snapshot-update` and look at the SVGs."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot

from bntui.settings import AppSettings
from bntui.tui.app import BntuiApp
from bntui.tui.devices import DeviceChoice
from bntui.tui.widgets.metric_plot import MetricPlot
from bntui.tui.widgets.run_table import RunTable

FIXTURE_RUNS = Path(__file__).parents[1] / "fixtures" / "runs"
DEVICES = [DeviceChoice("cpu", "x86_64"), DeviceChoice("cuda:0", "NVIDIA H100 80GB HBM3")]


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> BntuiApp:
    monkeypatch.setenv("BNTUI_THEME_DIR", str(tmp_path / "no-user-themes"))
    monkeypatch.setenv("BNTUI_CONFIG_FILE", str(tmp_path / "no-config.toml"))
    monkeypatch.delenv("NO_COLOR", raising=False)
    settings = AppSettings(runs_dir=FIXTURE_RUNS, data_dir=tmp_path / "data", theme="bntui-dark")
    return BntuiApp(settings, devices=DEVICES, poll_seconds=0.1)


async def runs_loaded(pilot: Pilot) -> None:
    """Wait until the store watcher's first poll is in the run list and the plots."""
    screen = pilot.app.screen
    for _ in range(400):
        tables = screen.query(RunTable)
        plots = list(screen.query(MetricPlot))
        if tables and tables.first().row_count == 2 and all(p.curves and p.up_to_date for p in plots):
            break
        await pilot.pause(0.05)
    await pilot.pause()


def test_main_screen_80x24(app: BntuiApp, snap_compare) -> None:
    assert snap_compare(app, terminal_size=(80, 24), run_before=runs_loaded)


def test_main_screen_160x48(app: BntuiApp, snap_compare) -> None:
    assert snap_compare(app, terminal_size=(160, 48), run_before=runs_loaded)


def test_accuracy_plot_at_80x24(app: BntuiApp, snap_compare) -> None:
    async def show_accuracy(pilot: Pilot) -> None:
        await pilot.press("ctrl+g")
        await runs_loaded(pilot)  # the accuracy plot is drawn once it is shown

    assert snap_compare(app, terminal_size=(80, 24), run_before=show_accuracy)


def test_help_screen(app: BntuiApp, snap_compare) -> None:
    assert snap_compare(app, terminal_size=(100, 30), press=["f1"], run_before=runs_loaded)


@pytest.mark.parametrize("theme", ["bntui-light", "okabe-ito"])
def test_main_screen_in_other_themes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, snap_compare, theme: str) -> None:
    monkeypatch.setenv("BNTUI_THEME_DIR", str(tmp_path / "no-user-themes"))
    monkeypatch.setenv("BNTUI_CONFIG_FILE", str(tmp_path / "no-config.toml"))
    monkeypatch.delenv("NO_COLOR", raising=False)
    settings = AppSettings(runs_dir=FIXTURE_RUNS, data_dir=tmp_path / "data", theme=theme)
    themed = BntuiApp(settings, devices=DEVICES, poll_seconds=0.1)
    assert snap_compare(themed, terminal_size=(120, 36), run_before=runs_loaded)
