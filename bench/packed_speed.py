"""How much faster does a paired group train packed (one model, bntui.engine.packed) than as
separate runs, side by side in one process?

    python bench/packed_speed.py [--quick] [--epochs N] [--reps N] [--device cpu|cuda|...]
                                 [--threads N] [--diagnostics-every N]

The group: K = 3 seeds x BN on/off = 6 runs of one network on mnist-mini, one epoch by
default, diagnostics off (`--diagnostics-every 25` measures a default launch's). Each rep
trains the six runs one after the other (as the scheduler does on a CPU: one run at a time,
max_parallel 1, each with torch's threads) and then the same six packed, and times the wall
clock of each whole group: data loading, model building, training and every evaluation
included. Not included: each separate run's process start-up (importing torch, about a
second), which the scheduler pays per trainer and a pack pays once; so the ratio is on the low
side of what a launch sees.
Medians over reps. Models: the MLP 784-128-64-10 and LeNet-5 (`--quick`: the MLP only).
Also printed: one separate run's training steps/s (epoch_seconds), for comparing devices, and
(informational) the same ratio for the training loops alone (the runs' epoch_seconds summed:
no data loading, model building, warm-up or evaluation, whose cost packing barely changes).

The last line reads `packed vs separate: X.XXx` (the MLP's ratio with --quick, else the
slowest model's).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bntui.config import RunConfig, check_device_name  # noqa: E402
from bntui.engine.events import EpochEnded  # noqa: E402
from bntui.engine.packed import Member, train_packed  # noqa: E402
from bntui.engine.train import train  # noqa: E402

SEEDS = (0, 1, 2)


def group(arch: str, epochs: int, device: str, diagnostics_every: int = 0) -> list[RunConfig]:
    return [
        RunConfig(
            dataset="mnist-mini",
            arch=arch,
            epochs=epochs,
            device=device,
            seed=seed,
            bn=bn,
            diagnostics_every=diagnostics_every,
        )
        for seed in SEEDS
        for bn in (True, False)
    ]


def separately(configs: list[RunConfig]) -> tuple[float, float, float]:
    """(group wall seconds, one run's training steps/s, the runs' training loops' seconds)."""
    start = time.perf_counter()
    rates, loops = [], 0.0
    for config in configs:
        events: list = []
        result = train(config, events.append, lambda: False, data_dir=Path("unused"))
        assert result.status == "finished", result.message
        epochs = [e for e in events if isinstance(e, EpochEnded)]
        steps = result.started.steps_per_epoch
        rates.append(steps / statistics.median(e.epoch_seconds for e in epochs))
        loops += sum(e.epoch_seconds for e in epochs)
    return time.perf_counter() - start, statistics.median(rates), loops


def packed(configs: list[RunConfig]) -> tuple[float, float]:
    """(group wall seconds, the pack's training loop's seconds)."""
    start = time.perf_counter()
    results = train_packed([Member(c, lambda event: None) for c in configs], data_dir=Path("unused"))
    assert all(r.status == "finished" for r in results), [r.message for r in results]
    return time.perf_counter() - start, sum(e.epoch_seconds for e in results[0].epochs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the MLP only, one rep")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--reps", type=int, default=None, help="default: 1 with --quick, else 3")
    parser.add_argument("--device", default="cpu", type=check_device_name)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--diagnostics-every", type=int, default=0, help="diagnostics interval (0: off)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    reps = args.reps or (1 if args.quick else 3)
    archs = ["mlp"] if args.quick else ["mlp", "lenet5"]
    print(
        f"paired group of {2 * len(SEEDS)} runs (seeds {SEEDS} x BN on/off), mnist-mini, "
        f"{args.epochs} epoch(s), device {args.device}, {reps} rep(s), {__import__('torch').get_num_threads()} thread(s), "
        f"diagnostics {'every %d steps' % args.diagnostics_every if args.diagnostics_every else 'off'}"
    )
    ratios = {}
    for arch in archs:
        configs = group(arch, args.epochs, args.device, args.diagnostics_every)
        alone, together, rates, loops_alone, loops_together = [], [], [], [], []
        for _ in range(reps):
            seconds, rate, loops = separately(configs)
            alone.append(seconds)
            rates.append(rate)
            loops_alone.append(loops)
            seconds, loops = packed(configs)
            together.append(seconds)
            loops_together.append(loops)
        a, p = statistics.median(alone), statistics.median(together)
        ratios[arch] = a / p
        print(
            f"{arch:7s} separate {a:7.2f} s   packed {p:7.2f} s   ratio {a / p:5.2f}x   "
            f"(one run alone: {statistics.median(rates):,.0f} steps/s)"
        )
        la, lp = statistics.median(loops_alone), statistics.median(loops_together)
        print(f"{'':7s} (informational: training loops only, epoch_seconds: {la:.2f} s vs {lp:.2f} s, {la / lp:.2f}x)")
    worst = min(ratios, key=ratios.get)
    label = "" if args.quick else f" ({worst}, the lower)"
    print(f"packed vs separate{label}: {ratios[worst]:.2f}x")


if __name__ == "__main__":
    main()
