"""The TUI's plain-Python parts: run views, curves, store watcher, keys, plots."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from bntui.config import RunConfig
from bntui.engine.events import EpochEnded, Progress, RunFinished, RunStarted
from bntui.store import RunWriter, load_run
from bntui.themes import load_themes
from bntui.tui.app import BntuiApp
from bntui.tui.curves import curves_for
from bntui.tui.devices import DeviceChoice, auto_device, device_options
from bntui.tui.keys import KEYMAP, bindings
from bntui.tui.run_view import RunView
from bntui.tui.store_watch import StoreWatcher
from bntui.tui.widgets.figure import FigureRequest, draw
from bntui.tui.widgets.metric_plot import Curve, metric_figure
from bntui.tui.widgets.progress_line import describe_progress

FIXTURE_RUNS = Path(__file__).parents[1] / "fixtures" / "runs"


def fixture_views() -> list[RunView]:
    return [RunView.from_stored(load_run(FIXTURE_RUNS, path.name)) for path in sorted(FIXTURE_RUNS.iterdir())]


# -- run views -------------------------------------------------------------------------------


def started(steps_per_epoch: int = 10) -> RunStarted:
    return RunStarted("cpu", "CPU", "2", 100, steps_per_epoch, 3, 80, 20, 10, "hash", time.time())


def epoch(n: int, step: int) -> EpochEnded:
    return EpochEnded(n, step, 1.0 / n, 1.2 / n, 0.5 + n / 10, 0.4 + n / 10, 1.0, float(n))


def test_a_run_view_shows_a_live_run_as_the_store_has_it(tmp_path: Path) -> None:
    writer = RunWriter(tmp_path, RunConfig(epochs=3))
    for event in (started(), Progress(1, 5, 2.0, 50.0, 0.1), epoch(1, 10), Progress(2, 15, 1.0, 50.0, 0.3)):
        writer.write_event(event)
    view = RunView.from_stored(load_run(tmp_path, writer.run_id))
    assert view.status == "running" and view.epochs_done == 1 and view.step == 15
    assert view.steps_per_epoch == 10 and view.progress_epochs() == [0.5, 1.5]
    assert view.eta_seconds == pytest.approx((30 - 15) / (15 / 0.3))
    writer.write_event(RunFinished(0.5, 0.9, 0.6, 0.8, 0.7, 0.85, 30, 1.0, 2.0))
    writer.finish()
    view = RunView.from_stored(load_run(tmp_path, writer.run_id))
    assert view.status == "finished" and view.test_accuracy == 0.85 and view.eta_seconds is None
    assert "test acc 85.0%" in describe_progress(view)


def test_a_running_run_asked_to_stop_shows_as_stopping_until_it_ends(tmp_path: Path) -> None:
    writer = RunWriter(tmp_path, RunConfig(epochs=3))
    writer.write_event(started())
    (writer.path / "cancel").touch()  # bntui cancel, or ctrl+t in any TUI
    view = RunView.from_stored(load_run(tmp_path, writer.run_id))
    assert view.status == "stopping" and view.active
    writer.finish("cancelled")
    assert RunView.from_stored(load_run(tmp_path, writer.run_id)).status == "cancelled"


def test_a_stored_run_becomes_a_view_with_its_curves() -> None:
    bn, no_bn = fixture_views()
    assert bn.status == "finished" and bn.config is not None and bn.config.bn
    assert bn.curves.epoch == [1, 2, 3, 4] and bn.epochs_done == bn.epochs_total == 4
    assert bn.steps_per_epoch == 25 and bn.progress_epochs()[-1] == pytest.approx(4.0)
    assert bn.test_accuracy is not None and not bn.active
    assert bn.twin_of(no_bn) and no_bn.twin_of(bn) and not bn.twin_of(bn)


def test_curves_pair_bn_with_its_twin_in_theme_colours() -> None:
    theme = load_themes().themes["bntui-dark"]
    loss, accuracy = curves_for(fixture_views(), theme)
    assert [c.label for c in accuracy] == ["BN train", "BN val", "no BN train", "no BN val"]
    assert [c.short_label for c in accuracy] == ["BN", "", "no BN", ""]
    assert {c.color for c in accuracy[:2]} == {theme.series_rgb[0]}
    assert {c.color for c in accuracy[2:]} == {theme.series_rgb[1]}
    # validation: the run's line with a point on each epoch; training: the line alone
    assert [(c.marker, c.points) for c in accuracy[:2]] == [(theme.train_marker, ""), (theme.train_marker, "•")]
    assert [c.label for c in loss if c.scatter] == ["BN train/step", "no BN train/step"]
    no_color, _ = curves_for(fixture_views(), theme, no_color=True)
    assert all(c.color is None for c in no_color)


def test_bn_and_no_bn_keep_their_colours_whichever_run_is_selected() -> None:
    theme = load_themes().themes["bntui-dark"]
    bn, no_bn = fixture_views()
    for views in ([bn, no_bn], [no_bn, bn], [no_bn], [bn]):
        _, accuracy = curves_for(views, theme)
        for curve in accuracy:
            arm = "no BN" if curve.label.startswith("no BN") or views == [no_bn] else "BN"
            assert curve.color == theme.series_rgb[0 if arm == "BN" else 1], (views, curve.label)


def test_the_plot_key_names_every_run_and_train_val_and_steps() -> None:
    from bntui.tui.widgets.metric_plot import key_text

    theme = load_themes().themes["bntui-dark"]
    loss, _ = curves_for(fixture_views(), theme)
    assert key_text(tuple(loss)).plain == "■ BN ■ no BN ⠒⠒ train ⠒⠒• val · step"


def test_without_colour_every_loss_curve_has_its_own_marker() -> None:
    theme = load_themes().themes["bntui-dark"]
    loss, _ = curves_for(fixture_views(), theme, no_color=True)
    assert [c.label for c in loss if c.scatter] == ["BN train/step", "no BN train/step"]
    assert len({c.marker for c in loss}) == len(loss)


# -- devices -----------------------------------------------------------------------------------


def test_device_choices_list_the_gpus_by_name() -> None:
    devices = [
        DeviceChoice("cpu", "x86_64"),
        DeviceChoice("cuda:0", "NVIDIA H100"),
        DeviceChoice("cuda:1", "NVIDIA H100"),
    ]
    assert auto_device(devices) == "cuda:0"
    assert device_options(devices) == [
        ("auto (cuda:0)", "auto"),
        ("cpu", "cpu"),
        ("cuda:0 NVIDIA H100", "cuda:0"),
        ("cuda:1 NVIDIA H100", "cuda:1"),
    ]
    assert auto_device([DeviceChoice("cpu", "x")]) == "cpu"


# -- store watcher -------------------------------------------------------------------------------


def test_the_store_watcher_reports_new_changed_and_removed_runs(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    shutil.copytree(FIXTURE_RUNS, runs)
    watcher = StoreWatcher(runs)
    changed, removed = watcher.poll()
    assert sorted(run.id for run in changed) == sorted(p.name for p in FIXTURE_RUNS.iterdir()) and removed == []
    assert watcher.poll() == ([], [])
    first = sorted(runs.iterdir())[0]
    (first / "summary.json").unlink()  # changed on disk: reported (its events still end it)
    assert [run.id for run in watcher.poll()[0]] == [first.name]
    shutil.rmtree(first)
    assert watcher.poll() == ([], [first.name])


# -- keys ------------------------------------------------------------------------------------------


def test_every_key_has_a_description_and_an_action_the_app_has() -> None:
    for key in KEYMAP:
        assert key.description and key.help
        assert callable(getattr(BntuiApp, f"action_{key.action}", None)), key.action
    app_keys = {binding.key for binding in bindings("app")}
    assert {"ctrl+r", "ctrl+t", "ctrl+q", "f1,question_mark"} <= app_keys
    assert all(binding.action.startswith("app.") for binding in bindings("runs"))


# -- plots -------------------------------------------------------------------------------------


def test_a_plot_is_drawn_as_lines_of_its_width_in_the_given_colours() -> None:
    red, canvas = (255, 0, 0), (10, 20, 30)
    curve = Curve([1.0, 2.0, 3.0], [3.0, 2.0, 1.0], "train", red, "braille")
    strips = draw(FigureRequest(metric_figure("loss", "a run", (curve,)), 40, 12, (200, 200, 200), canvas))
    assert len(strips) == 12 and all(strip.cell_length == 40 for strip in strips)
    styles = [segment.style for strip in strips for segment in strip if segment.style]
    assert red in {tuple(style.color.triplet) for style in styles if style.color}
    assert {tuple(style.bgcolor.triplet) for style in styles if style.bgcolor} == {canvas}
    assert "loss - a run" in "".join(segment.text for segment in strips[0])
