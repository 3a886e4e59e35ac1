"""The run list's filter (`/`, the grammar of `bntui runs --filter`, live as you type) and its
tags and notes (`t`, `n`), written to each run's annotations.json.

Tags are read from the store in a worker thread (no file I/O on the event loop) and kept in
RunFilterState.tags; the filter matches against that copy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from bntui.filters import FilterError, RunFacts, parse_filter
from bntui.present.words import counted
from bntui.tui.run_view import RunView


@dataclass
class RunFilterState:
    """The app's run-list filter: the query, its predicate, and the tags it matches against."""

    query: str = ""
    predicate: Callable[[RunFacts], bool] | None = None
    tags: dict[str, list[str]] = field(default_factory=dict)  # run id -> tags

    def shows(self, view: RunView) -> bool:
        if self.predicate is None:
            return True
        run_id = view.run_id or view.key
        facts = RunFacts(
            id=run_id, status=view.status, config=view.config, group=view.group, tags=tuple(self.tags.get(run_id, ()))
        )
        return self.predicate(facts)


def filter_state(app: Any) -> RunFilterState:
    state = getattr(app, "run_filter", None)
    if not isinstance(state, RunFilterState):
        state = RunFilterState()
        app.run_filter = state
    return state


def load_tags(app: Any) -> dict[str, list[str]]:
    """Every stored run's tags (call it in a worker thread: it reads a file per run)."""
    from bntui.store.annotations import read_annotations

    return {run_id: read_annotations(stored.path).tags for run_id, stored in list(app.session.stored.items())}


def apply_filter(app: Any, query: str) -> None:
    """Show only the runs `query` selects (raises FilterError, leaving the list as it was)."""
    state = filter_state(app)
    predicate = parse_filter(query) if query.strip() else None
    state.query, state.predicate = query.strip(), predicate
    runs = app.main.runs
    runs.row_filter = state.shows if predicate is not None else None
    runs.filter_query = state.query if predicate is not None else ""
    runs.reset_rows()
    app.session.touch_all()


class FilterScreen(ModalScreen[None]):
    """A one-line query under the run list; the list follows each keystroke."""

    DEFAULT_CSS = """
    FilterScreen { align: center bottom; background: $background 30%; }
    FilterScreen #filter-box { width: 100%; height: auto; padding: 0 1; background: $panel; }
    FilterScreen #filter-error { color: $error; height: auto; }
    """
    BINDINGS = [Binding("escape", "close", "Close (keep the filter)")]

    def compose(self) -> ComposeResult:
        with Vertical(id="filter-box"):
            yield Static(
                "Filter runs, e.g. bn=on lr<0.01 norm=batch tag:paper status:finished id:2026 "
                "(empty: every run) · Enter/Escape: close",
                id="filter-hint",
            )
            yield Input(filter_state(self.app).query, id="filter-query", placeholder="setting=value tag:NAME ...")
            yield Static(id="filter-error")

    def on_mount(self) -> None:
        self.query_one(Input).focus()
        self._load_tags()

    @work(thread=True, exclusive=True)
    def _load_tags(self) -> None:
        tags = load_tags(self.app)
        self.app.call_from_thread(self._tags_loaded, tags)

    def _tags_loaded(self, tags: dict[str, list[str]]) -> None:
        filter_state(self.app).tags = tags
        self._apply(self.query_one(Input).value)

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        self._apply(event.value)

    def _apply(self, query: str) -> None:
        error = self.query_one("#filter-error", Static)
        try:
            apply_filter(self.app, query)
        except FilterError as exc:
            error.update(Text(str(exc)))
            return
        error.update("")

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.dismiss()

    def action_close(self) -> None:
        self.dismiss()


class AnnotateScreen(ModalScreen[None]):
    """Tags (`t`: words; -word takes a tag off) or the note (`n`) of the chosen runs."""

    DEFAULT_CSS = """
    AnnotateScreen { align: center middle; }
    AnnotateScreen #annotate-box { width: 80%; height: auto; padding: 1 2; background: $panel; border: round $accent; }
    AnnotateScreen #annotate-error { color: $error; height: auto; }
    """
    BINDINGS = [Binding("escape", "close", "Cancel")]

    def __init__(self, kind: str, run_ids: list[str]) -> None:
        super().__init__()
        self.kind = kind  # "tags" or "note"
        self.run_ids = run_ids

    def compose(self) -> ComposeResult:
        runs = f"{len(self.run_ids)} runs" if len(self.run_ids) > 1 else self.run_ids[0]
        hint = (
            "Tags to add, separated by spaces; -tag takes one off" if self.kind == "tags" else "The note (empty: none)"
        )
        with Vertical(id="annotate-box"):
            yield Static(Text(f"{hint} · {runs} · Enter: save · Escape: cancel"))
            yield Input(id="annotate-text")
            yield Static(id="annotate-error")

    def on_mount(self) -> None:
        self.query_one(Input).focus()
        if self.kind == "note":
            self._load_note()

    def _run_path(self, run_id: str) -> Path | None:
        """The folder of a run the app has read from the store; None if it is gone."""
        app: Any = self.app  # BntuiApp, whose session holds the runs read from the store
        stored = app.session.stored.get(run_id)
        return stored.path if stored is not None else None

    @work(thread=True)
    def _load_note(self) -> None:
        from bntui.store.annotations import read_annotations

        path = self._run_path(self.run_ids[0])
        note = read_annotations(path).note if path is not None else None
        if note:
            self.app.call_from_thread(setattr, self.query_one(Input), "value", note)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        words = event.value.split()
        if self.kind == "tags":
            from bntui.store.annotations import check_tag

            try:
                for word in words:
                    check_tag(word.removeprefix("-"))
            except ValueError as exc:
                self.query_one("#annotate-error", Static).update(Text(str(exc)))
                return
        self._save(event.value)

    @work(thread=True, exclusive=True)
    def _save(self, text: str) -> None:
        from bntui.store import StoreError
        from bntui.store.annotations import change_tags, set_note

        try:
            for run_id in self.run_ids:
                path = self._run_path(run_id)
                if path is None:
                    continue
                if self.kind == "note":
                    set_note(path, text.strip())
                else:
                    words = text.split()
                    tags = change_tags(
                        path,
                        [w for w in words if not w.startswith("-")],
                        [w[1:] for w in words if w.startswith("-")],
                    ).tags
                    filter_state(self.app).tags[run_id] = tags
        except (StoreError, ValueError) as exc:
            self.app.call_from_thread(self.query_one("#annotate-error", Static).update, Text(str(exc).splitlines()[0]))
            return
        self.app.call_from_thread(self._saved)

    def _saved(self) -> None:
        what = "note" if self.kind == "note" else "tags"
        count = len(self.run_ids)
        self.app.notify(f"{what} saved for {counted(count, 'run')}", markup=False)
        if filter_state(self.app).predicate is not None:
            apply_filter(self.app, filter_state(self.app).query)
        self.dismiss()

    def action_close(self) -> None:
        self.dismiss()


def open_filter(app: Any) -> None:
    app.push_screen(FilterScreen())


def open_annotate(app: Any, kind: str) -> None:
    """Tags or note of the marked runs, else the selected one."""
    from bntui.tui.analysis import chosen_run_ids

    ids = chosen_run_ids(app) if app.main.runs.marked else chosen_run_ids(app)[:1]
    if not ids:
        app.notify("Select a run (or mark runs with space) first.", severity="warning")
        return
    if kind == "note":
        ids = ids[:1]
    app.push_screen(AnnotateScreen(kind, ids))
