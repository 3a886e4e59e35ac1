"""`python -m bntui.trainer`, the TUI's trainer process, as the TUI drives it (spec on stdin)."""

from __future__ import annotations

import json
import subprocess
import sys

from bntui.config import RunConfig


def run_trainer(spec: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bntui.trainer"],
        input=json.dumps(spec) + "\n",
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_runs_dir_that_is_a_file_is_rejected_in_one_clear_line(tmp_path):
    blocker = tmp_path / "runs"
    blocker.write_text("x")
    config = RunConfig(epochs=1, hidden_sizes=[8]).model_dump(mode="json")
    result = run_trainer({"config": config, "runs_dir": str(blocker), "data_dir": str(tmp_path)})
    message = f"runs dir {blocker} is a file, not a folder"
    # The TUI shows a "rejected" line's message as the reason the run failed.
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {"type": "rejected", "message": message}
    ]
    assert result.stderr.strip() == f"bntui trainer: error: {message}"
    assert result.returncode == 2
    assert blocker.read_text() == "x"


def test_a_run_the_store_cannot_create_is_rejected(tmp_path, monkeypatch, capsys):
    import io

    from bntui import store, trainer

    message = f"cannot write {tmp_path}/x: Permission denied"

    def refuse(*args, **kwargs):
        raise store.StoreWriteError(message)

    monkeypatch.setattr(store, "RunWriter", refuse)
    monkeypatch.setattr(trainer.signal, "signal", lambda *args: None)  # keep pytest's handlers
    spec = {"config": RunConfig(epochs=1).model_dump(mode="json"), "runs_dir": str(tmp_path),
            "data_dir": str(tmp_path)}
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(spec) + "\n"))
    assert trainer.main() == 2
    out, err = capsys.readouterr()
    assert [json.loads(line) for line in out.splitlines()] == [{"type": "rejected", "message": message}]
    assert err.strip() == f"bntui trainer: error: {message}"
