"""The training loop: event sequence, learning, determinism, cancel, divergence, failures."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import bntui.engine.train as train_module
from bntui.config import RunConfig
from bntui.engine.events import (
    Diagnostics,
    EpochEnded,
    Progress,
    RunCancelled,
    RunDiverged,
    RunFailed,
    RunFinished,
    RunStarted,
    event_from_dict,
)
from bntui.engine.models import batch_norm_layers, build_model
from bntui.engine.train import evaluate_batch_statistics, steps_per_epoch
from enginehelpers import losses, run

ENGINE = Path(__file__).resolve().parents[2] / "bntui" / "engine"


def tiny(**fields) -> RunConfig:
    defaults = dict(dataset="mnist-mini", hidden_sizes=[32], epochs=1, progress_every=10, diagnostics_every=0)
    return RunConfig(**{**defaults, **fields})


def test_event_sequence_of_a_finished_run():
    result, events = run(tiny(epochs=2, bn=True))
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunFinished)
    started = events[0]
    assert (started.train_size, started.val_size, started.test_size) == (3200, 800, 1000)
    assert started.steps_per_epoch == 50 and started.epochs == 2 and started.parameters > 0
    assert re.fullmatch(r"[0-9a-f]{16}", started.split_hash)
    assert started.device == "cpu" and started.torch_version == torch.__version__
    epochs = [e for e in events if isinstance(e, EpochEnded)]
    assert [e.epoch for e in epochs] == [1, 2] and [e.step for e in epochs] == [50, 100]
    progress = [e for e in events if isinstance(e, Progress)]
    assert [p.step for p in progress] == list(range(10, 101, 10))
    assert all(p.steps_per_second > 0 and p.train_loss > 0 for p in progress)
    assert all(e.val_loss_batch_stats is not None for e in epochs)
    assert result.status == "finished" and result.final is events[-1]
    assert result.started is started and result.epochs == epochs
    assert events[-1].steps == 100
    # Every event survives strict JSON (no NaN) and comes back equal.
    for event in events:
        text = json.dumps(event.to_dict(), allow_nan=False)
        assert event_from_dict(json.loads(text)) == event


def test_short_mnist_mini_training_learns():
    result, _ = run(tiny(hidden_sizes=[64], epochs=2))
    assert result.final.test_accuracy > 0.8
    assert result.epochs[1].train_loss < result.epochs[0].train_loss


def test_batch_stats_validation_only_with_batch_norm():
    result, _ = run(tiny(bn=False))
    assert result.epochs[0].val_loss_batch_stats is None
    assert result.epochs[0].val_accuracy_batch_stats is None


@pytest.mark.parametrize("fields", [dict(bn=True, dropout=0.3), dict(bn=False, optimizer="sgd")])
def test_same_config_gives_bit_identical_history(fields):
    first, first_events = run(tiny(epochs=2, **fields))
    second, second_events = run(tiny(epochs=2, **fields))
    assert losses(first_events) == losses(second_events)
    assert first.started.split_hash == second.started.split_hash


def test_different_seeds_train_differently():
    _, a = run(tiny(seed=1))
    _, b = run(tiny(seed=2))
    assert losses(a) != losses(b)


def test_both_arms_see_the_same_batches_in_the_same_order(monkeypatch):
    seen: list[list[int]] = []
    real_loss = F.nll_loss

    def recording_loss(log_probs, targets, *args, **kwargs):
        if not args and not kwargs:  # the training loss (evaluation passes reduction=)
            seen.append(targets.tolist())
        return real_loss(log_probs, targets, *args, **kwargs)

    monkeypatch.setattr(train_module.F, "nll_loss", recording_loss)
    run(tiny(epochs=2, bn=True))
    with_bn, seen[:] = list(seen), []
    run(tiny(epochs=2, bn=False))
    # 100 training steps after the warm-up step (on a copy of the model, before the clock).
    assert len(with_bn) == 1 + 100 and seen == with_bn


def test_a_last_batch_of_one_image_is_dropped():
    assert steps_per_epoch(10, 3) == 3  # 3+3+3, the single leftover dropped
    assert steps_per_epoch(11, 3) == 4  # 3+3+3+2
    assert steps_per_epoch(9, 3) == 3
    # 3200 training images in batches of 7 leave one over: BatchNorm must not see it.
    result, _ = run(tiny(batch_size=7, bn=True, progress_every=1000))
    assert result.status == "finished" and result.started.steps_per_epoch == 457


def test_cancel_is_honoured_before_the_next_step():
    calls = {"n": 0}

    def stop_after_12_steps() -> bool:
        calls["n"] += 1
        return calls["n"] > 12

    result, events = run(tiny(epochs=3), should_stop=stop_after_12_steps)
    assert result.status == "cancelled"
    assert events[-1] == RunCancelled(epochs_done=0, step=12)
    assert not any(isinstance(e, (EpochEnded, RunFinished)) for e in events)


def test_cancel_in_a_later_epoch_counts_finished_epochs():
    calls = {"n": 0}

    def stop_in_epoch_two() -> bool:
        calls["n"] += 1
        return calls["n"] > 60

    result, events = run(tiny(epochs=3), should_stop=stop_in_epoch_two)
    assert events[-1] == RunCancelled(epochs_done=1, step=60)
    assert len(result.epochs) == 1


def test_nan_loss_stops_the_run_as_diverged(monkeypatch):
    real_loss = F.nll_loss
    calls = {"n": 0}

    def poisoned_loss(log_probs, targets, *args, **kwargs):
        calls["n"] += 1
        loss = real_loss(log_probs, targets, *args, **kwargs)
        return loss * float("nan") if calls["n"] == 15 else loss

    monkeypatch.setattr(train_module.F, "nll_loss", poisoned_loss)
    result, events = run(tiny(epochs=2))
    assert result.status == "diverged"
    diverged = events[-1]
    assert isinstance(diverged, RunDiverged)
    assert diverged.step == 20 and diverged.epoch == 1  # the first progress point after it
    assert "nan" in diverged.message and result.message == diverged.message
    assert not any(isinstance(e, EpochEnded) for e in events)


def test_huge_learning_rate_diverges():
    result, events = run(tiny(lr=1e10, optimizer="sgd", bn=False, epochs=3))
    assert result.status == "diverged" and isinstance(events[-1], RunDiverged)


def test_missing_dataset_fails_cleanly(tmp_path):
    result, events = run(tiny(dataset="mnist"), data_dir=tmp_path)
    assert result.status == "failed"
    assert len(events) == 1 and isinstance(events[0], RunFailed)
    message = events[0].message
    assert str(tmp_path) in message and "mnist-mini" in message and "\n" not in message
    assert result.message == message


def test_absent_device_fails_cleanly():
    result, events = run(tiny(device="cuda:7"))
    assert result.status == "failed"
    assert "cuda:7" in events[0].message and "not present" in events[0].message


def test_unexpected_errors_also_end_as_failed(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("something\nbroke")

    monkeypatch.setattr(train_module, "build_model", broken)
    result, events = run(tiny())
    assert result.status == "failed"
    assert events[-1] == RunFailed("RuntimeError: something broke")


def test_runs_on_real_format_files(mnist_root, cifar_root):
    result, _ = run(tiny(dataset="fashion-mnist", batch_size=32), data_dir=mnist_root)
    assert result.status == "finished" and result.started.train_size == 240
    result, _ = run(
        tiny(dataset="cifar10", arch="lenet5", batch_size=64, diagnostics_every=2),
        data_dir=cifar_root,
    )
    assert result.status == "finished" and result.started.test_size == 100


def test_train_leaves_the_callers_rng_and_threads_alone():
    torch.manual_seed(99)
    state = torch.get_rng_state()
    threads = torch.get_num_threads()
    run(tiny(dropout=0.2), threads=1)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.get_num_threads() == threads


def test_batch_stats_evaluation_leaves_running_statistics_alone():
    torch.manual_seed(0)
    model = build_model(tiny(bn=True), (1, 28, 28))
    model(torch.randn(32, 1, 28, 28))
    before = {name: b.clone() for name, b in model.named_buffers()}
    x, y = torch.randn(65, 1, 28, 28), torch.randint(0, 10, (65,))
    loss, accuracy = evaluate_batch_statistics(model, x, y, batch_size=16)  # last batch: 1 image
    assert loss > 0 and 0 <= accuracy <= 1
    assert all(torch.equal(b, before[name]) for name, b in model.named_buffers())
    assert model.training and all(n.track_running_stats for n in batch_norm_layers(model))


def test_diagnostics_events_arrive_at_their_interval():
    _, events = run(tiny(bn=True, diagnostics_every=7))
    steps = [e.step for e in events if isinstance(e, Diagnostics)]
    assert steps == list(range(7, 51, 7))


def test_engine_never_imports_textual_or_rich():
    code = (
        "import sys, bntui.engine.train, bntui.engine.data, bntui.engine.models, "
        "bntui.engine.diagnostics; "
        "assert not any(m.split('.')[0] in ('textual', 'rich') for m in sys.modules), "
        "[m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')]"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    pattern = re.compile(r"^\s*(from|import)\s+(textual|rich)\b", re.MULTILINE)
    offenders = [p.name for p in ENGINE.glob("*.py") if pattern.search(p.read_text())]
    assert offenders == []
