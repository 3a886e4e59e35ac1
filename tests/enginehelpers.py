"""Training a config in this process and reading its numbers back, for the engine's tests."""

from __future__ import annotations

from bntui.config import RunConfig
from bntui.engine.events import EpochEnded, Progress, RunFinished
from bntui.engine.train import train


def run(config: RunConfig, should_stop=lambda: False, data_dir="unused", **kwargs):
    """(RunResult, events) of one run of `config`."""
    events = []
    result = train(config, events.append, should_stop, data_dir=data_dir, **kwargs)
    return result, events


def losses(events) -> list[float]:
    """Every loss and metric of a run: equal lists mean bit-identical training."""
    numbers = []
    for event in events:
        if isinstance(event, Progress):
            numbers.append(event.train_loss)
        elif isinstance(event, EpochEnded):
            numbers += [event.train_loss, event.val_loss, event.train_accuracy, event.val_accuracy]
        elif isinstance(event, RunFinished):
            numbers += [event.test_loss, event.test_accuracy, event.train_loss]
    return numbers
