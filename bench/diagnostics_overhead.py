"""What do BatchNorm diagnostics cost? Training throughput with diagnostics at the default
interval against diagnostics off, side by side in one process (target: under 5%).

    python bench/diagnostics_overhead.py [--reps 21] [--models mlp,lenet5,paper-fig1]
                                         [--interval N] [--threads N] [--device cpu]
                                         [--landscape 50,100] [--no-diagnostics]

MLP 784-128-64-10 with BatchNorm on mnist-mini (embedded, 10 epochs of 50 steps); LeNet-5
with BatchNorm on CIFAR-10-format files written to a temp dir (3 epochs of 62 steps); the
paper-fig1 preset's MLP (3 x 100 sigmoid units, batch 60, SGD) at the preset's interval (10)
on mnist-mini. Runs last about a second, so many repetitions are cheap and needed: a shared
2-core machine moves single figures by several percent.
Throughput is steps per second of the training loop (the epoch_seconds the engine reports,
evaluation excluded; the first epoch, which warms up, left out). Runs alternate on/off (the
order swapped every repetition). Printed per model:

- cost: 1 - best rate with diagnostics / best rate without (other processes on a shared
  machine only ever slow a run down, so the best is the least disturbed); this is the
  figure the target is about;
- best epochs: the same with the best single epochs (bursts of load spoil whole runs more
  often than whole epochs);
- median: the median over repetitions of 1 - rate on / rate off of the pair run together;
- in measure: the share of the diagnostics runs' training time spent inside the recorder
  (snapshot, capture and flush), timed directly, and the milliseconds per measurement: steadier
  on a busy machine, but blind to what measuring costs the training steps after it;
- the load average before and after, to judge how busy the machine was.

On CUDA (`--device cuda`) the recorder's clock reads wait for the device first (its work is
queued, not done, when the call returns), so "in measure" is the device's time; those waits
are syncs training would not have, so there the cost figure is an upper bound.

Then the loss-landscape measurement (bntui.engine.landscape) every K steps for each K of
--landscape, against none, the same way (diagnostics off in both): cost and best epochs as
above. --no-diagnostics skips the diagnostics part.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import torch  # noqa: E402
from datafixtures import accept_cifar_files_without_md5, write_cifar  # noqa: E402

import bntui.engine.train as engine_train  # noqa: E402
from bntui.config import RunConfig, TrainingFields  # noqa: E402
from bntui.engine.diagnostics import DiagnosticsRecorder  # noqa: E402
from bntui.engine.events import Diagnostics, EpochEnded, RunStarted  # noqa: E402
from bntui.engine.train import train  # noqa: E402
from bntui.presets import PRESETS  # noqa: E402

DEFAULT_INTERVAL = TrainingFields.model_fields["diagnostics_every"].default
FIG1 = {
    key: value
    for key, value in PRESETS["paper-fig1"].items()
    if key in TrainingFields.model_fields and key not in ("bn", "diagnostics_every")
}
INTERVALS = {"paper-fig1": PRESETS["paper-fig1"]["diagnostics_every"]}  # others: the default
CASES = {
    "mlp": dict(dataset="mnist-mini", arch="mlp", hidden_sizes=[128, 64], epochs=10),
    "lenet5": dict(dataset="cifar10", arch="lenet5", epochs=3),
    # The preset's model and its own interval (10), on the embedded digits.
    "paper-fig1": {**FIG1, "dataset": "mnist-mini", "epochs": 10},
}


class TimedRecorder(DiagnosticsRecorder):
    """The engine's recorder, adding up the time spent in it (bench only)."""

    seconds = 0.0
    measurements = 0

    def clock(self) -> float:
        if self.probe.device.type == "cuda":  # time work done, not work queued
            torch.cuda.synchronize(self.probe.device)
        return time.perf_counter()

    def snapshot(self) -> None:
        start = self.clock()
        super().snapshot()
        TimedRecorder.seconds += self.clock() - start

    def capture(self, step: int, epoch: int) -> None:
        start = self.clock()
        super().capture(step, epoch)
        TimedRecorder.seconds += self.clock() - start
        TimedRecorder.measurements += 1

    def flush(self) -> list[Diagnostics]:
        start = self.clock()
        events = super().flush()
        TimedRecorder.seconds += self.clock() - start
        return events


def timed_run(config: RunConfig, data_dir: Path, threads: int) -> dict:
    """Training steps per second after the first epoch, diagnostics events, and the
    recorder's seconds and measurements over those epochs."""
    seen = {"seconds": 0.0, "steps": 0, "diagnostics": 0, "in_recorder": 0.0, "measured": 0}
    seen["epoch_rates"] = []

    def on_event(event) -> None:
        if isinstance(event, RunStarted):
            seen["steps_per_epoch"] = event.steps_per_epoch
        elif isinstance(event, EpochEnded):
            if event.epoch > 1:
                seen["seconds"] += event.epoch_seconds
                seen["steps"] += seen["steps_per_epoch"]
                seen["epoch_rates"].append(seen["steps_per_epoch"] / event.epoch_seconds)
                seen["in_recorder"] += TimedRecorder.seconds
                seen["measured"] += TimedRecorder.measurements
            TimedRecorder.seconds, TimedRecorder.measurements = 0.0, 0
        elif isinstance(event, Diagnostics):
            seen["diagnostics"] += 1

    TimedRecorder.seconds, TimedRecorder.measurements = 0.0, 0
    result = train(config, on_event, lambda: False, data_dir=data_dir, threads=threads)
    if result.status != "finished":
        raise SystemExit(f"run {result.status}: {result.message}")
    seen["rate"] = seen["steps"] / seen["seconds"]
    return seen


def landscape_cost(name: str, every: int, reps: int, data_dir: Path, threads: int) -> None:
    """Throughput with the landscape measured every `every` steps against none, side by side."""
    rates: dict[int, list[float]] = {every: [], 0: []}
    epochs: dict[int, list[float]] = {every: [], 0: []}
    for rep in range(reps):
        for interval in (every, 0) if rep % 2 == 0 else (0, every):
            config = RunConfig(**CASES[name], diagnostics_every=0, landscape_every=interval, bn=True)
            seen = timed_run(config, data_dir, threads)
            rates[interval].append(seen["rate"])
            epochs[interval].extend(seen["epoch_rates"])
    best_on, best_off = max(rates[every]), max(rates[0])
    print(
        f"{name}: landscape every {every} steps: {best_off:.0f} steps/s without, {best_on:.0f} "
        f"with: cost {100 * (1 - best_on / best_off):.1f}% of throughput (best epochs: "
        f"{100 * (1 - max(epochs[every]) / max(epochs[0])):.1f}%; {reps} pairs)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=21)
    parser.add_argument("--models", default="mlp,lenet5,paper-fig1")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps or auto")
    parser.add_argument(
        "--interval",
        type=int,
        default=None,
        help=f"steps between measurements (default {DEFAULT_INTERVAL}; paper-fig1: its preset's)",
    )
    parser.add_argument("--landscape", default="50,100", help="landscape intervals ('' skips them)")
    parser.add_argument("--no-diagnostics", action="store_true", help="only the landscape costs")
    args = parser.parse_args()
    accept_cifar_files_without_md5()
    engine_train.DiagnosticsRecorder = TimedRecorder  # time the recorder the engine builds
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        write_cifar(data_dir, per_batch=1000, num_test=500)  # 4,000 training images
        for name in args.models.split(",") if not args.no_diagnostics else []:
            on, off, pair_costs, epochs_on, epochs_off = [], [], [], [], []
            events, in_recorder, seconds, measured = 0, 0.0, 0.0, 0
            every = args.interval or INTERVALS.get(name, DEFAULT_INTERVAL)
            for rep in range(args.reps):
                order = (every, 0) if rep % 2 == 0 else (0, every)
                rates = {}
                for interval in order:
                    config = RunConfig(**CASES[name], diagnostics_every=interval, bn=True, device=args.device)
                    seen = timed_run(config, data_dir, args.threads)
                    rates[interval] = seen["rate"]
                    (epochs_on if interval else epochs_off).extend(seen["epoch_rates"])
                    if interval:
                        events = max(events, seen["diagnostics"])
                        in_recorder += seen["in_recorder"]
                        seconds += seen["seconds"]
                        measured += seen["measured"]
                on.append(rates[every])
                off.append(rates[0])
                pair_costs.append(1 - rates[every] / rates[0])
            best_on, best_off = max(on), max(off)
            print(
                f"{name}: {best_off:.0f} steps/s without diagnostics, {best_on:.0f} with them "
                f"every {every} steps ({events} events): "
                f"cost {100 * (1 - best_on / best_off):.1f}% of throughput "
                f"(best epochs: {100 * (1 - max(epochs_on) / max(epochs_off)):.1f}%; "
                f"median of {args.reps} pairs: {100 * statistics.median(pair_costs):.1f}%; "
                f"in measure: {100 * in_recorder / seconds:.1f}% of training time, "
                f"{1000 * in_recorder / max(measured, 1):.2f} ms per measurement)",
                flush=True,
            )
        for name in args.models.split(","):
            for every in [int(k) for k in args.landscape.split(",") if k.strip()]:
                landscape_cost(name, every, args.reps, data_dir, args.threads)
    load_after = os.getloadavg()[0]
    print(f"load average: {load_before:.2f} before, {load_after:.2f} after (2 cores)")


if __name__ == "__main__":
    main()
