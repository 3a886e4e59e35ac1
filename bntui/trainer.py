"""The trainer process: `python -m bntui.trainer` trains one run for the TUI.

Protocol (also in docs/interfaces.md): stdin carries one JSON line, a `TrainerSpec`; after it,
the line `cancel` — or the end of stdin, which also means the UI went away — asks the run to
stop. stdout carries JSON lines: `{"type": "created", "run_id", "path"}` and then every event
with its `run_id`. The run store gets everything too, so nothing depends on the pipe surviving.
When the spec is invalid or the run store cannot take the run, the only line is
`{"type": "rejected", "message"}` (also on stderr), nothing is stored and the exit status is 2.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from bntui.config import RunConfig, format_validation_error


class TrainerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    config: RunConfig
    group: str | None = None
    runs_dir: Path
    data_dir: Path
    download: bool = False
    threads: int = 0


def _watch_stdin(stop: threading.Event) -> None:
    for line in sys.stdin:
        if line.strip() == "cancel":
            break
    stop.set()  # "cancel", or end of input: the UI is gone, so nobody is watching this run


def _reject(message: str) -> int:
    """Nothing was stored: say why on stdout (the TUI shows it) and on stderr, in one line."""
    print(json.dumps({"type": "rejected", "message": message}), flush=True)
    print(f"bntui trainer: error: {message}", file=sys.stderr, flush=True)
    return 2


def main() -> int:
    stop = threading.Event()
    try:
        spec = TrainerSpec.model_validate_json(sys.stdin.readline())
    except ValidationError as exc:
        return _reject(format_validation_error(exc))

    from bntui.store import StoreError, ensure_runs_dir

    try:  # a runs dir that cannot hold the run: say so before loading torch and the data
        ensure_runs_dir(spec.runs_dir)
    except StoreError as exc:
        return _reject(str(exc))

    threading.Thread(target=_watch_stdin, args=(stop,), daemon=True).start()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    from bntui.execute import run_and_store

    def emit(message: dict) -> None:
        try:
            sys.stdout.write(json.dumps(message) + "\n")
            sys.stdout.flush()
        except (BrokenPipeError, ValueError):
            stop.set()  # the UI closed its end: finish the run as cancelled, keep it stored

    outcome = run_and_store(
        spec.config,
        runs_dir=spec.runs_dir,
        data_dir=spec.data_dir,
        download=spec.download,
        threads=spec.threads,
        group=spec.group,
        should_stop=stop.is_set,
        on_created=lambda run_id, path: emit(
            {"type": "created", "run_id": run_id, "path": str(path)}
        ),
        on_event=lambda run_id, event: emit({**event.to_dict(), "run_id": run_id}),
    )
    if outcome.run_id is None:  # the store refused to create the run: nothing ran
        return _reject(outcome.store_error or "the run store could not create the run")
    return 0 if outcome.stored else 1


if __name__ == "__main__":
    raise SystemExit(main())
