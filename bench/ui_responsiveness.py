"""Does the TUI stay responsive while it trains, and does training in it run at full speed?

Drives the app headless (App.run_test) and measures the event loop's lateness with a 20 ms
asyncio timer: idle, then while the app trains an MLP on mnist-mini in its trainer process.
Then trains the same config with the headless `python -m bntui run` and compares the training
speed (steps / train_seconds, both read from the run store, so start-up is left out of both).

Targets: p99 lateness under 50 ms while training; in-app speed at least 0.9x headless.
Not a test: run it by hand.

    python bench/ui_responsiveness.py [--epochs 40] [--repeats 3] [--threads 1]

Both sides train with the same torch thread count (default 1): on a small shared machine two
torch processes with default threads oversubscribe the cores and the figures become noise.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bntui.settings import AppSettings  # noqa: E402
from bntui.store import list_runs  # noqa: E402
from bntui.tui.app import BntuiApp  # noqa: E402

PERIOD = 0.020


class LatenessProbe:
    """A 20 ms ticker on the app's event loop; records how late each tick fires."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        target = loop.time() + PERIOD
        while True:
            await asyncio.sleep(max(target - loop.time(), 0))
            now = loop.time()
            self.samples.append(now - target)
            target = max(target + PERIOD, now)  # no catch-up bursts after a stall

    def start(self) -> None:
        self.samples = []
        self._task = asyncio.ensure_future(self._tick())

    def stop(self) -> list[float]:
        assert self._task is not None
        self._task.cancel()
        return self.samples


def summary(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"p50 {statistics.median(ms):5.1f} ms  p99 {p99:5.1f} ms  max {ms[-1]:6.1f} ms  ({len(ms)} ticks)"


def steps_per_second(runs_dir: Path) -> float:
    (run,) = list_runs(runs_dir)
    timings = run.record.timings
    assert run.status == "finished", run.status
    return timings.steps / timings.train_seconds


async def run_headless_probed(epochs: int, threads: int, runs_dir: Path) -> tuple[list[float], float]:
    """The headless run, with the same 20 ms probe on a bare asyncio loop meanwhile: the
    lateness the machine itself causes (other processes, the trainer), without any app."""
    probe = LatenessProbe()
    probe.start()
    speed = await asyncio.to_thread(run_headless, epochs, threads, runs_dir)
    return probe.stop(), speed


def run_headless(epochs: int, threads: int, runs_dir: Path) -> float:
    command = [
        sys.executable,
        "-m",
        "bntui",
        "run",
        "--runs-dir",
        str(runs_dir),
        "--dataset",
        "mnist-mini",
        "--epochs",
        str(epochs),
        "--bn",
        "on",
        "--device",
        "cpu",
        "--data-dir",
        str(runs_dir / "data"),
        "--threads",
        str(threads),
    ]
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return steps_per_second(runs_dir)


async def wait_until(app: BntuiApp, condition, what: str, timeout: float, state=lambda: "") -> None:
    started = time.monotonic()
    reported = started
    while not condition():
        if not app.is_running:
            raise RuntimeError(f"the app stopped while waiting for {what}: {app._exception!r}")
        now = time.monotonic()
        if now - started > timeout:
            raise RuntimeError(f"gave up waiting for {what} after {timeout:.0f} s {state()}")
        if now - reported > 10:
            print(f"    still waiting for {what} ({now - started:.0f} s) {state()}", flush=True)
            reported = now
        await asyncio.sleep(0.1)


async def run_in_app(
    epochs: int, threads: int, runs_dir: Path, idle_seconds: float
) -> tuple[list[float], list[float], float]:
    app = BntuiApp(AppSettings(runs_dir=runs_dir, data_dir=runs_dir / "data", threads=threads))
    probe = LatenessProbe()
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(app, lambda: app.devices is not None, "device detection", 120)
        probe.start()
        await asyncio.sleep(idle_seconds)
        idle = probe.stop()

        form = app.main.form
        form.set_value("bn", "on")
        form.set_value("epochs", str(epochs))
        form.set_value("device", "cpu")
        await pilot.pause()
        probe.start()
        await pilot.press("ctrl+r")
        views = app.session.views
        await wait_until(
            app,
            lambda: views and not any(v.active for v in views.values()),
            "the run",
            1800,
            lambda: [(v.status, v.epochs_done) for v in views.values()],
        )
        training = probe.stop()
        statuses = [view.status for view in views.values()]
        assert statuses == ["finished"], statuses
    return idle, training, steps_per_second(runs_dir)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads, both sides")
    parser.add_argument("--idle-seconds", type=float, default=3.0)
    args = parser.parse_args()

    bare_all: list[float] = []
    idle_all: list[float] = []
    training_all: list[float] = []
    in_app: list[float] = []
    headless: list[float] = []
    for repeat in range(args.repeats):  # alternate, so drifting machine load hits both alike
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            bare, speed = asyncio.run(run_headless_probed(args.epochs, args.threads, Path(folder) / "headless"))
            bare_all += bare
            headless.append(speed)
            print(f"[{repeat + 1}] headless: {headless[-1]:7.0f} steps/s ({time.perf_counter() - started:.1f} s)")
            started = time.perf_counter()
            idle, training, speed = asyncio.run(
                run_in_app(args.epochs, args.threads, Path(folder) / "app", args.idle_seconds)
            )
            print(f"[{repeat + 1}] in app:   {speed:7.0f} steps/s ({time.perf_counter() - started:.1f} s)")
            idle_all += idle
            training_all += training
            in_app.append(speed)

    print()
    print(
        f"MLP (128,64) on mnist-mini, BN on, batch 64, {args.epochs} epochs, cpu, "
        f"{args.threads} torch thread(s); {args.repeats} repeats"
    )
    print(f"loop lateness, bare loop, headless training: {summary(bare_all)}")
    print(f"app event loop, idle:                        {summary(idle_all)}")
    print(f"app event loop, training in the app:         {summary(training_all)}")
    ratio = statistics.median(in_app) / statistics.median(headless)
    print(
        f"training speed: in app {statistics.median(in_app):.0f} steps/s, headless "
        f"{statistics.median(headless):.0f} steps/s, ratio {ratio:.2f} (target >= 0.90)"
    )
    ms = sorted(training_all)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))] * 1000
    return 0 if p99 < 50 and ratio >= 0.9 else 1


if __name__ == "__main__":
    raise SystemExit(main())
