"""Starting bntui's own processes so that they belong to no terminal.

A detached process gets its own session (no controlling terminal: an SSH drop's SIGHUP never
reaches it), reads nothing from stdin, and writes its output to a log file. It is started
without the working folder on its import path (bntui.child_python) and from a folder of the
store, so that no module in the user's working folder (a stray torch.py) can shadow one of ours."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

from bntui.child_python import python_command


def module_command(module: str, *args: object) -> list[str]:
    """`python -m MODULE ARGS`, the working folder off the import path (bntui.child_python)."""
    return python_command("-m", module, *(str(arg) for arg in args))


def spawn_detached(command: Sequence[str], *, log_path: Path, cwd: Path, reap: bool = True) -> subprocess.Popen[bytes]:
    """Start `command` in a new session with stdout and stderr appended to `log_path`.

    `reap`: wait for it in a daemon thread, so that a long-lived parent (the TUI) never keeps
    an exited child as a zombie (a zombie's pid still exists and would read as alive)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    if reap:
        threading.Thread(target=process.wait, daemon=True, name=f"reap {process.pid}").start()
    return process
