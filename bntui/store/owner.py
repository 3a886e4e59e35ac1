"""Is the process that writes a run still alive? Answered from facts, not guesses:

- same host and /proc available: the pid exists and has the start time recorded when the run
  began (a reused pid has another), in the same boot;
- same host without /proc (macOS, Windows): the pid exists and the heartbeat is recent;
- another host (a shared runs dir): the heartbeat is recent.
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from pathlib import Path

from bntui.store.layout import Owner

HEARTBEAT_TIMEOUT_S = 120.0


@lru_cache(maxsize=1)
def hostname() -> str:
    return socket.gethostname()


@lru_cache(maxsize=1)
def boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def process_start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat, or None when there is no such process or no /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    try:
        after_name = text[text.rindex(")") + 2 :].split()
        return int(after_name[19])  # field 22 is the 20th after the name
    except (ValueError, IndexError):
        return None


def current_owner() -> Owner:
    pid = os.getpid()
    return Owner(pid=pid, host=hostname(), start_ticks=process_start_ticks(pid), boot_id=boot_id())


def pid_exists(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return False
    return True


def owner_alive(owner: Owner | None, heartbeat_age: float | None) -> bool:
    """`heartbeat_age`: seconds since the heartbeat file changed (None when it is missing)."""
    if owner is None:
        return False
    recent = heartbeat_age is not None and heartbeat_age < HEARTBEAT_TIMEOUT_S
    if owner.host != hostname():
        return recent
    if owner.boot_id and boot_id() and owner.boot_id != boot_id():
        return False  # the machine rebooted since: every process of that boot is gone
    if not pid_exists(owner.pid):
        return False
    if owner.start_ticks is not None:
        ticks = process_start_ticks(owner.pid)
        if ticks is not None:
            return ticks == owner.start_ticks
    return recent
