"""Time from launching `bntui` to its first painted screen, in a real pseudo-terminal.

Starts `python -m bntui --runs-dir <empty temp dir>` in a pty (120x40), reads what it writes
until the main screen's pane titles have been drawn, then presses ctrl+q and waits for the exit.
Target: first paint under 1 s. Not a test: run it by hand.

    python bench/startup_time.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

MARKERS = (b"Normalization", b"Runs")  # both drawn only once the whole main screen is painted
REPO = Path(__file__).resolve().parent.parent


def launch_once(runs_dir: Path, timeout: float = 30.0) -> tuple[float, float]:
    """(seconds to first paint, seconds from ctrl+q to exit)."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = dict(
        os.environ, TERM="xterm-256color", COLUMNS="120", LINES="40", BNTUI_CONFIG_FILE=str(runs_dir / "no-config.toml")
    )
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "bntui", "--runs-dir", str(runs_dir)],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        cwd=REPO,
        env=env,
        start_new_session=True,
    )
    os.close(terminal)
    seen = b""
    painted = None
    try:
        while painted is None:
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"no first paint within {timeout} s; output so far: {seen[-300:]!r}")
            ready, _, _ = select.select([controller], [], [], 0.05)
            if ready:
                try:
                    seen += os.read(controller, 65536)
                except OSError:
                    break
                if all(marker in seen for marker in MARKERS):
                    painted = time.perf_counter() - started
        asked = time.perf_counter()
        os.write(controller, b"\x11")  # ctrl+q
        while process.poll() is None:
            if time.perf_counter() - asked > timeout:
                raise RuntimeError("bntui did not quit on ctrl+q")
            ready, _, _ = select.select([controller], [], [], 0.05)
            if ready:
                try:
                    os.read(controller, 65536)
                except OSError:
                    pass
        quit_seconds = time.perf_counter() - asked
    finally:
        if process.poll() is None:
            process.kill()
        os.close(controller)
    if painted is None:
        raise RuntimeError("bntui exited before painting")
    return painted, quit_seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    paints, quits = [], []
    with tempfile.TemporaryDirectory() as folder:
        launch_once(Path(folder))  # warm the file cache (.pyc, shared libraries)
        for _ in range(args.repeats):
            paint, quit_seconds = launch_once(Path(folder))
            paints.append(paint)
            quits.append(quit_seconds)
    print(
        f"first paint: median {statistics.median(paints):.3f} s, min {min(paints):.3f} s, "
        f"max {max(paints):.3f} s over {args.repeats} launches (target < 1 s)"
    )
    print(f"quit (ctrl+q to exit): median {statistics.median(quits):.3f} s")
    return 0 if statistics.median(paints) < 1.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
