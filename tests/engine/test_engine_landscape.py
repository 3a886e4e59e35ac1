"""Santurkar et al.'s landscape measurements: the numbers against a direct computation, and
training untouched by measuring."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F

from bntui.config import RunConfig
from bntui.engine.events import Landscape, event_from_dict
from bntui.engine.landscape import ETAS, KEYS, measure
from bntui.engine.models import build_model

from test_engine_train import losses, run, tiny


def hand_loss_and_gradient(model, images, targets):
    """L and grad L the plain way: a training-mode forward on a throwaway copy (its running
    statistics may change, dropout is 0) and .backward()."""
    model = copy.deepcopy(model)
    model.train()
    loss = F.nll_loss(model(images), targets)
    loss.backward()
    return loss.item(), [p.grad.clone() for p in model.parameters()]


def flat_norm(tensors) -> float:
    return torch.cat([t.flatten() for t in tensors]).norm().item()


@pytest.mark.parametrize("norm", ["batch", "group", "layer", "ghost", None])
def test_numbers_match_a_direct_computation_on_a_tiny_model(norm):
    torch.manual_seed(1)
    config = RunConfig(hidden_sizes=[6], norm=norm or "batch", bn=norm is not None, norm_groups=3, ghost_batch_size=4)
    model = build_model(config, (1, 2, 2))
    images, targets = torch.randn(8, 1, 2, 2), torch.randint(0, 10, (8,))
    etas = (0.1, 0.4, 1.5)  # a finite set; 1.5 moves far enough for the extremes to differ

    _, gradient = hand_loss_and_gradient(model, images, targets)
    moved_losses, changes, ratios = [], [], []
    for eta in etas:
        moved = copy.deepcopy(model)
        with torch.no_grad():
            for parameter, grad in zip(moved.parameters(), gradient):
                parameter -= eta * grad
        loss, moved_gradient = hand_loss_and_gradient(moved, images, targets)
        change = flat_norm([a - b for a, b in zip(gradient, moved_gradient)])
        moved_losses.append(loss)
        changes.append(change)
        ratios.append(change / (eta * flat_norm(gradient)))

    found = measure(model, images, targets, etas)
    expected = {
        "loss_min": min(moved_losses),
        "loss_max": max(moved_losses),
        "grad_change_min": min(changes),
        "grad_change_max": max(changes),
        "beta_smoothness": max(ratios),
    }
    assert set(found) == set(KEYS)
    for key in KEYS:
        assert found[key] == pytest.approx(expected[key], rel=1e-5), key
    assert found["loss_min"] < found["loss_max"] and found["grad_change_max"] > 0


def test_measuring_leaves_the_model_untouched():
    torch.manual_seed(0)
    model = build_model(RunConfig(hidden_sizes=[8], dropout=0.5), (1, 28, 28))
    model(torch.randn(16, 1, 28, 28)).sum().backward()
    state = copy.deepcopy(model.state_dict())
    grads = [p.grad.clone() for p in model.parameters()]
    images, targets = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    rng = torch.get_rng_state()
    measure(model, images, targets)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, model.parameters()))
    assert torch.equal(rng, torch.get_rng_state()) and model.training


@pytest.mark.parametrize(
    "fields",
    [
        dict(bn=True, dropout=0.3, optimizer="sgd"),
        dict(bn=True, norm="renorm", renorm_warmup_steps=5),
        dict(bn=True, norm="ghost", ghost_batch_size=16, diagnostics_every=7),
        dict(bn=False),
    ],
)
def test_training_is_bit_identical_with_and_without_measuring(fields):
    _, plain = run(tiny(**fields))
    _, measured = run(tiny(landscape_every=5, **fields))
    assert losses(plain) == losses(measured)
    points = [e for e in measured if isinstance(e, Landscape)]
    assert [p.step for p in points] == list(range(5, 51, 5))
    assert not any(isinstance(e, Landscape) for e in plain)
    assert all(p.loss_min is not None and p.loss_min <= p.loss_max for p in points)
    assert all(p.beta_smoothness is not None and p.beta_smoothness > 0 for p in points)
    for point in points:  # strict JSON, and back
        assert event_from_dict(json.loads(json.dumps(point.to_dict(), allow_nan=False))) == point


def test_step_sizes_are_the_papers_range():
    assert ETAS[0] == 0.05 and ETAS[-1] == 0.4 and list(ETAS) == sorted(ETAS)


def test_an_overflowing_loss_is_recorded_as_none():
    torch.manual_seed(0)
    model = build_model(RunConfig(hidden_sizes=[4], bn=False), (1, 2, 2))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(1e30)
    found = measure(model, torch.randn(4, 1, 2, 2), torch.randint(0, 10, (4,)))
    assert None in found.values()


def test_a_stored_run_keeps_its_landscape_points_with_their_step(tmp_path):
    from bntui.execute import run_and_store
    from bntui.store import load_run

    outcome = run_and_store(tiny(landscape_every=25), runs_dir=tmp_path, data_dir=tmp_path)
    record = load_run(tmp_path, outcome.run_id).record
    assert [p["step"] for p in record.landscape.points] == [25, 50]
    assert set(record.landscape.points[0]) == {"step", "epoch", *KEYS}
