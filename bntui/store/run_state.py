"""What a run's events add up to: the one reducer of events into run state.

The writer folds each event as it writes it, the reader each line as it reads it back; the CLI
(`bntui run`, `bntui show`...) and the TUI see runs only as the reader builds them from this
state (bntui.store.StoredRun), never from events of their own. Events come in as their
events.jsonl lines (dicts with "type", already validated): a key that is absent from an epoch
line means "not recorded", which a dataclass's None default could not say."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from bntui.engine.events import EVENT_TYPES, TERMINAL_EVENTS, Event, RunStarted
from bntui.store.event_model import OPTIONAL_EPOCH_FIELDS

REQUIRED_EPOCH_KEYS = ("epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy")
PROGRESS_KEYS = ("step", "epoch", "train_loss", "elapsed")


@dataclass
class RunState:
    started: RunStarted | None = None
    terminal: Event | None = None
    epochs: dict[str, list[Any]] = field(default_factory=lambda: {k: [] for k in REQUIRED_EPOCH_KEYS})
    epoch_optional: dict[str, list[Any]] = field(
        default_factory=lambda: {k: [] for k in OPTIONAL_EPOCH_FIELDS}
    )
    progress: dict[str, list[Any]] = field(default_factory=lambda: {k: [] for k in PROGRESS_KEYS})
    diagnostics: list[dict[str, Any]] = field(default_factory=list)
    landscape: list[dict[str, Any]] = field(default_factory=list)
    last_step: int = 0  # the furthest training step any event speaks of

    def apply(self, data: dict[str, Any]) -> None:
        """Fold one event, given as its events.jsonl line."""
        cls = EVENT_TYPES[data["type"]]
        kind = cls.kind
        if kind == "progress":
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
            self.started = RunStarted(**{f.name: data[f.name] for f in fields(RunStarted) if f.name in data})
        elif any(cls is terminal for terminal in TERMINAL_EVENTS):
            names = {f.name for f in fields(cls)}
            self.terminal = cls(**{k: v for k, v in data.items() if k in names})

    @property
    def epochs_done(self) -> int:
        return len(self.epochs["epoch"])

    @property
    def last_elapsed(self) -> float | None:
        """Training seconds at the furthest epoch end or progress point."""
        elapsed = [*self.epoch_optional["elapsed"], *self.progress["elapsed"]]
        return max(elapsed) if elapsed else None

    def history(self) -> dict[str, list[Any]]:
        count = len(self.epochs["epoch"])
        result = {key: list(values) for key, values in self.epochs.items()}
        for key, values in self.epoch_optional.items():
            # All epochs or none: a partial column cannot be lined up with the epochs.
            result[key] = list(values) if len(values) == count else []
        return result
