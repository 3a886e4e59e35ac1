"""Opening the analysis screens (compare, group, diagnostics, landscape, export) from the run list.

The screens take run-store records; this module picks which runs (the marked ones, else the
selected run and its BN twin), takes their records from the session (the store watcher's
latest poll: no file is read on the event loop), and keeps an open screen fed with fresh
records as the store changes. It knows the app only through the small AnalysisHost protocol."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from bntui.settings import AppSettings
from bntui.store.schema import RunRecord
from bntui.tui.run_view import RunView
from bntui.tui.session import RunSession, StoredRecords


class AnalysisHost(Protocol):
    """What these functions need of the app (BntuiApp provides it)."""

    settings: AppSettings
    session: RunSession

    @property
    def main(self) -> Any: ...  # the main screen: .runs is the run list

    @property
    def screen(self) -> Any: ...

    def notify(self, message: str, **kwargs: Any) -> None: ...

    def push_screen(self, screen: Any, callback: Any = None) -> Any: ...


def _records_by_id(app: AnalysisHost) -> StoredRecords:
    """Records of the runs that have started: a queued run has nothing to show yet (it joins
    an open screen when it starts, refresh_open_screen)."""
    return StoredRecords(app.session.stored, lambda stored: stored.status != "queued")  # read when looked up


def _selected_view(app: AnalysisHost) -> RunView | None:
    key = app.main.runs.selected_key
    return app.session.views.get(key) if key else None


def _selected_and_twin(app: AnalysisHost) -> list[str]:
    """View keys of the selected run and its BN twin (a queued run has no run id yet)."""
    selected = _selected_view(app)
    if selected is None:
        return []
    twin = app.session.twin(selected)
    return [selected.key] if twin is None else [selected.key, twin.key]


def chosen_keys(app: AnalysisHost) -> list[str]:
    """The marked runs in list order; without marks, the selected run and its BN twin."""
    table = app.main.runs
    if table.marked:
        return [key for key in app.session.views if key in table.marked]
    return _selected_and_twin(app)


def _run_ids(app: AnalysisHost, keys: list[str]) -> list[str]:
    return [view.run_id for key in keys if (view := app.session.views.get(key)) is not None and view.run_id]


def chosen_run_ids(app: AnalysisHost) -> list[str]:
    return _run_ids(app, chosen_keys(app))


def group_run_ids(app: AnalysisHost) -> tuple[str | None, list[str]]:
    selected = _selected_view(app)
    if selected is None or selected.group is None:
        return None, []
    return selected.group, app.session.group_ids(selected.group)


def _say_why_no_group(app: AnalysisHost) -> None:
    if _selected_view(app) is None:
        app.notify("No run is selected: start runs with ^r first.", severity="warning")
    else:
        app.notify(
            "The selected run belongs to no group: start runs with BatchNorm 'both' or seeds above 1 to get one.",
            severity="warning",
        )


def mark_group(app: AnalysisHost) -> None:
    group, ids = group_run_ids(app)
    if group is None:
        _say_why_no_group(app)
        return
    table = app.main.runs
    keys = app.session.group_ids(group)
    table.set_marks(keys, on=not all(key in table.marked for key in keys))


def _records_for(app: AnalysisHost, ids: list[str]) -> list[RunRecord]:
    records = _records_by_id(app)
    missing = [run_id for run_id in ids if run_id not in records]
    if missing:
        app.notify(f"not readable yet, left out: {', '.join(missing)}", severity="warning", markup=False)
    return [records[run_id] for run_id in ids if run_id in records]


def _open_tracking(app: AnalysisHost, keys: list[str], screen_for, nothing_chosen: str) -> None:
    """Open the screen on the runs of `keys` that have records. Runs still queued join it
    when they start (refresh_open_screen), so a screen opened on a launch shows all of it."""
    records = _records_for(app, _run_ids(app, keys))
    if not records:
        if keys:
            app.notify("Not started yet: open this again once the run is training.", severity="warning")
        else:
            app.notify(nothing_chosen, severity="warning")
        return
    screen = screen_for(records)
    app.session.analysis_ids[screen] = keys
    app.push_screen(screen)


def open_compare(app: AnalysisHost) -> None:
    from bntui.tui.screens.compare import CompareScreen

    _open_tracking(app, chosen_keys(app), CompareScreen, "Mark runs with space (or select a run) to compare them.")


def open_group(app: AnalysisHost) -> None:
    from bntui.tui.screens.group import GroupScreen

    group, ids = group_run_ids(app)
    if group is None:
        _say_why_no_group(app)
        return
    records = _records_for(app, ids)
    if records:
        from bntui.config import swept_settings

        if swept_settings(record.config for record in records):  # a sweep: its own view
            from bntui.tui.screens.sweep import SweepScreen

            app.push_screen(SweepScreen(records))
            return
        app.push_screen(GroupScreen(records))


def open_diagnostics(app: AnalysisHost) -> None:
    """The selected run and its twin, marks or not: the screen shows one BN / no-BN pair."""
    from bntui.tui.screens.diagnostics import DiagnosticsScreen

    _open_tracking(app, _selected_and_twin(app), DiagnosticsScreen, "Select a run first.")


def open_landscape(app: AnalysisHost) -> None:
    """Like diagnostics: the selected run and its twin, side by side."""
    from bntui.tui.screens.landscape import LandscapeScreen

    _open_tracking(app, _selected_and_twin(app), LandscapeScreen, "Select a run first.")


def open_export(app: AnalysisHost) -> None:
    from bntui.tui.screens.export_dialog import ExportDialog, default_export_path

    ids = chosen_run_ids(app) if app.main.runs.marked else group_run_ids(app)[1] or chosen_run_ids(app)[:1]
    if not ids:
        app.notify("Mark runs with space (or select a run) to export them.", severity="warning")
        return

    def exported(path: Path | None) -> None:
        if path is not None:
            app.notify(f"exported {len(ids)} run(s) to {path}", title="Export", markup=False)

    app.push_screen(ExportDialog(ids, default_export_path(), runs_dir=app.settings.runs_dir), exported)


def refresh_open_screen(app: AnalysisHost, removed: Sequence[str] = ()) -> None:
    """Feed an open analysis screen the latest records of its runs: the runs it was opened on
    that have started since, new seeds of a group, and none of the runs removed from the store."""
    from bntui.tui.screens.compare import CompareScreen
    from bntui.tui.screens.diagnostics import DiagnosticsScreen
    from bntui.tui.screens.group import GroupScreen
    from bntui.tui.screens.landscape import LandscapeScreen
    from bntui.tui.screens.sweep import SweepScreen

    screen = app.screen
    if not isinstance(screen, (CompareScreen, DiagnosticsScreen, GroupScreen, LandscapeScreen, SweepScreen)):
        return
    shown = [record.id for record in screen.records]
    shown += [run_id for run_id in _run_ids(app, app.session.analysis_ids.get(screen, [])) if run_id not in shown]
    records = _records_by_id(app)
    if isinstance(screen, (GroupScreen, SweepScreen)) and screen.records:
        group = screen.records[0].group
        shown = [run_id for run_id in records if app.session.stored[run_id].group == group]
    gone = [run_id for run_id in shown if run_id in removed]
    if gone:
        app.notify(f"removed from the run store: {', '.join(gone)}", severity="warning", markup=False)
    fresh = [records[run_id] for run_id in shown if run_id in records and run_id not in removed]
    if fresh:
        screen.update_records(fresh)
    elif gone:
        screen.dismiss()  # every run it showed is gone: back to the run list
