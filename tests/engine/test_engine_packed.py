"""Packed training (bntui.engine.packed): a packed member trains as its separate run does.

Float reassociation is the only allowed difference (batched matrix products and grouped
convolutions sum in another order). With BatchNorm and Adam that difference does not stay
small: the gradient of a bias before BatchNorm (and of weights reading a constant border
pixel) is zero in exact arithmetic, so what is computed is rounding noise, and Adam divides it
by its own size into steps of about the learning rate. The separate run itself moves by
~7e-3 between 1 and 2 CPU threads there. The step-by-step comparisons therefore use SGD
(momentum 0.9) for BN on; Adam is compared step by step without BN, and by accuracy with it.
"""

from __future__ import annotations

import statistics

import pytest
import torch

from bntui.config import RunConfig
from bntui.engine.events import (
    Diagnostics,
    EpochEnded,
    Landscape,
    Progress,
    RunCancelled,
    RunDiverged,
    RunFinished,
    RunStarted,
)
from bntui.engine.packed import Member, train_packed
from bntui.engine.packed_rules import pack_key
from bntui.engine.train import train


@pytest.fixture(autouse=True)
def _data(mnist_root):
    DATA["dir"] = mnist_root


DATA: dict = {}


def config(**fields) -> RunConfig:
    # The test MNIST: 240 training images, 15 steps of 16 in the first epoch.
    defaults = dict(dataset="mnist", epochs=1, batch_size=16, progress_every=1, diagnostics_every=0)
    return RunConfig(**{**defaults, **fields})


def separate(run_config: RunConfig) -> list:
    events: list = []
    train(run_config, events.append, lambda: False, data_dir=DATA["dir"])
    return events


def packed(configs: list[RunConfig], stops=None) -> tuple[list, list[list]]:
    events: list[list] = [[] for _ in configs]
    stops = stops or [lambda: False] * len(configs)
    members = [Member(c, e.append, stop) for c, e, stop in zip(configs, events, stops)]
    return train_packed(members, data_dir=DATA["dir"]), events


def step_losses(events) -> list[float]:
    return [event.train_loss for event in events if isinstance(event, Progress)]


def assert_same_steps(alone: list, member: list) -> None:
    expected, got = step_losses(alone), step_losses(member)
    assert len(got) == len(expected) == 15
    for step, (a, b) in enumerate(zip(expected, got), start=1):
        assert abs(a - b) <= 1e-4 * abs(a), f"step {step}: {b} packed, {a} alone"


@pytest.mark.parametrize("arch", ["mlp", "lenet5"])
def test_every_member_of_a_paired_pack_takes_its_separate_runs_steps(arch: str) -> None:
    # LeNet-5 has dropout 0.3: the members' masks must be their separate runs' too.
    configs = [config(arch=arch, optimizer="sgd", seed=seed, bn=bn) for seed in (0, 1) for bn in (True, False)]
    results, events = packed(configs)
    assert [result.status for result in results] == ["finished"] * 4
    for run_config, member_events in zip(configs, events):
        assert_same_steps(separate(run_config), member_events)


@pytest.mark.parametrize("arch", ["mlp", "lenet5"])
def test_without_batchnorm_adam_members_take_their_separate_runs_steps(arch: str) -> None:
    configs = [config(arch=arch, seed=seed, bn=False) for seed in (0, 3)]
    _results, events = packed(configs)
    for run_config, member_events in zip(configs, events):
        assert_same_steps(separate(run_config), member_events)


def test_a_three_seed_paired_group_reaches_the_same_test_accuracy_packed() -> None:
    configs = [
        config(dataset="mnist-mini", batch_size=64, seed=seed, bn=bn, progress_every=50)
        for seed in (0, 1, 2)
        for bn in (True, False)
    ]
    _results, events = packed(configs)
    for bn in (True, False):
        arm = [index for index, c in enumerate(configs) if c.bn is bn]
        alone = statistics.mean(separate(configs[i])[-1].test_accuracy for i in arm)
        together = statistics.mean(events[i][-1].test_accuracy for i in arm)
        assert abs(alone - together) <= 0.01, (bn, alone, together)


def test_a_member_events_are_a_whole_run() -> None:
    configs = [
        config(seed=0, bn=True, epochs=2, progress_every=5),
        config(seed=0, bn=False, epochs=2, progress_every=5),
    ]
    _results, events = packed(configs)
    for member_events, alone in zip(events, (separate(c) for c in configs)):
        assert [type(e) for e in member_events] == [type(e) for e in alone]
        started = member_events[0]
        assert isinstance(started, RunStarted) and started.parameters == alone[0].parameters
        assert [e.epoch for e in member_events if isinstance(e, EpochEnded)] == [1, 2]
        assert isinstance(member_events[-1], RunFinished)


def test_a_cancelled_member_stops_alone() -> None:
    calls = {"count": 0}

    def cancel_after_five() -> bool:
        calls["count"] += 1
        return calls["count"] > 5

    configs = [config(seed=0, bn=True), config(seed=0, bn=False)]
    results, events = packed(configs, stops=[cancel_after_five, lambda: False])
    assert [r.status for r in results] == ["cancelled", "finished"]
    assert isinstance(events[0][-1], RunCancelled) and events[0][-1].step == 5
    assert_same_steps(separate(configs[1]), events[1])


def test_a_diverged_member_stops_alone(monkeypatch) -> None:
    from bntui.engine import packed_model

    share = packed_model.PackedNetwork.share_weights_with

    def poison_first(self, members):
        share(self, members)
        with torch.no_grad():
            self.dense["out_weight"][0].fill_(float("nan"))

    monkeypatch.setattr(packed_model.PackedNetwork, "share_weights_with", poison_first)
    configs = [config(seed=0, bn=True, progress_every=4), config(seed=0, bn=False, progress_every=4)]
    results, events = packed(configs)
    assert [r.status for r in results] == ["diverged", "finished"]
    assert isinstance(events[0][-1], RunDiverged) and events[0][-1].step == 4
    monkeypatch.undo()
    alone = separate(configs[1])
    assert step_losses(events[1]) == pytest.approx(step_losses(alone), rel=1e-4)


def test_pack_rules() -> None:
    assert pack_key(config(seed=1, bn=False)) == pack_key(config(seed=7, bn=True))
    assert pack_key(config(lr=0.01)) != pack_key(config())
    assert pack_key(config(arch="lenet5")) != pack_key(config())
    assert pack_key(config(diagnostics_every=25, landscape_every=10)) != pack_key(config())


def test_members_that_differ_in_more_than_seed_and_bn_are_refused() -> None:
    with pytest.raises(ValueError, match="differ only in seed and BN"):
        packed([config(), config(lr=0.5)])


def diagnostics_of(events) -> list[Diagnostics]:
    return [event for event in events if isinstance(event, Diagnostics)]


LOCATIONS = {"preact_mean", "preact_p15", "preact_p50", "preact_p85", "unit_p15", "unit_p50", "unit_p85"}


def assert_same_diagnostics(alone: list, member: list) -> None:
    expected, got = diagnostics_of(alone), diagnostics_of(member)
    assert len(got) == len(expected) == 5  # steps 3, 6, ..., 15
    for a, b in zip(expected, got):
        assert (b.step, b.epoch) == (a.step, a.epoch)
        assert [layer.keys() for layer in b.layers] == [layer.keys() for layer in a.layers]
        for layer_a, layer_b in zip(a.layers, b.layers):
            # Locations (mean, percentiles) are compared relative to the layer's spread: after
            # BatchNorm they sit near zero, where a relative difference means nothing.
            spread = layer_a["preact_std"]
            for key, value in layer_a.items():
                if isinstance(value, float):
                    near = 1e-4 * spread if key in LOCATIONS else 1e-6
                    assert layer_b[key] == pytest.approx(value, rel=1e-4, abs=near), (b.step, layer_a["layer"], key)
                else:
                    assert layer_b[key] == value, (b.step, layer_a["layer"], key)


@pytest.mark.parametrize("arch", ["mlp", "lenet5"])
def test_every_member_measures_the_diagnostics_of_its_separate_run(arch: str) -> None:
    configs = [
        config(arch=arch, optimizer="sgd", seed=seed, bn=bn, diagnostics_every=3)
        for seed in (0, 1)
        for bn in (True, False)
    ]
    results, events = packed(configs)
    assert [result.status for result in results] == ["finished"] * 4
    for run_config, member_events in zip(configs, events):
        alone = separate(run_config)
        assert_same_diagnostics(alone, member_events)
        assert_same_steps(alone, member_events)


def test_measuring_diagnostics_leaves_packed_training_bit_identical() -> None:
    def losses(every: int) -> list[list[float]]:
        configs = [config(arch="lenet5", seed=0, bn=bn, diagnostics_every=every) for bn in (True, False)]
        _results, events = packed(configs)
        return [
            [e.train_loss for e in member if isinstance(e, (Progress, EpochEnded))] + [member[-1].test_loss]
            for member in events
        ]

    assert losses(2) == losses(0)


def test_a_cancelled_member_keeps_the_diagnostics_it_measured() -> None:
    calls = {"count": 0}

    def cancel_after_seven() -> bool:
        calls["count"] += 1
        return calls["count"] > 7

    configs = [config(seed=0, bn=True, diagnostics_every=3), config(seed=0, bn=False, diagnostics_every=3)]
    _results, events = packed(configs, stops=[cancel_after_seven, lambda: False])
    assert [e.step for e in diagnostics_of(events[0])] == [3, 6]
    assert isinstance(events[0][-1], RunCancelled)
    assert [e.step for e in diagnostics_of(events[1])] == [3, 6, 9, 12, 15]


@pytest.mark.parametrize("fields", [dict(norm="ghost", ghost_batch_size=8), dict(bn_affine=False)])
def test_members_in_any_seed_order_and_with_any_norm_take_their_separate_runs_steps(fields) -> None:
    # Seeds out of order (the pack groups them by seed; results come back in the given order);
    # Ghost BN runs as each member's own module, BatchNorm without affine through the fused call.
    configs = [
        config(optimizer="sgd", seed=seed, bn=bn, **fields)
        for seed, bn in ((1, True), (0, False), (1, False), (0, True))
    ]
    results, events = packed(configs)
    assert [result.status for result in results] == ["finished"] * 4
    for run_config, member_events in zip(configs, events):
        alone = separate(run_config)
        assert member_events[0].split_hash == alone[0].split_hash
        assert_same_steps(alone, member_events)


def test_every_member_measures_the_landscape_of_its_separate_run() -> None:
    configs = [config(optimizer="sgd", seed=seed, bn=bn, landscape_every=5) for seed in (0, 1) for bn in (True, False)]
    results, events = packed(configs)
    assert [result.status for result in results] == ["finished"] * 4
    for run_config, member_events in zip(configs, events):
        alone = [e for e in separate(run_config) if isinstance(e, Landscape)]
        got = [e for e in member_events if isinstance(e, Landscape)]
        assert [e.step for e in got] == [e.step for e in alone] == [5, 10, 15]
        for a, b in zip(alone, got):
            for key in ("loss_min", "loss_max", "grad_change_min", "grad_change_max", "beta_smoothness"):
                assert getattr(b, key) == pytest.approx(getattr(a, key), rel=1e-4), (b.step, key)


def test_measuring_the_landscape_leaves_packed_training_bit_identical() -> None:
    def losses(every: int) -> list[list[float]]:
        configs = [config(seed=0, bn=bn, landscape_every=every) for bn in (True, False)]
        _results, events = packed(configs)
        return [
            [e.train_loss for e in member if isinstance(e, (Progress, EpochEnded))] + [member[-1].test_loss]
            for member in events
        ]

    assert losses(4) == losses(0)
