"""A learning-rate sweep in a run store, with known numbers, for the sweep view's tests."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from storehelpers import finished_event, terminal_event, write_events

from bntui.config import RunConfig
from bntui.store.writer import RunWriter

LRS = (0.001, 0.01, 0.1, 1.0)
GROUP = "g-lr-sweep"


def accuracy(lr: float, bn: bool, seed: int) -> float:
    """BN gains more the higher the rate; a little seed noise."""
    base = {0.001: 0.80, 0.01: 0.88, 0.1: 0.90, 1.0: 0.60}[lr]
    gain = {0.001: 0.005, 0.01: 0.01, 0.1: 0.03, 1.0: 0.3}[lr] if bn else 0.0
    return base + gain + 0.002 * seed


def make_lr_sweep(runs_dir: Path, seeds: int = 3, group: str = GROUP) -> None:
    """lr x BN on/off x seeds; the no-BN runs at lr 1 diverge."""
    for lr in LRS:
        for seed in range(seeds):
            for bn in (True, False):
                config = RunConfig(lr=lr, bn=bn, seed=seed, optimizer="sgd", epochs=2)
                writer = RunWriter(runs_dir, config, group=group)
                write_events(writer, 2, bn=bn, diagnostics=False)
                if not bn and lr == 1.0:
                    writer.write_event(terminal_event("diverged", 2))
                else:
                    writer.write_event(replace(finished_event(2), test_accuracy=accuracy(lr, bn, seed)))
                writer.finish()
