"""How much sooner does a paired group finish when runs train side by side?

    python bench/launch_throughput.py [--epochs 3] [--reps 2] [--device cpu] [--parallel 1,2]

A 6-run paired group (BN on and off x 3 seeds, the MLP on mnist-mini) is launched with
`bntui run --max-parallel N` for each N in --parallel, alternating, `--reps` times, each in a
fresh runs dir; the wall time from launch to the result card is measured around the whole
command (scheduler and trainer start-up included). On a CPU the cores are split between the
runs (threads = cores // N). On a GPU, compare 1 with 4: `--device cuda --parallel 1,4`.
Prints the median wall time per N and the ratio to the first N.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def launch(runs_dir: Path, parallel: int, epochs: int, device: str) -> float:
    command = [
        sys.executable,
        "-m",
        "bntui",
        "run",
        "--dataset",
        "mnist-mini",
        "--bn",
        "both",
        "--seeds",
        "3",
        "--epochs",
        str(epochs),
        "--device",
        device,
        "--max-parallel",
        str(parallel),
        "--runs-dir",
        str(runs_dir),
    ]
    env = {**os.environ, "BNTUI_CONFIG_FILE": str(runs_dir.parent / "no-config.toml")}
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--parallel", default="1,2", help="comma-separated --max-parallel values")
    args = parser.parse_args()
    levels = [int(value) for value in args.parallel.split(",")]

    times: dict[int, list[float]] = {level: [] for level in levels}
    with tempfile.TemporaryDirectory() as folder:
        for rep in range(args.reps):  # alternate, so drifting machine load hits every level alike
            for level in levels:
                seconds = launch(Path(folder) / f"runs-{rep}-{level}", level, args.epochs, args.device)
                times[level].append(seconds)
                print(f"[{rep + 1}] --max-parallel {level}: {seconds:6.1f} s", flush=True)

    print()
    print(
        f"6-run paired group (MLP 128,64 on mnist-mini, BN on/off x 3 seeds, {args.epochs} epochs), "
        f"{args.device}, {os.cpu_count()} cores; median of {args.reps}"
    )
    base = statistics.median(times[levels[0]])
    for level in levels:
        median = statistics.median(times[level])
        print(
            f"--max-parallel {level}: {median:6.1f} s wall, {base / median:.2f}x the speed of "
            f"--max-parallel {levels[0]}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
