"""What the UI knows about one run: its row in the run list, its progress line and its curves.

Built from the run store (`from_stored`): the store's reader is the one place events become
run state, for every run whoever launched it. Plain Python, no Textual."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bntui.config import RunConfig, pairing_key
from bntui.store.schema import ACTIVE_STATUSES


@dataclass
class EpochCurves:
    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)


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
    queue_place: int | None = None  # queued: runs ahead of it in the store's queue
    # From a listing (the curves are read only for the runs a screen shows): the epochs done
    # and the latest epoch's validation numbers.
    listed_epochs: int = 0
    listed_val_loss: float | None = None
    listed_val_accuracy: float | None = None

    @property
    def epochs_total(self) -> int:
        return self.config.epochs if self.config else 0

    @property
    def epochs_done(self) -> int:
        return max(len(self.curves.epoch), self.listed_epochs)

    @property
    def val_loss(self) -> float | None:
        return self.curves.val_loss[-1] if self.curves.val_loss else self.listed_val_loss

    @property
    def val_accuracy(self) -> float | None:
        return self.curves.val_accuracy[-1] if self.curves.val_accuracy else self.listed_val_accuracy

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES or self.status == "stopping"

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

    @classmethod
    def from_stored(cls, stored: Any) -> RunView:
        """Build a view from a bntui.store.StoredRun (a damaged one keeps what could be read).
        A listed run gives the row's numbers without curves: from_stored(stored.full()) has them."""
        record = stored.brief
        status = str(getattr(stored, "status", "crashed"))
        if status == "running" and getattr(stored, "stop_requested", False):
            status = "stopping"  # its trainer ends it at its next step
        view = cls(
            key=stored.id,
            run_id=stored.id,
            config=None,
            status=status,
            queue_place=getattr(stored, "queue_place", None),
        )
        damaged = getattr(stored, "damaged", None)
        if record is None:
            view.message = damaged or "unreadable run"
            return view
        view.config = record.config
        view.group = record.group
        view.message = record.message or damaged
        view.device = record.environment.device
        totals, last_epoch = stored.totals, stored.last_epoch
        view.listed_epochs = totals.epochs_done
        if last_epoch is not None:
            view.listed_val_loss, view.listed_val_accuracy = last_epoch["val_loss"], last_epoch["val_accuracy"]
        history = record.history
        for index, epoch in enumerate(history.epoch):
            view.curves.epoch.append(epoch)
            view.curves.train_loss.append(history.train_loss[index])
            view.curves.val_loss.append(history.val_loss[index])
            view.curves.train_accuracy.append(history.train_accuracy[index])
            view.curves.val_accuracy.append(history.val_accuracy[index])
        view.steps_per_epoch = getattr(stored, "steps_per_epoch", None) or 0
        if not view.steps_per_epoch and history.step and history.epoch:
            view.steps_per_epoch = history.step[0] // max(history.epoch[0], 1)
        if not view.steps_per_epoch and last_epoch is not None and last_epoch.get("step"):
            view.steps_per_epoch = last_epoch["step"] // max(last_epoch["epoch"], 1)
        view.progress_step = list(record.progress.step)
        view.progress_loss = list(record.progress.train_loss)
        last_progress = totals.last_progress or {}
        listed_steps = [(last_epoch or {}).get("step") or 0, last_progress.get("step", 0)]
        view.step = max([*history.step, *record.progress.step, record.timings.steps, *listed_steps, 0])
        if not view.steps_per_epoch and record.progress.epoch and record.progress.step:
            view.steps_per_epoch = max(record.progress.step[0] // record.progress.epoch[0], 1)
        if record.final is not None:
            view.test_accuracy = record.final.test_accuracy
        view.total_seconds = record.timings.total_seconds
        if last_progress and last_progress["elapsed"] > 0:
            view.steps_per_second = last_progress["step"] / last_progress["elapsed"]
        return view

    def twin_of(self, other: RunView) -> bool:
        """The paired run of a BN on/off launch: same group, seed and settings (a sweep's
        swept value too), the other BN arm."""
        return (
            self.key != other.key
            and self.group is not None
            and self.group == other.group
            and self.config is not None
            and other.config is not None
            and self.config.seed == other.config.seed
            and self.config.bn != other.config.bn
            and pairing_key(self.config) == pairing_key(other.config)
        )
