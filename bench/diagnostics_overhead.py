"""What do BatchNorm diagnostics cost? Training throughput with diagnostics at the default
interval against diagnostics off, side by side in one process (target: under 5%).

    python bench/diagnostics_overhead.py [--reps 5] [--models mlp,lenet5] [--interval N]
                                         [--threads N]

MLP 784-128-64-10 with BatchNorm on mnist-mini (embedded, 10 epochs of 50 steps); LeNet-5
with BatchNorm on CIFAR-10-format files written to a temp dir (3 epochs of 62 steps).
Throughput is steps per second of the training loop (the epoch_seconds the engine reports,
evaluation excluded; the first epoch, which warms up, left out). Runs alternate on/off; the
best rate of each is compared (other processes on a shared machine only ever slow a run
down, so the best is the least disturbed), and the medians are printed too.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from datafixtures import accept_cifar_files_without_md5, write_cifar  # noqa: E402

from bntui.config import RunConfig, TrainingFields  # noqa: E402
from bntui.engine.events import Diagnostics, EpochEnded, RunStarted  # noqa: E402
from bntui.engine.train import train  # noqa: E402

DEFAULT_INTERVAL = TrainingFields.model_fields["diagnostics_every"].default
CASES = {
    "mlp": dict(dataset="mnist-mini", arch="mlp", hidden_sizes=[128, 64], epochs=10),
    "lenet5": dict(dataset="cifar10", arch="lenet5", epochs=3),
}


def steps_per_second(config: RunConfig, data_dir: Path, threads: int) -> tuple[float, int]:
    """(training steps per second after the first epoch, diagnostics events seen)."""
    seen = {"seconds": 0.0, "steps": 0, "diagnostics": 0}

    def on_event(event) -> None:
        if isinstance(event, RunStarted):
            seen["steps_per_epoch"] = event.steps_per_epoch
        elif isinstance(event, EpochEnded) and event.epoch > 1:
            seen["seconds"] += event.epoch_seconds
            seen["steps"] += seen["steps_per_epoch"]
        elif isinstance(event, Diagnostics):
            seen["diagnostics"] += 1

    result = train(config, on_event, lambda: False, data_dir=data_dir, threads=threads)
    if result.status != "finished":
        raise SystemExit(f"run {result.status}: {result.message}")
    return seen["steps"] / seen["seconds"], seen["diagnostics"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--models", default="mlp,lenet5")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument(
        "--interval", type=int, default=DEFAULT_INTERVAL, help="steps between measurements"
    )
    args = parser.parse_args()
    accept_cifar_files_without_md5()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        write_cifar(data_dir, per_batch=1000, num_test=500)  # 4,000 training images
        for name in args.models.split(","):
            on, off, events = [], [], 0
            for _ in range(args.reps):
                for interval, rates in ((args.interval, on), (0, off)):
                    config = RunConfig(**CASES[name], diagnostics_every=interval, bn=True)
                    rate, count = steps_per_second(config, data_dir, args.threads)
                    rates.append(rate)
                    events = max(events, count)
            best_on, best_off = max(on), max(off)
            median_cost = 1 - statistics.median(on) / statistics.median(off)
            print(
                f"{name}: {best_off:.0f} steps/s without diagnostics, {best_on:.0f} with them "
                f"every {args.interval} steps ({events} events): "
                f"cost {100 * (1 - best_on / best_off):.1f}% of throughput "
                f"(medians: {100 * median_cost:.1f}%)"
            )


if __name__ == "__main__":
    main()
