"""Notifications are part of the layout: a band above the footer that the screen's content
gives way to, so a message never covers a field, a plot or a run (issue 19: floating toasts hid
the top of the plot, and before that the run list's last rows, at 80x24).

Every screen opens on the 8 stored runs of test_tui_screens_80x24, a message is shown, and then
no widget of the screen may share a cell with it, and the message must be readable on screen."""

from __future__ import annotations

import pytest
from textual.errors import NoWidget
from textual.geometry import Region
from textual.screen import Screen
from textual.widget import Widget
from tuihelpers import screen_lines
from test_tui_screens_80x24 import SCREENS, eight_run_app, opener
from tuihelpers import wait_for

from bntui.tui.app import BntuiApp

# Three lines at 80 columns, which with its title is as tall as the band gets: it has to wrap,
# not be cut, and the screen's content has to make room for all four rows.
MESSAGE = (
    "mnist-mini-mlp-bn-s0: test accuracy 94.1%; the run list, the plots and every field "
    "stay in view while this is shown, because the message band is a part of the layout "
    "and the rest gives way"
)
TITLE = "Run finished"


@pytest.fixture
def app(tmp_path, monkeypatch: pytest.MonkeyPatch) -> BntuiApp:
    return eight_run_app(tmp_path, monkeypatch)


def visible_region(screen: Screen, widget: Widget) -> Region:
    """The cells the widget paints (inside a scrolled pane: the part in view); none if hidden."""
    try:
        return screen.find_widget(widget).visible_region
    except NoWidget:
        return Region()


def content_widgets(screen: Screen) -> list[Widget]:
    """Every widget of the screen except the message band and what it holds."""
    rack = screen.query_one("ToastRack")
    return [widget for widget in screen.walk_children(Widget) if widget is not rack and rack not in widget.ancestors]


def overlaps(screen: Screen) -> list[str]:
    # (a message scrolled out of the band, behind newer ones, paints nothing)
    toasts = [region for toast in screen.query("Toast") if (region := visible_region(screen, toast))]
    return [
        f"{widget!r} at {region} under a message at {toast}"
        for widget in content_widgets(screen)
        if (region := visible_region(screen, widget))
        for toast in toasts
        if toast.overlaps(region)
    ]


def shown_text(app: BntuiApp) -> str:
    """The screen's text with the line breaks (and the toasts' severity bar) taken out."""
    return " ".join(" ".join(screen_lines(app)).replace("▌", " ").split())


async def message_on_screen(app: BntuiApp, pilot) -> None:
    await wait_for(
        pilot, lambda: any(visible_region(app.screen, t) for t in app.screen.query("Toast")), "the message on screen"
    )
    await pilot.pause(0.2)  # the content's new layout


@pytest.mark.parametrize("help", [False, True])
@pytest.mark.parametrize("name", list(SCREENS))
async def test_a_message_covers_nothing_at_80x24(app: BntuiApp, name: str, help: bool) -> None:
    if help and name == "export":
        pytest.skip("the export dialog is a form: F1 there types into the path")
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await opener(name, help=help)(pilot)
        app.notify(MESSAGE, title=TITLE, timeout=60, markup=False)
        await message_on_screen(app, pilot)
        assert overlaps(app.screen) == []
        assert f"{TITLE} {MESSAGE}" in shown_text(app)


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (160, 48)])
async def test_the_newest_of_several_messages_is_the_one_in_view(app: BntuiApp, size) -> None:
    async with app.run_test(size=size, notifications=True) as pilot:
        await opener("main")(pilot)
        for number in range(3):
            app.notify(f"message {number}: {MESSAGE}", severity="warning", timeout=60, markup=False)
        await message_on_screen(app, pilot)
        await pilot.pause(0.3)  # the band scrolls to its newest message once laid out
        assert overlaps(app.screen) == []
        assert f"message 2: {MESSAGE}" in shown_text(app)
        plots = app.screen.query_one("#plots")
        assert visible_region(app.screen, plots).height >= 5  # the band has a cap: the plot stays


async def test_a_message_covers_nothing_on_the_sweep_view(tmp_path) -> None:
    from sweephelpers import make_lr_sweep

    from bntui.settings import AppSettings
    from bntui.tui.devices import DeviceChoice
    from bntui.tui.screens.sweep import SweepScreen

    make_lr_sweep(tmp_path / "runs", seeds=1)
    sweep_app = BntuiApp(
        AppSettings(runs_dir=tmp_path / "runs", data_dir=tmp_path / "data"),
        devices=[DeviceChoice("cpu", "test CPU")],
        poll_seconds=0.1,
    )
    async with sweep_app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_for(pilot, lambda: sweep_app.main.runs.row_count == 8, "the sweep's runs")
        sweep_app.main.runs.focus()
        await pilot.press("g")
        await wait_for(pilot, lambda: isinstance(sweep_app.screen, SweepScreen), "the sweep view")
        await pilot.pause(0.4)
        sweep_app.notify(MESSAGE, title=TITLE, timeout=60, markup=False)
        await message_on_screen(sweep_app, pilot)
        assert overlaps(sweep_app.screen) == []
        assert f"{TITLE} {MESSAGE}" in shown_text(sweep_app)
