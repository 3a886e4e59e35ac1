"""The real `bntui` (the TUI, or a command) in a pseudo-terminal, driven as a person would:
keys in, screen out.

What an SSH drop does to the app is what `hang_up` does: SIGHUP to its process group."""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path


class PtyApp:
    def __init__(
        self, runs_dir: Path, tmp_path: Path, size: tuple[int, int] = (100, 30), args: tuple[str, ...] = ()
    ) -> None:
        """`bntui [ARGS] --runs-dir RUNS_DIR` (without ARGS: the TUI)."""
        master, slave = os.openpty()
        columns, rows = size
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        env = {
            **os.environ,
            "TERM": "xterm-256color",
            "BNTUI_CONFIG_FILE": str(tmp_path / "no-config.toml"),
            "BNTUI_DATA_DIR": str(tmp_path / "data"),
            "BNTUI_DEVICE": "cpu",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bntui", *args, "--runs-dir", str(runs_dir)],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,  # a session of its own, as a login shell's would be
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),  # its controlling terminal
        )
        os.close(slave)
        self.master = master
        self.output = bytearray()
        # Read the screen continuously: a full pty buffer would block the app's writes.
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            self.output.extend(data)

    def wait_for_text(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.output:
            if self.process.poll() is not None:  # what it printed last may still be in the pty
                deadline = min(deadline, time.monotonic() + 2)
            if time.monotonic() > deadline:
                raise AssertionError(f"the app never showed {text!r}")
            time.sleep(0.1)

    def press(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def hang_up(self) -> None:
        """What closing the terminal (or an SSH drop) does: SIGHUP to the app's process group."""
        os.killpg(self.process.pid, signal.SIGHUP)
        self.close()

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.close()

    def close(self) -> None:
        try:
            self.process.wait(30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            try:
                os.close(self.master)
            except OSError:
                pass
