"""How bntui starts Python child processes (the device probe, the trainer, any helper).

`python -c CODE` and `python -m MODULE` put the working folder first on the child's import
path, so a `torch.py` (or a `bntui/` folder) in whatever folder the user started bntui from
would run inside the child. Every child is started through python_command, which leaves the
working folder off the path: `-P` on Python 3.11+, and on 3.10 a first statement that drops
it before anything else is imported."""

from __future__ import annotations

import sys


def python_command(*args: str, executable: str | None = None) -> list[str]:
    """The command line for `python ARGS` without the working folder on the import path.
    `args` start with "-c CODE" or "-m MODULE" (the two forms bntui uses)."""
    python = executable or sys.executable
    if sys.version_info >= (3, 11):
        return [python, "-P", *args]
    if len(args) < 2 or args[0] not in ("-c", "-m"):
        raise ValueError(f"python_command takes -c CODE or -m MODULE, not {args[:1]}")
    # `sys` is built in: importing it reads nothing from the path, so nothing runs before the pop.
    drop_cwd = "import sys; sys.path.pop(0)\n"
    if args[0] == "-c":
        return [python, "-c", drop_cwd + args[1], *args[2:]]
    run_module = f"import runpy; runpy.run_module({args[1]!r}, run_name='__main__', alter_sys=True)"
    return [python, "-c", drop_cwd + run_module, *args[2:]]
