"""What the UI knows about one run: its row in the run list, its progress line and its curves.

Fed either by the events of a trainer this session started (`apply`) or by the run store
(`from_stored`, for runs of earlier sessions and of other processes). Plain Python, no Textual."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bntui.config import RunConfig
from bntui.engine.events import (
    EpochEnded,
    Event,
    Progress,
    RunCancelled,
    RunDiverged,
    RunFailed,
    RunFinished,
    RunStarted,
)

ACTIVE_STATUSES = ("queued", "starting", "running", "stopping")


@dataclass
class EpochCurves:
    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)

    def add(self, event: EpochEnded) -> None:
        if self.epoch and event.epoch <= self.epoch[-1]:
            return  # a repeated event (store poll racing the pipe) must not add a point twice
        self.epoch.append(event.epoch)
        self.train_loss.append(event.train_loss)
        self.val_loss.append(event.val_loss)
        self.train_accuracy.append(event.train_accuracy)
        self.val_accuracy.append(event.val_accuracy)


@dataclass
class RunView:
    key: str  # the run id, or the session's job key while the run is queued
    config: RunConfig | None
    status: str
    run_id: str | None = None
    group: str | None = None
    message: str | None = None
    device: str = ""
    steps_per_epoch: int = 0
    step: int = 0
    steps_per_second: float | None = None
    curves: EpochCurves = field(default_factory=EpochCurves)
    progress_step: list[int] = field(default_factory=list)
    progress_loss: list[float] = field(default_factory=list)
    test_accuracy: float | None = None
    total_seconds: float | None = None
    live: bool = False  # followed through the pipe of a trainer this session started
    version: int = 0  # bumped on every change: widgets redraw only what changed

    @property
    def epochs_total(self) -> int:
        return self.config.epochs if self.config else 0

    @property
    def epochs_done(self) -> int:
        return len(self.curves.epoch)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def label(self) -> str:
        return self.config.label if self.config else "?"

    @property
    def eta_seconds(self) -> float | None:
        if not self.steps_per_second or not self.steps_per_epoch or self.status != "running":
            return None
        remaining = self.steps_per_epoch * self.epochs_total - self.step
        return max(remaining, 0) / self.steps_per_second

    def progress_epochs(self) -> list[float]:
        """Progress points on the epoch axis (step 0 = epoch 0, the end of epoch 1 = 1)."""
        spe = self.steps_per_epoch or 1
        return [step / spe for step in self.progress_step]

    def apply(self, event: Event) -> None:
        """Fold one trainer event into the view."""
        if isinstance(event, RunStarted):
            self.status = "running" if self.status != "stopping" else self.status
            self.device = event.device
            self.steps_per_epoch = event.steps_per_epoch
        elif isinstance(event, Progress):
            if self.progress_step and event.step <= self.progress_step[-1]:
                return
            self.step = event.step
            self.steps_per_second = event.steps_per_second
            self.progress_step.append(event.step)
            self.progress_loss.append(event.train_loss)
        elif isinstance(event, EpochEnded):
            self.step = max(self.step, event.step)
            self.curves.add(event)
        elif isinstance(event, RunFinished):
            self.status = "finished"
            self.test_accuracy = event.test_accuracy
            self.total_seconds = event.total_seconds
            self.step = event.steps
        elif isinstance(event, RunCancelled):
            self.status = "cancelled"
        elif isinstance(event, RunDiverged):
            self.status, self.message = "diverged", event.message
        elif isinstance(event, RunFailed):
            self.status, self.message = "failed", event.message
        else:
            return  # diagnostics: for the BatchNorm screen, not the main view
        self.version += 1

    @classmethod
    def from_stored(cls, stored: Any) -> RunView:
        """Build a view from a bntui.store.StoredRun (a damaged one keeps what could be read)."""
        record = getattr(stored, "record", None)
        status = str(getattr(stored, "status", "crashed"))
        view = cls(key=stored.id, run_id=stored.id, config=None, status=status)
        damaged = getattr(stored, "damaged", None)
        if record is None:
            view.message = damaged or "unreadable run"
            return view
        view.config = record.config
        view.group = record.group
        view.message = record.message or damaged
        view.device = record.environment.device
        history = record.history
        for index, epoch in enumerate(history.epoch):
            view.curves.epoch.append(epoch)
            view.curves.train_loss.append(history.train_loss[index])
            view.curves.val_loss.append(history.val_loss[index])
            view.curves.train_accuracy.append(history.train_accuracy[index])
            view.curves.val_accuracy.append(history.val_accuracy[index])
        if history.step and history.epoch:
            view.steps_per_epoch = history.step[0] // max(history.epoch[0], 1)
        view.progress_step = list(record.progress.step)
        view.progress_loss = list(record.progress.train_loss)
        view.step = max([*history.step, *record.progress.step, record.timings.steps, 0])
        if not view.steps_per_epoch and record.progress.epoch and record.progress.step:
            view.steps_per_epoch = max(record.progress.step[0] // record.progress.epoch[0], 1)
        if record.final is not None:
            view.test_accuracy = record.final.test_accuracy
        view.total_seconds = record.timings.total_seconds
        if view.progress_step and record.progress.elapsed and record.progress.elapsed[-1] > 0:
            view.steps_per_second = view.progress_step[-1] / record.progress.elapsed[-1]
        return view

    def twin_of(self, other: RunView) -> bool:
        """The paired run of a BN on/off launch: same group and seed, the other BN arm."""
        return (
            self.key != other.key
            and self.group is not None
            and self.group == other.group
            and self.config is not None
            and other.config is not None
            and self.config.seed == other.config.seed
            and self.config.bn != other.config.bn
        )
