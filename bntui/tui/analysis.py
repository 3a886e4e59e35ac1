"""Opening the analysis screens (compare, group, diagnostics, export) from the run list.

The screens take run-store records; this module picks which runs (the marked ones, else the
selected run and its BN twin), finds their records in the store watcher's latest poll, and
keeps an open screen fed with fresh records as the store changes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bntui.store.schema import RunRecord

if TYPE_CHECKING:
    from bntui.tui.app import BntuiApp
    from bntui.tui.run_view import RunView


def _records_by_id(app: BntuiApp) -> dict[str, RunRecord]:
    from bntui.store import list_runs

    try:
        runs = list_runs(app.settings.runs_dir)  # cached by the store: unchanged runs are not re-read
    except Exception as exc:  # an unreadable runs dir is reported by the watcher; say it here too
        app.notify(f"run store: {exc}", severity="error", markup=False)
        return {}
    return {run.id: run.record for run in runs if run.record is not None}


def _selected_view(app: BntuiApp) -> RunView | None:
    key = app.main.runs.selected_key
    return app.views.get(key) if key else None


def chosen_run_ids(app: BntuiApp) -> list[str]:
    """The marked runs in list order; without marks, the selected run and its BN twin."""
    table = app.main.runs
    if table.marked:
        return [view.run_id for key, view in app.views.items() if key in table.marked and view.run_id]
    selected = _selected_view(app)
    if selected is None or selected.run_id is None:
        return []
    twins = [v.run_id for v in app.views.values() if v.twin_of(selected) and v.run_id]
    return [selected.run_id, *twins[:1]]


def group_run_ids(app: BntuiApp) -> tuple[str | None, list[str]]:
    selected = _selected_view(app)
    if selected is None or selected.group is None:
        return None, []
    return selected.group, [v.run_id for v in app.views.values() if v.group == selected.group and v.run_id]


def _say_why_no_group(app: BntuiApp) -> None:
    if _selected_view(app) is None:
        app.notify("No run is selected: start runs with ^r first.", severity="warning")
    else:
        app.notify("The selected run belongs to no group: start runs with BatchNorm 'both' "
                   "or seeds above 1 to get one.", severity="warning")


def mark_group(app: BntuiApp) -> None:
    group, ids = group_run_ids(app)
    if group is None:
        _say_why_no_group(app)
        return
    table = app.main.runs
    keys = [key for key, view in app.views.items() if view.group == group]
    table.set_marks(keys, on=not all(key in table.marked for key in keys))


def _records_for(app: BntuiApp, ids: list[str]) -> list[RunRecord]:
    records = _records_by_id(app)
    missing = [run_id for run_id in ids if run_id not in records]
    if missing:
        app.notify(f"not readable yet, left out: {', '.join(missing)}", severity="warning", markup=False)
    return [records[run_id] for run_id in ids if run_id in records]


def open_compare(app: BntuiApp) -> None:
    from bntui.tui.screens.compare import CompareScreen

    records = _records_for(app, chosen_run_ids(app))
    if len(records) < 1:
        app.notify("Mark runs with space (or select a run) to compare them.", severity="warning")
        return
    app.push_screen(CompareScreen(records))


def open_group(app: BntuiApp) -> None:
    from bntui.tui.screens.group import GroupScreen

    group, ids = group_run_ids(app)
    if group is None:
        _say_why_no_group(app)
        return
    records = _records_for(app, ids)
    if records:
        app.push_screen(GroupScreen(records))


def open_diagnostics(app: BntuiApp) -> None:
    from bntui.tui.screens.diagnostics import DiagnosticsScreen

    records = _records_for(app, chosen_run_ids(app)[:2])
    if not records:
        app.notify("Select a run first.", severity="warning")
        return
    app.push_screen(DiagnosticsScreen(records))


def open_export(app: BntuiApp) -> None:
    from bntui.tui.screens.export_dialog import ExportDialog, default_export_path

    ids = chosen_run_ids(app) if app.main.runs.marked else group_run_ids(app)[1] or chosen_run_ids(app)[:1]
    if not ids:
        app.notify("Mark runs with space (or select a run) to export them.", severity="warning")
        return

    def exported(path: Path | None) -> None:
        if path is not None:
            app.notify(f"exported {len(ids)} run(s) to {path}", title="Export", markup=False)

    app.push_screen(ExportDialog(ids, default_export_path(), runs_dir=app.settings.runs_dir), exported)


def refresh_open_screen(app: BntuiApp) -> None:
    """Feed an open analysis screen the latest records of its runs (new seeds of a group too)."""
    from bntui.tui.screens.compare import CompareScreen
    from bntui.tui.screens.diagnostics import DiagnosticsScreen
    from bntui.tui.screens.group import GroupScreen

    screen = app.screen
    if not isinstance(screen, (CompareScreen, DiagnosticsScreen, GroupScreen)):
        return
    shown = [record.id for record in screen.records]
    records = _records_by_id(app)
    if isinstance(screen, GroupScreen) and screen.records:
        group = screen.records[0].group
        shown = [run_id for run_id, record in records.items() if record.group == group]
    fresh = [records[run_id] for run_id in shown if run_id in records]
    if fresh:
        screen.update_records(fresh)
