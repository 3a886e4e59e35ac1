"""The bntui Textual app: set up runs, queue them in the run store, watch them train.

The app never imports torch and never trains: a launch goes to the store's queue and the
detached scheduler starts a trainer process per run (bntui.runs), which outlives the app. Every
run, this session's own included, is shown from the store: a thread worker polls it and posts
what changed, and a plain RunSession object holds it for the screens. The plots, progress line
and run list are redrawn from a 0.25 s timer, never once per event."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from textual import on
from textual.app import App
from textual.screen import Screen
from textual.widgets import Button
from textual.worker import Worker, WorkerState, get_current_worker

from bntui.config import format_validation_error
from bntui.runs.launch import LaunchOptions
from bntui.settings import AppSettings
from bntui.present.text import printable
from bntui.themes import install_themes, load_themes, no_color_requested, plot_theme_for
from bntui.tui import analysis
from bntui.tui.commands import ActionsProvider
from bntui.tui.curves import curves_for
from bntui.tui.devices import DeviceChoice, DeviceDetection, DeviceDetectionError, auto_device
from bntui.tui.keys import bindings
from bntui.tui.adapters import being_removed
from bntui.tui.messages import DevicesFound, LaunchDone, RunsCancelled, SettingsChanged, StoreChanged
from bntui.tui.run_view import RunView
from bntui.tui.screens.confirm_quit import ConfirmQuitScreen, QuitChoice
from bntui.tui.screens.help import HelpScreen
from bntui.tui.screens.main import MainScreen
from bntui.tui.session import RunSession
from bntui.tui.store_watch import StoreWatcher
from bntui.tui.widgets.run_table import RunTable
from bntui.present.words import counted

REDRAW_SECONDS = 0.25  # plots, progress line and run list: at most 4 redraws a second
POLL_SECONDS = 1.0  # run store
RECONCILE_EVERY = 10  # polls between SLURM checks (jobs that ended before their run started)


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
        backends: Sequence[str] = ("local",),
        save_theme: bool = False,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        """`devices` skips device detection (tests and snapshots pass a fixed list);
        `backends`: where runs may train (run_app adds "slurm" when sbatch is on the PATH);
        `save_theme` writes a theme picked in the app to the config file (run_app sets it)."""
        super().__init__()
        self.settings = settings
        self.backends = tuple(backends)
        self.devices: list[DeviceChoice] | None = list(devices) if devices is not None else None
        self.save_theme = save_theme
        self.poll_seconds = poll_seconds
        self.session = RunSession()
        self.watcher = StoreWatcher(settings.runs_dir)
        self._plotted: object = None
        self._stop_polling = threading.Event()
        self._poll_now = threading.Event()
        self._device_detection = DeviceDetection()
        self.themes_catalog = load_themes()  # never raises: bad files are listed in .problems

    # -- start-up ----------------------------------------------------------------------------
    def get_default_screen(self) -> Screen:
        return MainScreen(
            self.settings.data_dir, self.settings.device, self.devices, self.backends, self.settings.backend
        )

    def on_mount(self) -> None:
        note = install_themes(self, self.themes_catalog, self.settings.theme)
        self._theme_saved = self.theme  # what the settings already say: no need to write it
        for text in (note, self.themes_catalog.warning_text()):
            if text:
                self.notify(text, title="Theme", severity="warning", timeout=10, markup=False)
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        self.run_worker(self._watch_store, thread=True, exit_on_error=False, group="store", name="run store watcher")
        self.set_interval(REDRAW_SECONDS, self._redraw)

    def on_ready(self) -> None:
        # After the first paint: the detection subprocess imports torch, which takes a CPU core
        # for a second or two; started earlier, it slows the first paint down.
        if self.devices is None:
            self.run_worker(
                self._find_devices, thread=True, exit_on_error=False, group="devices", name="device detection"
            )

    @property
    def main(self) -> MainScreen:
        screen = self.screen_stack[0]
        assert isinstance(screen, MainScreen)
        return screen

    def notify(self, message: str, *, title: str = "", **options: Any) -> None:
        # Notifications quote run ids, messages and reasons read from files: shown as text.
        super().notify(printable(message), title=printable(title), **options)

    # -- workers (threads: they post messages and never touch widgets) -----------------------
    def _watch_store(self) -> None:
        from bntui.store import StoreError

        worker = get_current_worker()
        problem: str | None = None
        self._replace_crashed_scheduler()
        polls = 0
        while not worker.is_cancelled and not self._stop_polling.is_set():
            if polls % RECONCILE_EVERY == 0:
                self._reconcile_slurm()
            polls += 1
            try:
                changed, removed = self.watcher.poll()
                now_problem = None
            except StoreError as exc:  # e.g. the runs dir is not a directory: say so once, retry
                changed, removed, now_problem = [], [], str(exc)
            if changed or removed or now_problem != problem:
                self.post_message(StoreChanged(changed, removed, now_problem if now_problem != problem else None))
                problem = now_problem
            self._poll_now.wait(self.poll_seconds)
            self._poll_now.clear()

    def _replace_crashed_scheduler(self) -> None:
        """Runs left queued by a scheduler that died (a reboot, kill -9) start again."""
        from bntui.runs.scheduler import ensure_scheduler
        from bntui.store.queue import entries

        if entries(self.settings.runs_dir):
            try:
                ensure_scheduler(self.settings.runs_dir)
            except OSError:
                pass  # an unwritable runs dir: the store watcher says so

    def _reconcile_slurm(self) -> None:
        from bntui.runs.cancel import reconcile_slurm

        try:
            reconcile_slurm(self.settings.runs_dir)
        except Exception:  # noqa: BLE001 - a cluster hiccup must not stop the watcher
            pass

    def _find_devices(self) -> None:
        try:
            devices = self._device_detection.run()
        except DeviceDetectionError:
            if self._device_detection.cancelled:
                return  # the app is quitting
            raise  # reported by on_worker_state_changed
        self.post_message(DevicesFound(devices, self._device_detection.warnings))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place a failed worker is reported; the app carries on."""
        if event.state != WorkerState.ERROR:
            return
        worker = event.worker
        self.notify(
            f"{worker.name}: {worker.error}", title="Background task failed", severity="error", timeout=10, markup=False
        )
        if worker.group == "devices":
            self._apply_devices([DeviceChoice("cpu", "CPU")])

    # -- messages ----------------------------------------------------------------------------
    def on_devices_found(self, message: DevicesFound) -> None:
        self._apply_devices(message.devices)
        for warning in message.warnings:  # e.g. why there is no GPU: a driver too old for torch
            self.notify(warning, title="Device detection", severity="warning", timeout=15, markup=False)

    def _apply_devices(self, devices: list[DeviceChoice]) -> None:
        self.devices = devices
        if self._ui_ready():
            self.main.form.set_devices(devices)

    def on_store_changed(self, message: StoreChanged) -> None:
        if message.problem:
            self.notify(message.problem, title="Run store", severity="error", timeout=15, markup=False)
        before = {run_id: view.status for run_id, view in self.session.views.items()}
        self.session.apply_store(message.changed, message.removed)
        for stored in message.changed:
            if stored.id in self.session.launched and before.get(stored.id) != stored.status:
                self._tell_ending(self.session.views[stored.id])
        if message.changed or message.removed:
            analysis.refresh_open_screen(self, message.removed)

    def _tell_ending(self, view: RunView) -> None:
        """A notification when a run this session launched ends."""
        name = view.run_id or view.label
        if view.status == "failed":
            self.notify(f"{name}: {view.message}", title="Run failed", severity="error", timeout=15, markup=False)
        elif view.status == "crashed":
            self.notify(f"{name}: {view.message}", title="Run crashed", severity="error", timeout=15, markup=False)
        elif view.status == "diverged":
            self.notify(f"{name}: {view.message}", title="Run diverged", severity="warning", timeout=10, markup=False)
        elif view.status == "finished" and view.test_accuracy is not None:
            self.notify(f"{name}: test accuracy {view.test_accuracy:.1%}", title="Run finished", markup=False)

    @on(Button.Pressed, "#start")
    def _start_pressed(self) -> None:
        self.action_start_runs()

    def on_settings_changed(self, message: SettingsChanged) -> None:
        if self._ui_ready():
            self.main.query_one("#start").disabled = bool(message.errors)

    # -- launching ---------------------------------------------------------------------------
    def action_start_runs(self) -> None:
        from bntui.launch import plan_runs
        from pydantic import ValidationError

        form = self.main.form
        reading = form.validate_now()
        if reading.errors or reading.fields is None:
            problems = "; ".join(f"{name}: {text}" if name else text for name, text in reading.errors.items())
            self.notify(problems, title="Cannot start", severity="error", markup=False)
            return
        fields = reading.fields
        if fields.device == "auto" and self.devices is not None:
            fields = fields.model_copy(update={"device": auto_device(self.devices)})
        try:
            plan = plan_runs(fields, reading.bn, reading.seeds, reading.grid or None)  # type: ignore[arg-type]
        except ValidationError as exc:
            self.notify(format_validation_error(exc), title="Cannot start", severity="error", markup=False)
            return
        except ValueError as exc:
            self.notify(str(exc), title="Cannot start", severity="error", markup=False)
            return
        options = LaunchOptions.from_settings(self.settings)
        if reading.backend is not None:
            options = dataclasses.replace(options, backend=reading.backend)
        from bntui.tui.screens.confirm_launch import confirm_large_launch

        confirm_large_launch(self, len(plan.configs), partial(self._start_launch, plan, options))

    def _start_launch(self, plan, options: LaunchOptions) -> None:
        self.run_worker(
            partial(self._launch, plan, options), thread=True, exit_on_error=False, group="launch", name="launch"
        )

    def _launch(self, plan, options: LaunchOptions) -> None:
        """Worker: queue the plan in the store (file I/O and, for SLURM, sbatch: off the loop)."""
        from bntui.runs.launch import LaunchError, launch

        try:
            run_ids = launch(plan, options)
        except LaunchError as exc:
            self.post_message(LaunchDone([], options.backend, str(exc)))
            return
        self._poll_now.set()
        self.post_message(LaunchDone(run_ids, options.backend))

    def on_launch_done(self, message: LaunchDone) -> None:
        if message.error is not None:
            self.notify(message.error, title="Cannot start", severity="error", markup=False)
            return
        self.session.launched.extend(message.run_ids)
        self.session.to_select = message.run_ids[0]
        where = " on SLURM" if message.backend == "slurm" else ""
        self.notify(
            f"{counted(len(message.run_ids), 'run')} queued{where}; they go on if this terminal closes", markup=False
        )

    # -- stopping ----------------------------------------------------------------------------
    def action_cancel_selected(self) -> None:
        key = self.main.runs.selected_key
        view = self.session.views.get(key) if key else None
        if view is None:
            self.notify("Select a run in the run list first.", severity="warning")
            return
        if not view.active:
            self.notify(
                f"{view.run_id or view.label} is not running ({view.status}).", severity="warning", markup=False
            )
            return
        self.cancel_runs([view.key])

    def cancel_runs(self, run_ids: list[str]) -> None:
        """Ask the runs to stop, through the store (works for runs any process launched)."""
        stored = [self.session.stored[run_id] for run_id in run_ids if run_id in self.session.stored]
        self.run_worker(partial(self._cancel, stored), thread=True, exit_on_error=False, group="cancel", name="cancel")

    def _cancel(self, runs: list) -> None:
        from bntui.runs.cancel import cancel_run

        lines = [cancel_run(self.settings.runs_dir, run) for run in runs]
        self._poll_now.set()
        self.post_message(RunsCancelled(lines))

    def on_runs_cancelled(self, message: RunsCancelled) -> None:
        if message.lines:
            self.notify("\n".join(message.lines), title="Stop", markup=False)

    async def action_quit(self) -> None:
        if isinstance(self.screen, ConfirmQuitScreen):
            return  # already asking: a second ^q must not stack a second question
        active = self.session.active()
        if active:
            running = sum(1 for view in active if view.status != "queued")
            self.push_screen(ConfirmQuitScreen(running, len(active) - running), self._quit_answered)
        else:
            self.exit(0)

    def _quit_answered(self, answer: QuitChoice | None) -> None:
        if answer == "leave":
            self.exit(0)
        elif answer == "stop":
            self.run_worker(self._stop_and_exit(), group="quit", name="quit")

    async def _stop_and_exit(self) -> None:
        from bntui.runs.cancel import cancel_run

        runs = [self.session.stored[view.key] for view in self.session.active() if view.key in self.session.stored]
        await asyncio.to_thread(lambda: [cancel_run(self.settings.runs_dir, run) for run in runs])
        self.exit(0)

    async def on_unmount(self) -> None:
        self._stop_polling.set()
        self._poll_now.set()
        self._device_detection.cancel()

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
            self.push_screen(HelpScreen(self.screen))  # that screen's keys and markers first

    def action_system(self) -> None:
        from bntui.tui.screens.system import SystemScreen

        if not isinstance(self.screen, SystemScreen):
            self.push_screen(SystemScreen(lambda: list(self.session.views.values())))

    def action_toggle_mark(self) -> None:
        self.main.runs.toggle_mark()

    def action_sort_runs(self) -> None:
        self.main.runs.next_sort()

    def action_reverse_sort(self) -> None:
        self.main.runs.reverse_sort()

    def action_mark_all(self) -> None:
        self.main.runs.toggle_all_marks()

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

    def action_filter_runs(self) -> None:
        from bntui.tui.screens.run_filter import open_filter

        open_filter(self)

    def action_tag_runs(self) -> None:
        from bntui.tui.screens.run_filter import open_annotate

        open_annotate(self, "tags")

    def action_note_run(self) -> None:
        from bntui.tui.screens.run_filter import open_annotate

        open_annotate(self, "note")

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
        self.session.touch_all()
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
                self.notify(
                    f"theme saved, but {variable}={os.environ[variable]} is set and wins at the next start",
                    severity="warning",
                    markup=False,
                )

    # -- drawing -----------------------------------------------------------------------------
    def _ui_ready(self) -> bool:
        """False before the main screen is up and while the app shuts down (its widgets are
        being removed)."""
        if not self.screen_stack or being_removed(self.main):
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
        session = self.session
        for key in session.gone:
            table.remove_run(key)
        session.gone.clear()
        if session.dirty:
            for key, view in session.views.items():  # in store order: new rows go at the end
                if key in session.dirty:
                    table.upsert(view)
            session.dirty.clear()
            table.apply_sort()
        if session.to_select is not None and session.to_select in session.views:
            table.select_key(session.to_select)
            session.to_select = None
        self._redraw_selection()

    def _selected_views(self) -> list[RunView]:
        key = self.main.runs.selected_key
        view = self.session.views.get(key) if key else None
        if view is None:
            return []
        twin = self.session.twin(view)
        return [self.session.full_view(v) for v in ([view] if twin is None else [view, twin])]

    def _redraw_selection(self) -> None:
        views = self._selected_views()
        self.main.progress.show(views[0] if views else None)
        # A view is rebuilt whenever its run changes in the store: identity says "changed".
        signature = (self.theme, tuple(id(v) for v in views))
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


def run_app(settings: AppSettings) -> int:
    """Run the TUI until the user quits; returns the exit status. Runs go on without it."""
    from bntui.runs import slurm

    backends = ("local", "slurm") if slurm.available() else ("local",)
    app = BntuiApp(settings, backends=backends, save_theme=True)
    app.run()
    return app.return_code or 0  # 1 when the app stopped on an unexpected error
