"""The TUI's plain-Python parts: queue, run views, curves, trainer pipe, store watcher, keys."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from bntui.config import RunConfig
from bntui.engine.events import EpochEnded, Progress, RunFinished, RunStarted
from bntui.settings import AppSettings
from bntui.store import load_run
from bntui.themes import load_themes
from bntui.tui.app import BntuiApp
from bntui.tui.curves import curves_for
from bntui.tui.devices import DeviceChoice, auto_device, device_options
from bntui.tui.keys import KEYMAP, bindings
from bntui.tui.run_queue import Job, RunQueue
from bntui.tui.run_view import RunView
from bntui.tui.store_watch import StoreWatcher
from bntui.tui.trainer_client import TrainerProcess, trainer_spec
from bntui.tui.widgets.metric_plot import Curve, PlotRequest, draw
from bntui.tui.widgets.progress_line import describe_progress

FIXTURE_RUNS = Path(__file__).parent / "fixtures" / "runs"


def job(key: str, lane: str) -> Job:
    return Job(key, RunConfig(), None, lane)


def fixture_views() -> list[RunView]:
    return [RunView.from_stored(load_run(FIXTURE_RUNS, path.name)) for path in sorted(FIXTURE_RUNS.iterdir())]


# -- queue -----------------------------------------------------------------------------------


def test_queue_runs_one_job_per_device_in_order() -> None:
    queue = RunQueue()
    for key, lane in (("a", "cpu"), ("b", "cpu"), ("c", "cuda:0"), ("d", "cuda:0")):
        queue.add(job(key, lane))
    assert [j.key for j in queue.take_ready()] == ["a", "c"]
    assert queue.take_ready() == []
    queue.done("a")
    assert [j.key for j in queue.take_ready()] == ["b"]
    assert queue.drop("d") is not None and queue.drop("d") is None
    queue.done("c")
    assert queue.take_ready() == [] and len(queue) == 1  # only "b" is left, running


# -- run views -------------------------------------------------------------------------------


def started(steps_per_epoch: int = 10) -> RunStarted:
    return RunStarted("cpu", "CPU", "2", 100, steps_per_epoch, 3, 80, 20, 10, "hash", 0.0)


def epoch(n: int, step: int) -> EpochEnded:
    return EpochEnded(n, step, 1.0 / n, 1.2 / n, 0.5 + n / 10, 0.4 + n / 10, 1.0, float(n))


def test_a_run_view_follows_trainer_events_and_ignores_repeats() -> None:
    view = RunView("job-1", RunConfig(epochs=3), "starting", live=True)
    view.apply(started())
    view.apply(Progress(1, 5, 2.0, 50.0, 0.1))
    view.apply(epoch(1, 10))
    view.apply(epoch(1, 10))  # the same epoch twice (e.g. store and pipe) adds one point
    view.apply(Progress(2, 15, 1.0, 50.0, 0.3))
    assert view.status == "running" and view.epochs_done == 1 and view.step == 15
    assert view.progress_epochs() == [0.5, 1.5]
    assert view.eta_seconds == pytest.approx((30 - 15) / 50.0)
    view.apply(RunFinished(0.5, 0.9, 0.6, 0.8, 0.7, 0.85, 30, 1.0, 2.0))
    assert view.status == "finished" and view.test_accuracy == 0.85 and view.eta_seconds is None
    assert "test acc 85.0%" in describe_progress(view)


def test_a_stored_run_becomes_a_view_with_its_curves() -> None:
    bn, no_bn = fixture_views()
    assert bn.status == "finished" and bn.config is not None and bn.config.bn
    assert bn.curves.epoch == [1, 2, 3, 4] and bn.epochs_done == bn.epochs_total == 4
    assert bn.steps_per_epoch == 25 and bn.progress_epochs()[-1] == pytest.approx(4.0)
    assert bn.test_accuracy is not None and not bn.live
    assert bn.twin_of(no_bn) and no_bn.twin_of(bn) and not bn.twin_of(bn)


def test_curves_pair_bn_with_its_twin_in_theme_colours() -> None:
    theme = load_themes().themes["bntui-dark"]
    loss, accuracy = curves_for(fixture_views(), theme)
    assert [c.label for c in accuracy] == ["BN train", "BN val", "no BN train", "no BN val"]
    assert [c.short_label for c in accuracy] == ["BN", "", "no BN", ""]
    assert {c.color for c in accuracy[:2]} == {theme.series_rgb[0]}
    assert {c.color for c in accuracy[2:]} == {theme.series_rgb[1]}
    assert [c.marker for c in accuracy[:2]] == [theme.train_marker, theme.val_marker]
    assert [c.label for c in loss if c.scatter] == ["BN train/step", "no BN train/step"]
    no_color, _ = curves_for(fixture_views(), theme, no_color=True)
    assert all(c.color is None for c in no_color)


def test_without_colour_every_loss_curve_has_its_own_marker() -> None:
    theme = load_themes().themes["bntui-dark"]
    loss, _ = curves_for(fixture_views(), theme, no_color=True)
    assert [c.label for c in loss if c.scatter] == ["BN train/step", "no BN train/step"]
    assert len({c.marker for c in loss}) == len(loss)


# -- devices -----------------------------------------------------------------------------------


def test_device_choices_list_the_gpus_by_name() -> None:
    devices = [DeviceChoice("cpu", "x86_64"), DeviceChoice("cuda:0", "NVIDIA H100"), DeviceChoice("cuda:1", "NVIDIA H100")]
    assert auto_device(devices) == "cuda:0"
    assert device_options(devices) == [
        ("auto (cuda:0)", "auto"), ("cpu", "cpu"), ("cuda:0 NVIDIA H100", "cuda:0"), ("cuda:1 NVIDIA H100", "cuda:1"),
    ]
    assert auto_device([DeviceChoice("cpu", "x")]) == "cpu"


# -- the trainer pipe ----------------------------------------------------------------------------

# Echoes each stdin line back as a JSON event, writes a non-JSON line and some stderr.
ECHO_TRAINER = (
    "import json, sys\n"
    "spec = json.loads(sys.stdin.readline())\n"
    "print('not json'); print(json.dumps({'type': 'created', 'run_id': spec['group']}), flush=True)\n"
    "sys.stderr.write('a warning\\n')\n"
    "for line in sys.stdin:\n"
    "    print(json.dumps({'type': 'got', 'line': line.strip()}), flush=True)\n"
    "sys.exit(4)\n"
)


def test_the_trainer_pipe_carries_the_spec_events_and_cancel() -> None:
    trainer = TrainerProcess({"group": "g1"}, [sys.executable, "-c", ECHO_TRAINER])
    trainer.start()
    lines = trainer.lines()
    assert next(lines) == {"type": "created", "run_id": "g1"}
    trainer.cancel()
    assert next(lines) == {"type": "got", "line": "cancel"}
    trainer.close()  # end of stdin: the trainer leaves its loop
    assert list(lines) == []
    assert trainer.reap() == (4, "a warning")
    assert list(trainer.noise) == ["not json"]


def test_stopping_a_trainer_that_ignores_cancel_terminates_it() -> None:
    trainer = TrainerProcess({}, [sys.executable, "-c", "import time; time.sleep(60)"])
    trainer.start()
    trainer.stop(grace=0.5)
    assert not trainer.alive


def test_a_trainer_that_cannot_start_raises_oserror() -> None:
    with pytest.raises(OSError):
        TrainerProcess({}, ["/nonexistent/python"]).start()


# -- store watcher -------------------------------------------------------------------------------


def test_the_store_watcher_reports_new_changed_and_removed_runs(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    shutil.copytree(FIXTURE_RUNS, runs)
    watcher = StoreWatcher(runs)
    changed, removed = watcher.poll()
    assert sorted(run.id for run in changed) == sorted(p.name for p in FIXTURE_RUNS.iterdir()) and removed == []
    assert watcher.poll() == ([], [])
    first = sorted(runs.iterdir())[0]
    watcher.forget(first.name)
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


def test_the_spec_the_app_sends_is_what_the_trainer_reads(tmp_path: Path) -> None:
    from bntui.trainer import TrainerSpec

    config = RunConfig(dataset="mnist-mini", epochs=2, hidden_sizes=[16])
    settings = AppSettings(runs_dir=tmp_path / "runs", data_dir=tmp_path / "data", threads=1)
    spec = TrainerSpec.model_validate_json(json.dumps(trainer_spec(config, "g1", settings)))
    assert (spec.config, spec.group, spec.runs_dir, spec.threads) == (config, "g1", tmp_path / "runs", 1)


# -- plots -------------------------------------------------------------------------------------


def test_curves_are_copies_that_later_events_leave_alone() -> None:
    # The plot is drawn in a thread after the view has moved on: lengths must still agree.
    view = RunView("job-1", RunConfig(epochs=3), "starting", live=True)
    view.apply(started())
    view.apply(epoch(1, 10))
    loss, accuracy = curves_for([view], load_themes().themes["bntui-dark"])
    view.apply(epoch(2, 20))
    assert all(len(c.xs) == len(c.ys) == 1 for c in loss + accuracy)


def test_a_plot_is_drawn_as_lines_of_its_width_in_the_given_colours() -> None:
    red, canvas = (255, 0, 0), (10, 20, 30)
    curve = Curve([1.0, 2.0, 3.0], [3.0, 2.0, 1.0], "train", red, "braille")
    strips = draw(PlotRequest("loss", "a run", (curve,), 40, 12, (200, 200, 200), canvas))
    assert len(strips) == 12 and all(strip.cell_length == 40 for strip in strips)
    styles = [segment.style for strip in strips for segment in strip if segment.style]
    assert red in {tuple(style.color.triplet) for style in styles if style.color}
    assert {tuple(style.bgcolor.triplet) for style in styles if style.bgcolor} == {canvas}
    assert "loss - a run" in "".join(segment.text for segment in strips[0])
