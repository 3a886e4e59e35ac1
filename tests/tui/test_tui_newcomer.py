"""A newcomer at 80x24 (issue 19): input that arrives in a burst, run-list keys, marks, the form."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import get_args

from textual import events
from textual.widgets import Input, Static
from tuihelpers import COMPARE_RUNS, screen_lines, wait_for

from bntui.config import ARCHITECTURES, Norm
from bntui.settings import AppSettings
from bntui.tui.app import BntuiApp
from bntui.tui.devices import DeviceChoice
from bntui.tui.widgets.settings_form import APPLIES_FOR

CPU_ONLY = [DeviceChoice("cpu", "x86_64")]


def make_app(tmp_path: Path, runs_dir: Path | None = None) -> BntuiApp:
    settings = AppSettings(runs_dir=runs_dir or tmp_path / "runs", data_dir=tmp_path / "data", theme="bntui-dark")
    return BntuiApp(settings, devices=CPU_ONLY, poll_seconds=0.1)


def fixture_store(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    shutil.copytree(COMPARE_RUNS, runs, ignore=shutil.ignore_patterns("*.py"))
    return runs


async def test_a_paste_right_after_clearing_a_field_is_kept(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        field = app.screen.query_one("#field-epochs", Input)
        field.focus()
        await pilot.press("1", "2")
        await pilot.pause()
        # One burst, no pause between them: the field cleared, then a paste.
        for _ in range(2):
            field.post_message(events.Key("backspace", None))
        app.post_message(events.Paste("3"))
        await pilot.pause()
        await pilot.pause()
        assert field.value == "3"
        reading = app.main.form.validate_now()
        assert reading.fields is not None and reading.fields.epochs == 3


async def test_home_end_and_pages_move_the_run_list_cursor(tmp_path: Path) -> None:
    app = make_app(tmp_path, fixture_store(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.main.runs
        await wait_for(pilot, lambda: table.row_count == 7, "the fixture runs")
        table.focus()
        await pilot.press("end")
        assert table.cursor_row == 6
        await pilot.press("home")
        assert table.cursor_row == 0
        await pilot.press("pagedown")
        page = table.cursor_row
        assert page >= 2
        await pilot.press("pageup")
        assert table.cursor_row == 0
        await pilot.press("pagedown", "pagedown", "pagedown", "pagedown")
        assert table.cursor_row == 6


async def test_capital_a_marks_every_run_then_unmarks_them(tmp_path: Path) -> None:
    app = make_app(tmp_path, fixture_store(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.main.runs
        await wait_for(pilot, lambda: table.row_count == 7, "the fixture runs")
        table.focus()
        await pilot.press("space", "A")
        assert len(table.marked) == 7
        assert table.border_title == "Runs · 7 marked"  # what c and e will take, in sight
        await pilot.press("A")
        assert not table.marked
        assert table.border_title == "Runs"


async def test_capital_g_marks_a_partly_marked_group_fully(tmp_path: Path) -> None:
    app = make_app(tmp_path, fixture_store(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.main.runs
        await wait_for(pilot, lambda: table.row_count == 7, "the fixture runs")
        table.focus()
        group = app.session.views[table.selected_key].group
        members = set(app.session.group_ids(group))
        assert len(members) == 6
        await pilot.press("space")  # one member marked
        await pilot.press("G")
        assert members <= table.marked
        await pilot.press("G")  # all marked: G unmarks the group
        assert not table.marked & members


async def test_the_run_list_shows_a_quality_column_at_80_columns(tmp_path: Path) -> None:
    app = make_app(tmp_path, fixture_store(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.main.runs
        await wait_for(pilot, lambda: table.row_count == 7, "the fixture runs")
        await pilot.pause()
        text = "\n".join(screen_lines(app))
        assert "test acc" in text and "94.1%" in text


async def test_the_tab_order_is_the_same_for_every_architecture_and_norm(tmp_path: Path) -> None:
    """Fields a choice does not read are greyed and say why, but keep their place: the same
    Tabs reach the same fields (hiding the norms' own fields made 12 Tabs land on `lr` after
    switching to another norm, as hiding `hidden` did for LeNet-5)."""
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        form = app.main.form
        every_field = [control.id for control in form.query(".field-control")]

        async def choose(arch: str, norm: str) -> None:
            form.set_value("arch", arch)
            form.set_value("norm", norm)
            await pilot.pause()
            await pilot.pause()

        async def tabbed() -> list[str | None]:
            """The fields that Tab focuses, from the first one on, one press each."""
            form.query_one("#field-dataset").focus()
            await pilot.pause()
            order = ["field-dataset"]
            for _ in every_field:  # the whole form and on to Start
                await pilot.press("tab")
                order.append(app.focused.id if app.focused else None)
            return order

        order = None
        for arch in ARCHITECTURES:
            for norm in get_args(Norm):
                await choose(arch, norm)
                # Tab walks the screen's focus chain: the same chain, the same fields reached.
                chain = [widget.id for widget in app.screen.focus_chain]
                assert order is None or chain == order, (arch, norm)
                order = chain
                greyed = {name for name in APPLIES_FOR if form.query_one(f"#field-{name}").has_class("-not-applicable")}
                assert ("hidden_sizes" in greyed) == (arch != "mlp")
                assert ("norm_groups" in greyed) == (norm != "group")
                assert ("bn_momentum" in greyed) == (norm in ("group", "layer"))
                for name in greyed:
                    assert str(form.query_one(f"#why-{name}", Static).content) in (
                        "mlp only",
                        "group only",
                        "ghost only",
                        "renorm only",
                        f"not for {norm}",
                    )
                reading = form.validate_now()
                assert not greyed & set(reading.errors)  # what is not read cannot block a start
        assert order is not None
        first = order.index("field-dataset")
        assert order[first : first + len(every_field)] == every_field  # none skipped
        # And the keys themselves: the two choices furthest apart, press by press.
        await choose("mlp", "batch")
        pressed = await tabbed()
        await choose("lenet5", "renorm")
        assert await tabbed() == pressed == every_field + ["start"]


async def test_a_missing_dataset_says_how_to_download_it(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        app.main.form.set_value("dataset", "cifar10")
        await pilot.pause()
        await pilot.pause()
        info = str(app.main.form.query_one("#dataset-info", Static).content)
        assert "--download" in info and "download = true" in info


def eight_run_store(tmp_path: Path) -> Path:
    """The 7 runs of the compare fixtures and one more: Compare with 8 runs."""
    runs = fixture_store(tmp_path)
    extra = sorted(p for p in (Path(__file__).parents[1] / "fixtures" / "runs").iterdir() if p.is_dir())[0]
    shutil.copytree(extra, runs / extra.name)
    return runs


async def test_compare_with_8_runs_names_them_all_and_its_settings_scroll_to_the_last(tmp_path: Path) -> None:
    from bntui.tui.screens.compare import CompareScreen

    app = make_app(tmp_path, eight_run_store(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.main.runs
        await wait_for(pilot, lambda: table.row_count == 8, "the fixture runs")
        table.focus()
        await pilot.press("A", "c")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen), "the compare view")
        await pilot.pause(0.3)
        text = "\n".join(screen_lines(app))
        assert all(f"#{n}" in text for n in range(1, 9))  # the legend names every run
        assert "validation:" in text  # and the marks, on screen too
        await pilot.press("tab")  # the settings that differ
        await pilot.press(*["right"] * 12)
        await pilot.pause(0.3)
        assert "#8" in "\n".join(screen_lines(app)).split("Settings that differ")[1]


async def test_the_empty_state_hint_drops_whole_parts_at_80_columns(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app._ui_ready(), "the main screen")
        await pilot.pause()
        line = next(text for text in screen_lines(app) if "No run selected" in text)
        assert "ctrl+r starts one" in line
        assert "…" not in line, line
