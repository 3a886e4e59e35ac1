"""What a run's events add up to: the one reducer of events into run state.

The writer folds each event as it writes it, the reader each line as it reads it back; the CLI
(`bntui run`, `bntui show`...) and the TUI see runs only as the reader builds them from this
state (bntui.store.StoredRun), never from events of their own. Events come in as their
events.jsonl lines (dicts with "type", already validated): a key that is absent from an epoch
line means "not recorded", which a dataclass's None default could not say."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from bntui.engine.events import EVENT_TYPES, TERMINAL_EVENTS, Event, RunStarted
from bntui.store.event_model import OPTIONAL_EPOCH_FIELDS

# Field names of each event class, looked up once (dataclasses.fields is slow for thousands of runs).
_FIELD_NAMES = {cls: tuple(f.name for f in fields(cls)) for cls in EVENT_TYPES.values()}

REQUIRED_EPOCH_KEYS = ("epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy")
PROGRESS_KEYS = ("step", "epoch", "train_loss", "elapsed")


@dataclass
class RunTotals:
    """The few numbers a listing needs, kept as events are folded, so that a run can be listed
    without its series (store.layout LISTING_FILE holds them; the reader then folds only the
    lines written after them)."""

    epochs_done: int = 0
    best_val_loss: float | None = None  # the lowest finite val_loss
    max_elapsed: float | None = None  # training seconds at the furthest epoch end or progress point
    optional_counts: dict[str, int] = field(default_factory=dict)  # epochs that recorded each optional key
    last_epoch: dict[str, Any] | None = None  # the latest epoch line
    last_progress: dict[str, Any] | None = None  # the latest progress line
    points: dict[str, int] = field(default_factory=dict)  # diagnostics / landscape points by kind

    def add(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "epoch":
            self.epochs_done += 1
            self.last_epoch = data
            value = data["val_loss"]
            if math.isfinite(value) and (self.best_val_loss is None or value < self.best_val_loss):
                self.best_val_loss = value
            for key in OPTIONAL_EPOCH_FIELDS:
                if key in data:
                    self.optional_counts[key] = self.optional_counts.get(key, 0) + 1
        elif kind == "progress":
            self.last_progress = data
        elif kind in ("diagnostics", "landscape"):
            self.points[kind] = self.points.get(kind, 0) + 1
        elapsed = data.get("elapsed") if kind in ("epoch", "progress") else None
        if elapsed is not None and (self.max_elapsed is None or elapsed > self.max_elapsed):
            self.max_elapsed = elapsed

    def complete(self, key: str) -> bool:
        """Whether every epoch recorded optional `key` (history() keeps only such columns)."""
        return self.optional_counts.get(key, 0) == self.epochs_done


# The series of every state that keeps none (keep_series=False): empty, never appended to.
_NO_EPOCHS: dict[str, list[Any]] = {k: [] for k in REQUIRED_EPOCH_KEYS}
_NO_OPTIONAL: dict[str, list[Any]] = {k: [] for k in OPTIONAL_EPOCH_FIELDS}
_NO_PROGRESS: dict[str, list[Any]] = {k: [] for k in PROGRESS_KEYS}
_NO_POINTS: list[dict[str, Any]] = []


@dataclass
class RunState:
    started: RunStarted | None = None
    terminal: Event | None = None
    epochs: dict[str, list[Any]] = field(default_factory=lambda: {k: [] for k in REQUIRED_EPOCH_KEYS})
    epoch_optional: dict[str, list[Any]] = field(default_factory=lambda: {k: [] for k in OPTIONAL_EPOCH_FIELDS})
    progress: dict[str, list[Any]] = field(default_factory=lambda: {k: [] for k in PROGRESS_KEYS})
    diagnostics: list[dict[str, Any]] = field(default_factory=list)
    landscape: list[dict[str, Any]] = field(default_factory=list)
    last_step: int = 0  # the furthest training step any event speaks of
    totals: RunTotals = field(default_factory=RunTotals)
    # False: only started, terminal, last_step and totals are kept (a listing's state), not the
    # series; both kinds fold every line the same way.
    keep_series: bool = True

    def __post_init__(self) -> None:
        if not self.keep_series:  # thousands of listed runs: their (empty) series are shared
            self.epochs, self.epoch_optional, self.progress = _NO_EPOCHS, _NO_OPTIONAL, _NO_PROGRESS
            self.diagnostics = self.landscape = _NO_POINTS

    def apply(self, data: dict[str, Any]) -> None:
        """Fold one event, given as its events.jsonl line."""
        cls = EVENT_TYPES[data["type"]]
        kind = cls.kind
        self.totals.add(kind, data)
        if kind in ("progress", "epoch", "diagnostics", "landscape") and not self.keep_series:
            self.last_step = max(self.last_step, data.get("step") or 0)
        elif kind == "progress":
            for key in PROGRESS_KEYS:
                self.progress[key].append(data[key])
            self.last_step = max(self.last_step, data["step"])
        elif kind == "epoch":
            for key in REQUIRED_EPOCH_KEYS:
                self.epochs[key].append(data[key])
            for key in OPTIONAL_EPOCH_FIELDS:
                if key in data:
                    self.epoch_optional[key].append(data[key])
            if "step" in data:
                self.last_step = max(self.last_step, data["step"])
        elif kind in ("diagnostics", "landscape"):
            points = self.diagnostics if kind == "diagnostics" else self.landscape
            points.append({k: v for k, v in data.items() if k != "type"})
            self.last_step = max(self.last_step, data["step"])
        elif kind == "started":
            # Fields RunStarted gained later have defaults; older lines lack them.
            self.started = RunStarted(**{name: data[name] for name in _FIELD_NAMES[RunStarted] if name in data})
        elif any(cls is terminal for terminal in TERMINAL_EVENTS):
            names = _FIELD_NAMES[cls]
            self.terminal = cls(**{k: v for k, v in data.items() if k in names})

    @property
    def epochs_done(self) -> int:
        return self.totals.epochs_done

    @property
    def last_elapsed(self) -> float | None:
        """Training seconds at the furthest epoch end or progress point."""
        return self.totals.max_elapsed

    def history(self) -> dict[str, list[Any]]:
        count = len(self.epochs["epoch"])
        result = {key: list(values) for key, values in self.epochs.items()}
        for key, values in self.epoch_optional.items():
            # All epochs or none: a partial column cannot be lined up with the epochs.
            result[key] = list(values) if len(values) == count else []
        return result
