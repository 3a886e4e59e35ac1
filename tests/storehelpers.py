"""Helpers for the run store tests (no tests here): runs written through RunWriter from the
engine's event dataclasses, without any training."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bntui.config import RunConfig
from bntui.engine.events import (
    Diagnostics,
    EpochEnded,
    Progress,
    RunCancelled,
    RunDiverged,
    RunFailed,
    RunFinished,
    RunStarted,
)
from bntui.store import RunWriter

STEPS_PER_EPOCH = 10


def started(epochs: int = 3, split_hash: str = "split-abc") -> RunStarted:
    return RunStarted(
        device="cpu",
        device_name="Test CPU",
        torch_version="9.9.9",
        parameters=1234,
        steps_per_epoch=STEPS_PER_EPOCH,
        epochs=epochs,
        train_size=640,
        val_size=160,
        test_size=100,
        split_hash=split_hash,
        time=time.time(),
    )


def epoch_event(epoch: int, *, bn: bool = True, val_loss: float | None = None) -> EpochEnded:
    return EpochEnded(
        epoch=epoch,
        step=epoch * STEPS_PER_EPOCH,
        train_loss=1.0 / epoch,
        val_loss=val_loss if val_loss is not None else 1.1 / epoch + 0.01 * epoch,
        # capped: an accuracy above 1 is not a valid record (long runs reach the cap)
        train_accuracy=min(0.99, 0.5 + 0.1 * epoch),
        val_accuracy=min(0.98, 0.45 + 0.1 * epoch),
        epoch_seconds=0.5 + 0.01 * epoch,
        elapsed=0.6 * epoch,
        val_loss_batch_stats=1.2 / epoch if bn else None,
        val_accuracy_batch_stats=min(0.97, 0.4 + 0.1 * epoch) if bn else None,
    )


def progress_event(epoch: int, step: int) -> Progress:
    return Progress(epoch=epoch, step=step, train_loss=1.5 / step, steps_per_second=100.0, elapsed=0.06 * step)


def diagnostics_event(epoch: int, step: int) -> Diagnostics:
    return Diagnostics(
        step=step,
        epoch=epoch,
        layers=[{"name": "bn1", "mean": 0.01 * step, "std": 1.0, "hist": [1, 2, 3]}],
    )


def finished_event(epochs: int) -> RunFinished:
    return RunFinished(
        train_loss=0.1,
        train_accuracy=0.91,
        val_loss=0.2,
        val_accuracy=0.88,
        test_loss=0.21,
        test_accuracy=0.87,
        steps=epochs * STEPS_PER_EPOCH,
        train_seconds=1.5,
        total_seconds=2.0,
    )


def terminal_event(status: str, epochs: int):
    if status == "finished":
        return finished_event(epochs)
    if status == "failed":
        return RunFailed(message="CUDA out of memory")
    if status == "cancelled":
        return RunCancelled(epochs_done=epochs, step=epochs * STEPS_PER_EPOCH)
    if status == "diverged":
        return RunDiverged(epoch=epochs, step=epochs * STEPS_PER_EPOCH, message="loss is nan")
    raise ValueError(status)


def write_events(
    writer: RunWriter, epochs: int, *, bn: bool = True, progress_per_epoch: int = 2, diagnostics: bool = True
) -> None:
    writer.write_event(started(epochs))
    for e in range(1, epochs + 1):
        for k in range(1, progress_per_epoch + 1):
            writer.write_event(progress_event(e, (e - 1) * STEPS_PER_EPOCH + k * 4))
        if diagnostics:
            writer.write_event(diagnostics_event(e, e * STEPS_PER_EPOCH))
        writer.write_event(epoch_event(e, bn=bn))


def make_run(
    runs_dir: Path,
    *,
    epochs: int = 3,
    status: str | None = "finished",
    group: str | None = None,
    diagnostics: bool = True,
    **config: Any,
) -> RunWriter:
    """A run with `epochs` epochs; status None leaves it open (its writer, this process, lives)."""
    config.setdefault("epochs", max(epochs, 1))
    cfg = RunConfig(**config)
    writer = RunWriter(runs_dir, cfg, group=group)
    write_events(writer, epochs, bn=cfg.bn, diagnostics=diagnostics)
    if status is not None:
        writer.write_event(terminal_event(status, epochs))
        writer.finish()
    return writer


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def set_owner(run_path: Path, **owner: Any) -> None:
    """Rewrite config.json's owner (to simulate a writer that died, or lives elsewhere)."""
    path = run_path / "config.json"
    data = json.loads(path.read_text())
    data["owner"].update(owner)
    path.write_text(json.dumps(data))


def set_mtime(path: Path, seconds_ago: float) -> None:
    import os

    when = time.time() - seconds_ago
    os.utime(path, (when, when))
