"""Whether a file can be written where the user asked (an export, a table, `bntui run --json`):
checked before the work that fills it, so that a typo costs nothing, and named the same way by
the CLI and the TUI's export dialog."""

from __future__ import annotations

import os
from pathlib import Path

from bntui.store.layout import describe_os_error


def output_file_problem(path: Path) -> str | None:
    """Why `path` cannot be written as a file ('-' is stdout), or None."""
    if str(path) == "-":
        return None
    if path.is_dir():
        return f"{path} is a folder, not a file"
    folder = path.parent
    if not folder.exists():
        return f"folder {folder} does not exist"
    if not folder.is_dir():
        return f"{folder} is a file, not a folder"
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return f"cannot write {path}: permission denied"
    # os.access says yes to root everywhere, /proc included: create a file where the atomic
    # write will, as the only proof that it can.
    probe = folder / f".{path.name}.{os.getpid()}.probe"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.unlink(probe)
    except OSError as exc:
        return f"cannot write {path}: {describe_os_error(exc)}"
    return None
