"""Does the run store stay quick when it holds thousands of runs?

Trains one real run (mnist-mini, diagnostics on: the defaults), copies it into stores of 50,
1,000 and 10,000 runs (in a temp dir; the big files are hard links), and measures side by side
on each store:
  - `bntui runs --json`: wall time and peak memory of the process, cold (the store's first
    listing: the best of three, each without the index the one before wrote) and warm (the
    best of the next two);
  - the TUI (headless, App.run_test): seconds from the process start to a filled run list,
    then its CPU use while idle (all threads, over --idle seconds);
then the run list's filter (`/`): seconds to hide every run, and to show them all again; and
its sort (`s`): seconds to order every row by test accuracy;
and prints each figure as a ratio to the 50-run store.

A store's first listing ("cold") reads each run's listing row from its listing.json (which the
writer leaves there when a run ends; `--without-rows`: runs as an older bntui wrote them, read
from config.json, summary.json and listing.json) and writes the store's listing index
(store.listing_index); the next ones ("warm", each a new process) read the index and stat
each run's files.

Targets (issue 17): listing 5,000 runs <= 2x the time and <= 1.5x the memory of 50 (warm),
cold <= 4x; TUI run list filled in <= 3x; idle CPU <= 2x. Not a test: run it by hand.

    python bench/store_scale.py            # 50 / 1,000 / 10,000 runs, a 10-epoch run
    python bench/store_scale.py --quick    # 50 / 1,000 runs, a 2-epoch run, 3 s idle
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # build_store writes rows with this checkout's bntui

# Runs `bntui runs --json` in this process and prints its peak memory (MiB) on stderr.
LISTING = """
import resource, runpy, sys
sys.argv = ["bntui", "runs", "--json", "--runs-dir", sys.argv[1]]
try:
    runpy.run_module("bntui", run_name="__main__")
except SystemExit:
    pass
print("peak", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, file=sys.stderr)
"""

# Opens the TUI headless on a store; prints when its run list held every run, then its CPU use.
TUI = """
import asyncio, json, sys, time
t0, runs_dir, expected, idle = float(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
from pathlib import Path
from bntui.settings import AppSettings
from bntui.tui.app import BntuiApp
from bntui.tui.devices import DeviceChoice

async def main():
    app = BntuiApp(AppSettings(runs_dir=Path(runs_dir), data_dir=Path(runs_dir) / ".data"),
                   devices=[DeviceChoice("cpu", "CPU")])
    async with app.run_test(size=(160, 48)) as pilot:
        while not app._ui_ready() or app.main.runs.row_count < expected:
            await asyncio.sleep(0.02)
        filled = time.time() - t0
        await asyncio.sleep(1.0)  # let the first redraws settle
        cpu, wall = time.process_time(), time.time()
        await asyncio.sleep(idle)
        share = (time.process_time() - cpu) / (time.time() - wall)
        # The run list's filter (`/`): hide every run (the copies all have seed 0), then show
        # them all again; each is redrawn at the app's next tick (REDRAW_SECONDS).
        from bntui.tui.screens.run_filter import apply_filter
        table = app.main.runs
        started = time.time()
        apply_filter(app, "seed=1")
        while table.row_count:
            await asyncio.sleep(0.01)
        hide = time.time() - started
        started = time.time()
        apply_filter(app, "")
        while table.row_count < expected:
            await asyncio.sleep(0.01)
        show = time.time() - started
        # Sorting (`s`): every row put in order by its test accuracy, the cursor kept.
        started = time.time()
        table.sort_by("test_acc")
        await asyncio.sleep(0)
        ordered = time.time() - started
    print(json.dumps({"filled": filled, "idle_cpu": share, "filter_hide": hide, "filter_show": show, "sort": ordered}))

asyncio.run(main())
"""


def env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO), BNTUI_CONFIG_FILE=os.devnull)


def train_one(runs_dir: Path, epochs: int) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bntui",
            "run",
            "--runs-dir",
            str(runs_dir),
            "--epochs",
            str(epochs),
            "--threads",
            "1",
            "--no-detach",
        ],
        check=True,
        env=env(),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
    )
    [run] = [path for path in runs_dir.iterdir() if not path.name.startswith(".")]
    return run


def build_store(source: Path, target: Path, count: int, rows: bool = True) -> None:
    """`count` copies of run `source`, each under its own id (the json files name it). With
    `rows`, each copy's listing.json holds its own listing row, as the writer leaves an ended
    run's (store.indexed.listed_row); without, as an older bntui left them."""
    from bntui.store.indexed import listed_row

    target.mkdir()
    stem = source.name[: source.name.rfind("-")]
    files = {path.name: path for path in source.iterdir() if path.is_file()}
    texts = {name: path.read_text() for name, path in files.items() if name.endswith(".json")}
    for index in range(count):
        run_id = f"{stem}-{index:05d}"
        folder = target / run_id
        folder.mkdir()
        for name, path in files.items():
            if name in texts:
                data = json.loads(texts[name])
                data["id"] = run_id
                (folder / name).write_text(json.dumps(data))
            else:
                os.link(path, folder / name)  # events.jsonl, heartbeat: the same bytes
        listing = json.loads((folder / "listing.json").read_text())
        listing.pop("listed", None)
        if rows:
            row = listed_row(target, run_id)
            assert row is not None, f"{run_id}: no listing row"
            listing["listed"] = row.model_dump()
        (folder / "listing.json").write_text(json.dumps(listing))


def listing(runs_dir: Path, cold: bool = False) -> tuple[float, float]:
    """`bntui runs --json` on the store: (seconds, peak MiB). `cold`: as its first listing
    (without the index the last one wrote)."""
    if cold:
        shutil.rmtree(runs_dir / ".index", ignore_errors=True)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", LISTING, str(runs_dir)],
        env=env(),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - started
    peak = float(done.stderr.strip().splitlines()[-1].split()[1])
    return seconds, peak


def tui(runs_dir: Path, count: int, idle: float) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", TUI, repr(time.time()), str(runs_dir), str(count), str(idle)],
        env=env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the TUI failed on {count} runs: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="50 and 1,000 runs, a 2-epoch run, 3 s idle")
    parser.add_argument("--sizes", type=lambda text: [int(n) for n in text.split(",")], default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--idle", type=float, default=None, help="seconds of idle CPU measured")
    parser.add_argument("--no-tui", action="store_true", help="the listing only")
    parser.add_argument(
        "--without-rows", action="store_true", help="runs without their listing row (as an older bntui wrote them)"
    )
    args = parser.parse_args()
    sizes = args.sizes or ([50, 1000] if args.quick else [50, 1000, 10000])
    epochs = args.epochs or (2 if args.quick else 10)
    idle = args.idle or (3.0 if args.quick else 10.0)

    rows = []
    with tempfile.TemporaryDirectory(prefix="bntui-store-scale-") as temp:
        source = train_one(Path(temp) / "source", epochs)
        print(
            f"one real run: {source.name}, {epochs} epochs, events.jsonl "
            f"{(source / 'events.jsonl').stat().st_size // 1024} KiB",
            flush=True,
        )
        for count in sizes:
            store = Path(temp) / f"store-{count}"
            build_store(source, store, count, rows=not args.without_rows)
            cold, cold_peak = min(listing(store, cold=True) for _ in range(3))
            warm, warm_peak = min(listing(store) for _ in range(2))
            row = {"runs": count, "cold": cold, "cold_peak": cold_peak, "warm": warm, "warm_peak": warm_peak}
            if not args.no_tui:
                row.update(tui(store, count, idle))
            rows.append(row)
            print(json.dumps(row), flush=True)

    base = rows[0]
    print()
    header = (
        f"{'runs':>7} | {'list cold':>15} | {'list warm':>15} | {'peak MiB warm':>15} | {'TUI filled':>15} | "
        f"{'TUI idle CPU':>15} | {'filter: none':>15} | {'filter: all':>15} | {'sort':>15}"
    )
    print(header)
    print("-" * len(header))

    def cell(row: dict, key: str, fmt: str) -> str:
        if key not in row:
            return f"{'-':>15}"
        return f"{format(row[key], fmt):>8} {row[key] / base[key]:5.1f}x"

    for row in rows:
        print(
            f"{row['runs']:>7} | {cell(row, 'cold', '.2f')} | {cell(row, 'warm', '.2f')} | "
            f"{cell(row, 'warm_peak', '.0f')} | {cell(row, 'filled', '.2f')} | {cell(row, 'idle_cpu', '.1%')} | "
            f"{cell(row, 'filter_hide', '.2f')} | {cell(row, 'filter_show', '.2f')} | {cell(row, 'sort', '.3f')}"
        )
    print(
        "\ntimes in seconds; ratios to the first store. Targets at 5,000 runs: warm <= 2x time and "
        "<= 1.5x memory, cold <= 4x, TUI filled <= 3x, idle CPU <= 2x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
