"""Every screen at 80x24 (and main and compare also at 120x40 and 160x48), as snapshots, and
a scan of each 80x24 screen for a cut word (issue 19: a newcomer on an 80x24 SSH terminal).

The store holds 8 finished runs: the compare fixtures (tests/fixtures/compare_runs, a BN /
no-BN group of 3 seed pairs with diagnostics, and one run at another learning rate) and one of
tests/fixtures/runs. Regenerate after a deliberate change with
`pytest tests/tui/test_tui_screens_80x24.py --snapshot-update`, and look at the SVGs."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input
from tuihelpers import COMPARE_RUNS, plots_drawn, screen_lines, wait_for

from bntui.settings import AppSettings
from bntui.tui.app import BntuiApp
from bntui.tui.devices import DeviceChoice
from bntui.tui.keys import display_keys
from bntui.tui.screens.compare import CompareScreen
from bntui.tui.screens.diagnostics import DiagnosticsScreen
from bntui.tui.screens.export_dialog import ExportDialog
from bntui.tui.screens.group import GroupScreen
from bntui.tui.screens.help import HelpScreen
from bntui.tui.screens.landscape import LandscapeScreen
from bntui.tui.widgets.metric_plot import MetricPlot
from bntui.tui.widgets.run_table import RunTable

FIXTURES = Path(__file__).parents[1] / "fixtures"
DEVICES = [DeviceChoice("cpu", "x86_64"), DeviceChoice("cuda:0", "NVIDIA H100 80GB HBM3")]
RUNS = 8

# screen name -> (keys pressed on the run list, the screen that must open)
SCREENS = {
    "main": ((), None),
    "compare": (("A", "c"), CompareScreen),
    "group": (("g",), GroupScreen),
    "diagnostics": (("d",), DiagnosticsScreen),
    "landscape": (("l",), LandscapeScreen),
    "export": (("e",), ExportDialog),
}


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> BntuiApp:
    return eight_run_app(tmp_path, monkeypatch)


def eight_run_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> BntuiApp:
    """The app on a store of the 8 runs, in a fixed theme, with no user themes or config."""
    monkeypatch.setenv("BNTUI_THEME_DIR", str(tmp_path / "no-user-themes"))
    monkeypatch.setenv("BNTUI_CONFIG_FILE", str(tmp_path / "no-config.toml"))
    monkeypatch.delenv("NO_COLOR", raising=False)
    # The export dialog proposes a timestamped path in the working directory: fixed here.
    monkeypatch.setattr(
        "bntui.tui.screens.export_dialog.default_export_path", lambda: Path("/home/student/bntui-export.json")
    )
    runs = tmp_path / "runs"
    shutil.copytree(COMPARE_RUNS, runs, ignore=shutil.ignore_patterns("*.py"))
    extra = sorted(p for p in (FIXTURES / "runs").iterdir() if p.is_dir())[0]
    shutil.copytree(extra, runs / extra.name)
    settings = AppSettings(runs_dir=runs, data_dir=tmp_path / "data", theme="bntui-dark")
    return BntuiApp(settings, devices=DEVICES, poll_seconds=0.1)


async def runs_loaded(pilot: Pilot) -> None:
    def ready() -> bool:
        screen = pilot.app.screen
        tables = screen.query(RunTable)
        plots = [plot for plot in screen.query(MetricPlot) if plot.display]
        return bool(tables) and tables.first().row_count == RUNS and all(p.curves and p.up_to_date for p in plots)

    await wait_for(pilot, ready, "the runs in the run list and the plots")
    await pilot.pause()


def opener(name: str, *, help: bool = False):
    keys, screen_type = SCREENS[name]

    async def open_screen(pilot: Pilot) -> None:
        app = pilot.app
        await runs_loaded(pilot)
        app.main.runs.focus()
        await pilot.pause()
        if keys:
            await pilot.press(*keys)
            await wait_for(pilot, lambda: isinstance(app.screen, screen_type), f"the {name} screen")
            await pilot.pause(0.4)  # the analysis screens redraw at most 4 times a second
            await plots_drawn(pilot)
            for field in app.screen.query(Input):
                field.cursor_blink = False  # a blinking cursor would make the snapshot flaky
        if help:
            await pilot.press("f1")
            await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "the help")
        await pilot.pause()

    return open_screen


@pytest.mark.parametrize("name", list(SCREENS))
def test_screen_at_80x24(app: BntuiApp, snap_compare, name: str) -> None:
    assert snap_compare(app, terminal_size=(80, 24), run_before=opener(name))


@pytest.mark.parametrize("name", ["main", "compare", "group", "diagnostics", "landscape"])
def test_help_at_80x24(app: BntuiApp, snap_compare, name: str) -> None:
    assert snap_compare(app, terminal_size=(80, 24), run_before=opener(name, help=True))


@pytest.mark.parametrize("size", [(120, 40), (160, 48)])
@pytest.mark.parametrize("name", ["main", "compare"])
def test_wider_terminals(app: BntuiApp, snap_compare, name: str, size: tuple[int, int]) -> None:
    assert snap_compare(app, terminal_size=size, run_before=opener(name))


# -- cut words ----------------------------------------------------------------------------------


def footer_words(app: BntuiApp) -> set[str]:
    """Every word a whole footer entry can show (a dialog's footer is its screen's below)."""
    words = {"^p", "palette"}
    bindings = [entry[1] for screen in app.screen_stack for entry in screen.active_bindings.values()]
    for binding in bindings:
        words.update(app.get_key_display(binding).split())
        words.update(display_keys(binding.key).split())
        words.update(binding.description.split())
    return words


def cut_words(app: BntuiApp) -> list[str]:
    """What looks cut: an ellipsis anywhere, or a footer word that is no whole key or
    description (Textual's own footer showed "f2 The" and "- Sm")."""
    lines = screen_lines(app)
    problems = [f"line {row}: {line.strip()!r}" for row, line in enumerate(lines) if "…" in line]
    allowed = footer_words(app)
    footer = lines[-1].replace("▏", " ")
    problems += [f"footer word {word!r}" for word in footer.split() if word not in allowed]
    return problems


@pytest.mark.parametrize("help", [False, True])
@pytest.mark.parametrize("name", list(SCREENS))
async def test_nothing_is_cut_at_80x24(app: BntuiApp, name: str, help: bool) -> None:
    if help and name == "export":
        pytest.skip("the export dialog is a form: F1 there types into the path")
    async with app.run_test(size=(80, 24)) as pilot:
        await opener(name, help=help)(pilot)
        assert cut_words(app) == [], "\n".join(screen_lines(app))


def test_the_scan_finds_what_textuals_own_footer_cut() -> None:
    """The check can fail: the footer line as issue 19 saw it has cut words."""
    seen = " space Mark  G Mark group  c Compare  g Group  d Inside BN  l Landsc▏^p palette "
    allowed = {
        "space",
        "Mark",
        "G",
        "group",
        "c",
        "Compare",
        "g",
        "Group",
        "d",
        "Inside",
        "BN",
        "l",
        "Landscape",
        "^p",
        "palette",
    }
    assert [word for word in seen.replace("▏", " ").split() if word not in allowed] == ["Landsc"]
    assert re.search("…", "reference: #1…")
