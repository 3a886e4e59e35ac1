"""`bntui run` end to end, as a subprocess, on the embedded mnist-mini data."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from bntui.store import list_runs
from bntui.store.schema import ExportDocument

pytestmark = pytest.mark.slow

TINY = ["--hidden-sizes", "32", "--batch-size", "128", "--progress-every", "5"]


def bntui(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bntui", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "160"},
    )


def test_paired_runs_learn_and_land_in_store_and_json(tmp_path):
    runs_dir, out = tmp_path / "runs", tmp_path / "out.json"
    result = bntui(
        "run",
        "--dataset",
        "mnist-mini",
        "--bn",
        "both",
        "--seeds",
        "2",
        "--epochs",
        "2",
        "--hidden-sizes",
        "64",
        "--lr",
        "3e-3",
        "--runs-dir",
        str(runs_dir),
        "--json",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert "Verdict:" in result.stdout and "Per arm" in result.stdout

    stored = list_runs(runs_dir)
    assert sorted((r.record.config.seed, r.record.config.bn) for r in stored) == [
        (0, False),
        (0, True),
        (1, False),
        (1, True),
    ]
    assert {r.status for r in stored} == {"finished"}
    assert len({r.record.group for r in stored}) == 1 and stored[0].record.group
    # Ten classes: chance is 10%. Two epochs of a small MLP on 3,200 images do far better.
    accuracies = [r.record.final.test_accuracy for r in stored]
    assert min(accuracies) > 0.75, accuracies

    document = ExportDocument.model_validate_json(out.read_text())
    assert {run.id for run in document.runs} == {r.id for r in stored}
    assert all(len(run.history.epoch) == 2 for run in document.runs)


def test_missing_dataset_is_one_line_and_stored_as_failed(tmp_path):
    result = bntui(
        "run",
        "--dataset",
        "cifar10",
        "--data-dir",
        str(tmp_path / "empty"),
        "--runs-dir",
        str(tmp_path / "runs"),
        "--epochs",
        "1",
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert "mnist-mini" in result.stdout and "cifar-10-batches-py" in result.stdout
    (run,) = list_runs(tmp_path / "runs")
    assert run.status == "failed" and "cifar-10-batches-py" in run.record.message


def test_ctrl_c_stores_the_run_as_cancelled_with_its_epochs(tmp_path):
    runs_dir = tmp_path / "runs"
    process = subprocess.Popen(
        [sys.executable, "-m", "bntui", "run", "--epochs", "50", *TINY, "--runs-dir", str(runs_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            runs = list_runs(runs_dir) if runs_dir.exists() else []
            if runs and runs[0].epochs_done >= 1:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the run never finished an epoch")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 130
    finally:
        process.kill()
    (run,) = list_runs(runs_dir)
    assert run.status == "cancelled"
    assert run.epochs_done >= 1
    assert "Traceback" not in process.stderr.read()


def test_paper_preset_falls_back_to_mnist_mini(tmp_path):
    result = bntui(
        "run",
        "--preset",
        "paper-fig1",
        "--epochs",
        "1",
        "--diagnostics-every",
        "25",
        "--data-dir",
        str(tmp_path / "empty"),
        "--runs-dir",
        str(tmp_path / "runs"),
    )
    assert result.returncode == 0, result.stderr
    assert "preset uses mnist-mini" in result.stdout
    runs = list_runs(tmp_path / "runs")
    assert sorted(r.record.config.bn for r in runs) == [False, True]
    config = runs[0].record.config
    assert (config.dataset, config.hidden_sizes, config.activation, config.batch_size, config.optimizer) == (
        "mnist-mini",
        [100, 100, 100],
        "sigmoid",
        60,
        "sgd",
    )
    assert config.diagnostics_every == 25  # a flag the user gave wins over the preset
    assert all(r.record.diagnostics and r.record.diagnostics.points for r in runs)
