"""One trainer child process: `python -m bntui.trainer`, spec in on stdin, events out on stdout.

Plain Python (no Textual): the app drives it from a thread worker, the benchmarks and tests can
drive it directly. See docs/interfaces.md for the protocol."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bntui.config import RunConfig
    from bntui.settings import AppSettings

TRAINER_COMMAND: tuple[str, ...] = (sys.executable, "-m", "bntui.trainer")


def trainer_spec(config: RunConfig, group: str | None, settings: AppSettings) -> dict[str, Any]:
    """The JSON object a trainer reads on its first stdin line (bntui.trainer.TrainerSpec)."""
    return {
        "config": config.model_dump(mode="json"),
        "group": group,
        "runs_dir": str(settings.runs_dir),
        "data_dir": str(settings.data_dir),
        "download": settings.download,
        "threads": settings.threads,
    }


class TrainerProcess:
    def __init__(self, spec: dict[str, Any], command: Sequence[str] = TRAINER_COMMAND) -> None:
        self.spec = spec
        self.command = list(command)
        self._process: subprocess.Popen[str] | None = None
        # stderr goes to a file, not a pipe: a chatty trainer can never block on a full pipe.
        self._stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")
        self.noise: deque[str] = deque(maxlen=20)  # stdout lines that were not JSON
        self.cancel_requested_at: float | None = None

    def start(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._process = subprocess.Popen(
            self.command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            env=env,
        )
        self._write(json.dumps(self.spec) + "\n")

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def lines(self) -> Iterator[dict[str, Any]]:
        """Blocking: yield each JSON object the trainer writes, until it closes stdout."""
        assert self._process is not None and self._process.stdout is not None
        for raw in self._process.stdout:
            raw = raw.strip()
            if not raw:
                continue
            try:
                data = json.loads(raw)
            except ValueError:
                self.noise.append(raw)
                continue
            if isinstance(data, dict):
                yield data
            else:
                self.noise.append(raw)

    def wait(self, timeout: float | None = None) -> int:
        assert self._process is not None
        return self._process.wait(timeout)

    def stderr_text(self, limit: int = 2000) -> str:
        """The end of what the trainer wrote on stderr (the reason, when it crashed)."""
        try:
            self._stderr.flush()
            self._stderr.seek(0)
            text = self._stderr.read()
        except (OSError, ValueError):
            return ""
        return text[-limit:].strip()

    def cancel(self) -> None:
        """Ask the run to stop; the trainer stores it as cancelled with its completed epochs."""
        if self.cancel_requested_at is None:
            self.cancel_requested_at = time.monotonic()
        self._write("cancel\n")

    def terminate(self) -> None:
        if self.alive:
            assert self._process is not None
            self._process.terminate()

    def kill(self) -> None:
        if self.alive:
            assert self._process is not None
            self._process.kill()

    def stop(self, grace: float = 3.0) -> None:
        """Cancel, then terminate, then kill: on return the process is gone."""
        if self._process is None:
            return
        if self.alive:
            self.cancel()
            self._close_stdin()
            for signal_step in (None, self._process.terminate, self._process.kill):
                if signal_step is not None:
                    signal_step()
                try:
                    self._process.wait(grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self.close()

    def close(self) -> None:
        """Close our end of stdin (the reader thread owns stdout and closes it in `reap`)."""
        self._close_stdin()

    def reap(self) -> tuple[int, str]:
        """After stdout closed: wait for the exit, return (exit status, end of stderr)."""
        assert self._process is not None
        returncode = self._process.wait()
        stderr = self.stderr_text()
        for stream in (self._process.stdout, self._stderr):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        self._close_stdin()
        return returncode, stderr

    def _write(self, text: str) -> None:
        if self._process is None or self._process.stdin is None or self._process.stdin.closed:
            return
        try:
            self._process.stdin.write(text)
            self._process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass  # the trainer has already gone; its exit is reported by the reader

    def _close_stdin(self) -> None:
        if self._process is not None and self._process.stdin is not None:
            try:
                self._process.stdin.close()
            except (BrokenPipeError, OSError):
                pass
