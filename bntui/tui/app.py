"""The bntui Textual app: set up runs, launch each in its own trainer process, watch them train.

The app never imports torch. Training happens in `python -m bntui.trainer` children (one per
run) that write JSON events on stdout; a thread worker per child reads them and posts messages.
The run store is polled by another thread worker, so runs of other processes show up too. The
plots, progress line and run list are redrawn from a 0.25 s timer, never once per event."""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from textual import on
from textual.app import App
from textual.screen import Screen
from textual.widgets import Button
from textual.worker import Worker, WorkerState, get_current_worker

from bntui.config import format_validation_error
from bntui.engine.events import RunDiverged, RunFailed, RunFinished, event_from_dict
from bntui.settings import AppSettings
from bntui.themes import install_themes, load_themes, no_color_requested, plot_theme_for
from bntui.tui import analysis
from bntui.tui.commands import ActionsProvider
from bntui.tui.curves import curves_for
from bntui.tui.devices import DeviceChoice, DeviceDetection, DeviceDetectionError, auto_device
from bntui.tui.keys import bindings
from bntui.tui.lifecycle import being_removed
from bntui.tui.messages import DevicesFound, SettingsChanged, StoreChanged, TrainerExited, TrainerLine
from bntui.tui.run_queue import Job, RunQueue
from bntui.tui.run_view import RunView
from bntui.tui.screens.confirm_quit import ConfirmQuitScreen
from bntui.tui.screens.help import HelpScreen
from bntui.tui.screens.main import MainScreen
from bntui.tui.store_watch import StoreWatcher
from bntui.tui.trainer_client import TRAINER_COMMAND, TrainerProcess, trainer_spec
from bntui.tui.widgets.run_table import RunTable

REDRAW_SECONDS = 0.25  # plots, progress line and run list: at most 4 redraws a second
POLL_SECONDS = 1.0  # run store
CANCEL_GRACE_SECONDS = 5.0  # a cancelled trainer that has not exited by then is terminated
KILL_GRACE_SECONDS = 3.0  # ... and killed if terminating did not end it
QUIT_GRACE_SECONDS = 3.0


class BntuiApp(App[int]):
    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: subclasses elsewhere find it too
    TITLE = "bntui"
    BINDINGS = bindings("app")
    COMMANDS = App.COMMANDS | {ActionsProvider}

    def __init__(
        self,
        settings: AppSettings,
        *,
        devices: Sequence[DeviceChoice] | None = None,
        trainer_command: Sequence[str] = TRAINER_COMMAND,
        save_theme: bool = False,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        """`devices` skips device detection (tests and snapshots pass a fixed list);
        `save_theme` writes a theme picked in the app to the config file (run_app sets it)."""
        super().__init__()
        self.settings = settings
        self.devices: list[DeviceChoice] | None = list(devices) if devices is not None else None
        self.trainer_command = list(trainer_command)
        self.save_theme = save_theme
        self.poll_seconds = poll_seconds
        self.views: dict[str, RunView] = {}  # by RunView.key (the job key for this session's runs)
        self.keys_by_run_id: dict[str, str] = {}
        # The run list keys an open analysis screen was opened on: runs still queued then join
        # it once they start (analysis.refresh_open_screen).
        self.analysis_keys: weakref.WeakKeyDictionary[Screen, list[str]] = weakref.WeakKeyDictionary()
        self.queue = RunQueue()
        self.trainers: dict[str, TrainerProcess] = {}
        self.watcher = StoreWatcher(settings.runs_dir)
        self._job_numbers = itertools.count(1)
        self._dirty: set[str] = set()  # views whose row must be redrawn
        self._gone: set[str] = set()  # rows to remove
        self._plotted: object = None
        self._shutting_down = False
        self._stop_polling = threading.Event()
        self._device_detection = DeviceDetection()
        self.themes_catalog = load_themes()  # never raises: bad files are listed in .problems

    # -- start-up ----------------------------------------------------------------------------
    def get_default_screen(self) -> Screen:
        return MainScreen(self.settings.data_dir, self.settings.device, self.devices)

    def on_mount(self) -> None:
        note = install_themes(self, self.themes_catalog, self.settings.theme)
        self._theme_saved = self.theme  # what the settings already say: no need to write it
        for text in (note, self.themes_catalog.warning_text()):
            if text:
                self.notify(text, title="Theme", severity="warning", timeout=10, markup=False)
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        # Thread workers run on the loop's default executor, min(32, cores + 4) threads by
        # default: with a run training on each of several GPUs, a trainer's reader must never
        # wait for a free thread (its pipe would fill up and stall the trainer).
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=64, thread_name_prefix="bntui-worker")
        )
        self.run_worker(self._watch_store, thread=True, exit_on_error=False, group="store", name="run store watcher")
        self.set_interval(REDRAW_SECONDS, self._redraw)

    def on_ready(self) -> None:
        # After the first paint: the detection subprocess imports torch, which takes a CPU core
        # for a second or two; started earlier, it slows the first paint down.
        if self.devices is None:
            self.run_worker(self._find_devices, thread=True, exit_on_error=False, group="devices", name="device detection")

    @property
    def main(self) -> MainScreen:
        screen = self.screen_stack[0]
        assert isinstance(screen, MainScreen)
        return screen

    # -- workers (threads: they post messages and never touch widgets) -----------------------
    def _watch_store(self) -> None:
        from bntui.store import StoreError

        worker = get_current_worker()
        problem: str | None = None
        while not worker.is_cancelled and not self._stop_polling.is_set():
            try:
                changed, removed = self.watcher.poll()
                now_problem = None
            except StoreError as exc:  # e.g. the runs dir is not a directory: say so once, retry
                changed, removed, now_problem = [], [], str(exc)
            if changed or removed or now_problem != problem:
                self.post_message(StoreChanged(changed, removed, now_problem if now_problem != problem else None))
                problem = now_problem
            self._stop_polling.wait(self.poll_seconds)

    def _find_devices(self) -> None:
        try:
            devices = self._device_detection.run()
        except DeviceDetectionError:
            if self._device_detection.cancelled:
                return  # the app is quitting
            raise  # reported by on_worker_state_changed
        self.post_message(DevicesFound(devices))

    def _follow_trainer(self, key: str, trainer: TrainerProcess) -> None:
        try:
            for data in trainer.lines():
                if data.get("type") == "diagnostics":
                    continue  # BatchNorm diagnostics are read from the run store by their own screen
                self.post_message(TrainerLine(key, data))
        finally:
            returncode, stderr = trainer.reap()
            self.post_message(TrainerExited(key, returncode, stderr))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place a failed worker is reported; the app carries on."""
        if event.state != WorkerState.ERROR:
            return
        worker = event.worker
        self.notify(f"{worker.name}: {worker.error}", title="Background task failed",
                    severity="error", timeout=10, markup=False)
        if worker.group == "devices":
            self._apply_devices([DeviceChoice("cpu", "CPU")])

    # -- messages ----------------------------------------------------------------------------
    def on_devices_found(self, message: DevicesFound) -> None:
        self._apply_devices(message.devices)

    def _apply_devices(self, devices: list[DeviceChoice]) -> None:
        self.devices = devices
        if self._ui_ready():
            self.main.form.set_devices(devices)

    def on_store_changed(self, message: StoreChanged) -> None:
        if message.problem:
            self.notify(message.problem, title="Run store", severity="error", timeout=15, markup=False)
        for stored in message.changed:
            key = self.keys_by_run_id.get(stored.id, stored.id)
            current = self.views.get(key)
            if current is not None and current.live:
                continue  # its own trainer's pipe is fresher than the store
            view = RunView.from_stored(stored)
            if current is not None and not current.active and view.active:
                continue  # a poll taken before the run's final write: runs never restart
            view.key = key
            self.views[key] = view
            self._touch(key)
        for run_id in message.removed:
            key = self.keys_by_run_id.get(run_id, run_id)
            view = self.views.get(key)
            if view is not None and not view.live:
                del self.views[key]
                self._drop_row(key)
        if message.changed or message.removed:
            analysis.refresh_open_screen(self, message.removed)

    def on_trainer_line(self, message: TrainerLine) -> None:
        view = self.views.get(message.job_key)
        if view is None:
            return
        data = message.data
        if data.get("type") == "rejected":  # the trainer refused the spec; nothing was stored
            view.status, view.message = "failed", str(data.get("message", "spec rejected"))
            self.notify(f"{view.label}: {view.message}", title="Run failed", severity="error",
                        timeout=15, markup=False)
            self._touch(view.key)
            return
        if data.get("type") == "created":
            run_id = str(data.get("run_id"))
            view.run_id = run_id
            self.keys_by_run_id[run_id] = view.key
            if run_id in self.views and run_id != view.key:  # the store watcher saw it first
                del self.views[run_id]
                self._drop_row(run_id)
            self._touch(view.key)
            return
        try:
            event = event_from_dict(data)
        except (ValueError, TypeError):
            return  # a newer trainer's event this app does not know: ignore it
        view.apply(event)
        self._touch(view.key)
        name = view.run_id or view.label
        if isinstance(event, RunFailed):
            self.notify(f"{name}: {event.message}", title="Run failed", severity="error", timeout=15, markup=False)
        elif isinstance(event, RunDiverged):
            self.notify(f"{name}: {event.message}", title="Run diverged", severity="warning", timeout=10, markup=False)
        elif isinstance(event, RunFinished):
            self.notify(f"{name}: test accuracy {event.test_accuracy:.1%}", title="Run finished", markup=False)

    def on_trainer_exited(self, message: TrainerExited) -> None:
        key = message.job_key
        trainer = self.trainers.pop(key, None)
        self.queue.done(key)
        view = self.views.get(key)
        if view is not None:
            view.live = False
            if view.active:  # the trainer ended without a final event: it crashed or was killed
                forced = trainer is not None and trainer.cancel_requested_at is not None
                reason = _last_line(message.stderr) or f"the trainer exited with status {message.returncode}"
                view.status = "cancelled" if forced else "crashed"
                view.message = "stopped by force" if forced else reason
                if not forced:
                    self.notify(f"{view.run_id or view.label}: {reason}", title="Run crashed",
                                severity="error", timeout=15, markup=False)
            if view.run_id is None:
                self._store_unstarted_run(view)
            if view.run_id is not None:
                self.watcher.forget(view.run_id)  # the store holds the final word now
            self._touch(key)
        self._start_ready()

    @on(Button.Pressed, "#start")
    def _start_pressed(self) -> None:
        self.action_start_runs()

    def on_settings_changed(self, message: SettingsChanged) -> None:
        if self._ui_ready():
            self.main.query_one("#start").disabled = bool(message.errors)

    # -- launching ---------------------------------------------------------------------------
    def action_start_runs(self) -> None:
        from bntui.launch import plan_runs
        from bntui.store import StoreError, ensure_runs_dir
        from pydantic import ValidationError

        form = self.main.form
        reading = form.validate_now()
        if reading.errors or reading.fields is None:
            problems = "; ".join(f"{name}: {text}" if name else text for name, text in reading.errors.items())
            self.notify(problems, title="Cannot start", severity="error", markup=False)
            return
        try:
            plan = plan_runs(reading.fields, reading.bn, reading.seeds)  # type: ignore[arg-type]
        except ValidationError as exc:
            self.notify(format_validation_error(exc), title="Cannot start", severity="error", markup=False)
            return
        except ValueError as exc:
            self.notify(str(exc), title="Cannot start", severity="error", markup=False)
            return
        try:  # e.g. the runs dir is a file: say so once, rather than once per refused trainer
            ensure_runs_dir(self.settings.runs_dir)
        except StoreError as exc:
            self.notify(str(exc), title="Cannot start", severity="error", markup=False)
            return
        keys = []
        for config in plan.configs:
            key = f"job-{next(self._job_numbers)}"
            lane = config.device
            if lane == "auto" and self.devices is not None:
                lane = auto_device(self.devices)
            self.views[key] = RunView(key=key, config=config, status="queued", group=plan.group, live=True)
            self.queue.add(Job(key, config, plan.group, lane))
            self._touch(key)
            keys.append(key)
        waiting = len(self.queue.waiting)
        self._start_ready()
        self._redraw()
        self.main.runs.select_key(keys[0])
        if waiting > 1 or len(keys) > 1:
            self.notify(f"{len(keys)} run{'s' if len(keys) > 1 else ''} queued "
                        f"({len(self.queue.running)} running, {len(self.queue.waiting)} waiting)")

    def _start_ready(self) -> None:
        if self._shutting_down:
            return
        for job in self.queue.take_ready():
            view = self.views[job.key]
            trainer = TrainerProcess(trainer_spec(job.config, job.group, self.settings), self.trainer_command)
            try:
                trainer.start()
            except OSError as exc:
                self.queue.done(job.key)
                view.status, view.message, view.live = "failed", f"could not start the trainer: {exc}", False
                self.notify(view.message, title="Run failed", severity="error", markup=False)
                self._store_unstarted_run(view)
                self._touch(job.key)
                self.call_later(self._start_ready)
                continue
            self.trainers[job.key] = trainer
            view.status = "starting"
            self._touch(job.key)
            self.run_worker(partial(self._follow_trainer, job.key, trainer), thread=True,
                            exit_on_error=False, group="trainers", name=f"trainer for {view.label}")

    def _store_unstarted_run(self, view: RunView) -> None:
        """A trainer that died before creating its run: store the run as failed, so no launch
        goes unrecorded."""
        if view.config is None:
            return
        try:
            from bntui.store import RunWriter

            writer = RunWriter(self.settings.runs_dir, view.config, group=view.group)
            writer.finish("failed", view.message or "the trainer did not start")
        except Exception as exc:  # the store itself is broken: say so, keep the row
            self.notify(f"could not store the failed run: {exc}", severity="error", markup=False)
            return
        view.status = "failed"
        view.run_id = writer.run_id
        self.keys_by_run_id[writer.run_id] = view.key

    # -- stopping ----------------------------------------------------------------------------
    def action_cancel_selected(self) -> None:
        key = self.main.runs.selected_key
        view = self.views.get(key) if key else None
        if view is None:
            self.notify("Select a run in the run list first.", severity="warning")
            return
        name = view.run_id or view.label
        if self.queue.drop(view.key):
            del self.views[view.key]
            self._drop_row(view.key)
            self.notify(f"{name} removed from the queue", markup=False)
            return
        trainer = self.trainers.get(view.key)
        if trainer is None:
            if view.active:
                self.notify(f"{name} is trained by another process: stop it there.", severity="warning", markup=False)
            else:
                self.notify(f"{name} is not running ({view.status}).", severity="warning", markup=False)
            return
        if view.status == "stopping":
            return
        trainer.cancel()
        view.status = "stopping"
        self._touch(view.key)
        self.set_timer(CANCEL_GRACE_SECONDS, partial(self._force_stop, trainer, False))

    def _force_stop(self, trainer: TrainerProcess, kill: bool) -> None:
        if not trainer.alive:
            return
        if kill:
            trainer.kill()
        else:
            trainer.terminate()
            self.set_timer(KILL_GRACE_SECONDS, partial(self._force_stop, trainer, True))

    def stop_all_trainers(self) -> None:
        """Blocking: cancel every trainer, then terminate and kill the ones that do not stop.
        Safe to call more than once and from any thread."""
        self._shutting_down = True
        self.queue.waiting.clear()
        trainers = list(self.trainers.values())
        for trainer in trainers:
            trainer.cancel()
        for trainer in trainers:
            trainer.stop(QUIT_GRACE_SECONDS)

    async def action_quit(self) -> None:
        if isinstance(self.screen, ConfirmQuitScreen):
            return  # already asking: a second ^q must not stack a second question
        running, queued = len(self.trainers), len(self.queue.waiting)
        if running or queued:
            self.push_screen(ConfirmQuitScreen(running, queued), self._quit_answered)
        else:
            self.exit(0)

    def _quit_answered(self, answer: bool | None) -> None:
        if answer:
            self.run_worker(self._stop_and_exit(), group="quit", name="quit")

    async def _stop_and_exit(self) -> None:
        self.notify("Stopping runs...")
        await asyncio.to_thread(self.stop_all_trainers)
        self.exit(0)

    async def on_unmount(self) -> None:
        self._stop_polling.set()
        self._device_detection.cancel()
        await asyncio.to_thread(self.stop_all_trainers)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "toggle_metric" and self.screen_stack and self.main.shows_both_plots:
            return False  # both plots are on screen: nothing to switch, so not in the footer
        return True

    # -- other actions -----------------------------------------------------------------------
    def action_toggle_metric(self) -> None:
        self.main.toggle_metric()

    def action_focus_settings(self) -> None:
        if self.screen is self.main:
            self.main.form.query_one("#field-dataset").focus()

    def action_focus_runs(self) -> None:
        if self.screen is self.main:
            self.main.runs.focus()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_toggle_mark(self) -> None:
        self.main.runs.toggle_mark()

    def action_mark_group(self) -> None:
        analysis.mark_group(self)

    def action_compare(self) -> None:
        analysis.open_compare(self)

    def action_group_view(self) -> None:
        analysis.open_group(self)

    def action_diagnostics(self) -> None:
        analysis.open_diagnostics(self)

    def action_landscape(self) -> None:
        analysis.open_landscape(self)

    def action_export(self) -> None:
        analysis.open_export(self)

    def action_preset_paper_fig1(self) -> None:
        from bntui.engine.data import dataset_info
        from bntui.presets import PRESETS, preset_values

        present = dataset_info(PRESETS["paper-fig1"]["dataset"], self.settings.data_dir).present
        values = preset_values("paper-fig1", present)
        self.main.form.apply_values(values)
        where = "" if present else " (MNIST is not in the data dir: using mnist-mini)"
        self.notify(f"paper-fig1 preset loaded{where}; diagnostics every 10 steps; ^r starts", markup=False)

    def action_cycle_theme(self) -> None:
        names = list(self.themes_catalog.themes)
        if not names:
            return
        position = names.index(self.theme) if self.theme in names else -1
        self.theme = names[(position + 1) % len(names)]
        self.notify(f"theme: {self.theme}", timeout=2, markup=False)

    def _theme_changed(self, theme: object) -> None:
        self._plotted = None
        self._dirty.update(self.views)
        if self.save_theme and self.theme != self._theme_saved:
            from bntui.settings import save_setting, setting_variable

            self._theme_saved = self.theme

            try:
                save_setting("theme", self.theme)
            except OSError as exc:
                self.notify(f"could not save the theme: {exc}", severity="warning", markup=False)
                return
            variable = setting_variable("theme")
            if variable is not None and os.environ[variable] != self.theme:
                self.notify(f"theme saved, but {variable}={os.environ[variable]} is set and wins at the next start",
                            severity="warning", markup=False)

    # -- drawing -----------------------------------------------------------------------------
    def _touch(self, key: str) -> None:
        self._dirty.add(key)

    def _drop_row(self, key: str) -> None:
        self._dirty.discard(key)
        self._gone.add(key)
        self._plotted = None

    def _ui_ready(self) -> bool:
        """False before the main screen is up and while the app shuts down (its widgets are
        being removed)."""
        if self._shutting_down or not self.screen_stack or being_removed(self.main):
            return False
        return bool(self.main.query(RunTable))

    def on_data_table_row_highlighted(self) -> None:
        if self._ui_ready():
            self._redraw_selection()

    def _redraw(self) -> None:
        """Timer: redraw the rows that changed, then the selected run's line and plots."""
        if not self._ui_ready():
            return
        table = self.main.runs
        for key in self._gone:
            table.remove(key)
        self._gone.clear()
        if self._dirty:
            for key, view in self.views.items():  # in insertion order: new rows go at the end
                if key in self._dirty:
                    table.upsert(view)
            self._dirty.clear()
        self._redraw_selection()

    def _selected_views(self) -> list[RunView]:
        key = self.main.runs.selected_key
        view = self.views.get(key) if key else None
        if view is None:
            return []
        twins = [other for other in self.views.values() if other.twin_of(view)]
        return [view, *twins[:1]]

    def _redraw_selection(self) -> None:
        views = self._selected_views()
        ahead = 0
        if views and views[0].status == "queued":
            keys = [job.key for job in self.queue.waiting]
            ahead = keys.index(views[0].key) if views[0].key in keys else 0
        self.main.progress.show(views[0] if views else None, ahead)
        signature = (
            self.theme,
            tuple((v.key, v.status, v.epochs_done, len(v.progress_step), id(v)) for v in views),
        )
        if signature == self._plotted:
            return
        self._plotted = signature
        plot_theme = plot_theme_for(self.themes_catalog, self.theme, dark=self.current_theme.dark)
        no_color = self.no_color or no_color_requested()
        loss, accuracy = curves_for(views, plot_theme, no_color=no_color)
        caption = _caption(views)
        for plot in self.main.plots:
            plot.show_curves(loss if plot.metric == "loss" else accuracy, caption)


def _caption(views: list[RunView]) -> str:
    if not views:
        return "no run selected"
    config = views[0].config
    if len(views) > 1 and config is not None:
        return f"{config.dataset}/{config.arch} seed {config.seed}: BN vs no BN"
    return views[0].label


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def run_app(settings: AppSettings) -> int:
    """Run the TUI until the user quits; returns the exit status. No trainer outlives it."""
    app = BntuiApp(settings, save_theme=True)
    try:
        app.run()
    finally:
        app.stop_all_trainers()
    return app.return_code or 0  # 1 when the app stopped on an unexpected error
