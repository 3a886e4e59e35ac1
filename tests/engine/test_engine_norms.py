"""The normalization variants against their definitions, and each one training."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from bntui.config import RunConfig
from bntui.engine.models import batch_norm_layers, batch_statistics_mode, build_model
from bntui.engine.norms import (
    BatchRenorm1d,
    BatchRenorm2d,
    GhostBatchNorm1d,
    GhostBatchNorm2d,
    ghost_sizes,
    make_norm,
)
from bntui.engine.train import train

SHAPES = {1: (12, 5), 2: (6, 3, 4, 4)}


def inputs(dims: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*SHAPES[dims], generator=generator) * 3 + 1


def reference(dims: int) -> nn.Module:
    norm = (nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d)(SHAPES[dims][1], momentum=0.2)
    with torch.no_grad():  # a scale and shift that are not the identity
        norm.weight.copy_(torch.linspace(0.5, 1.5, norm.num_features))
        norm.bias.copy_(torch.linspace(-1, 1, norm.num_features))
    return norm


def like(norm: nn.Module, cls, *args) -> nn.Module:
    made = cls(norm.num_features, *args, momentum=norm.momentum)
    made.load_state_dict(norm.state_dict())
    return made


def outputs_and_grads(module: nn.Module, x: torch.Tensor):
    x = x.clone().requires_grad_(True)
    out = module(x)
    (out * torch.arange(out.numel()).reshape(out.shape).sin()).sum().backward()
    return out.detach(), x.grad, module.weight.grad, module.bias.grad


def assert_same_training_step(mine: nn.Module, theirs: nn.Module, x: torch.Tensor) -> None:
    """Two training steps on the same batches: outputs, gradients and running statistics."""
    for seed in range(2):
        batch = x if seed == 0 else inputs(1 if x.dim() == 2 else 2, seed=seed)
        out, *grads = outputs_and_grads(mine, batch)
        wanted, *wanted_grads = outputs_and_grads(theirs, batch)
        torch.testing.assert_close(out, wanted, atol=1e-6, rtol=0)
        # Gradients summed over a batch reach ~10: float32 rounding there is ~1e-6 relative.
        for grad, wanted_grad in zip(grads, wanted_grads):
            torch.testing.assert_close(grad, wanted_grad, atol=1e-6, rtol=1e-6)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(mine, name), getattr(theirs, name), atol=1e-6, rtol=0)


@pytest.mark.parametrize("dims", [1, 2])
def test_ghost_batch_norm_with_n_equal_to_the_batch_is_batch_norm(dims):
    x = inputs(dims)
    bn = reference(dims)
    ghost = like(bn, GhostBatchNorm1d if dims == 1 else GhostBatchNorm2d, x.shape[0])
    assert_same_training_step(ghost, bn, x)


@pytest.mark.parametrize("dims", [1, 2])
def test_ghost_batch_norm_normalizes_each_ghost_batch_by_its_own_statistics(dims):
    x = inputs(dims)
    bn = reference(dims)
    ghost = like(bn, GhostBatchNorm1d if dims == 1 else GhostBatchNorm2d, 4)
    out = ghost(x)
    # The definition: BatchNorm applied to each ghost batch on its own, running statistics
    # updated once per ghost batch.
    expected = torch.cat([bn(part) for part in x.split(4)])
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(ghost.running_mean, bn.running_mean, atol=1e-6, rtol=0)
    torch.testing.assert_close(ghost.running_var, bn.running_var, atol=1e-6, rtol=0)
    assert int(ghost.num_batches_tracked) == 1
    ghost.eval(), bn.eval()
    torch.testing.assert_close(ghost(x), bn(x), atol=1e-6, rtol=0)


def test_ghost_batches_never_hold_a_single_image():
    assert ghost_sizes(64, 16) == [16, 16, 16, 16]
    assert ghost_sizes(33, 16) == [16, 17]
    assert ghost_sizes(35, 16) == [16, 16, 3]
    assert ghost_sizes(5, 16) == [5]


@pytest.mark.parametrize("dims", [1, 2])
def test_batch_renorm_with_rmax_1_and_dmax_0_is_batch_norm_in_training(dims):
    x = inputs(dims)
    bn = reference(dims)
    renorm = like(bn, BatchRenorm1d if dims == 1 else BatchRenorm2d, 1.0, 0.0, 0)
    assert_same_training_step(renorm, bn, x)


@pytest.mark.parametrize("dims", [1, 2])
def test_batch_renorm_follows_its_definition(dims):
    x = inputs(dims)
    renorm = like(reference(dims), BatchRenorm1d if dims == 1 else BatchRenorm2d, 1.5, 0.5, 0)
    shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
    with torch.no_grad():  # running statistics far from this batch's, so r and d clip
        renorm.running_mean.fill_(0.2)
        renorm.running_var.fill_(1.0)
    mu, sigma = renorm.running_mean.clone(), (renorm.running_var + renorm.eps).sqrt()
    x = x.requires_grad_(True)
    out = renorm(x)
    dims_ = [0, *range(2, x.dim())]
    m, s = x.mean(dims_), (x.var(dims_, unbiased=False) + renorm.eps).sqrt()
    r = (s / sigma).clamp(1 / 1.5, 1.5).detach()
    d = ((m - mu) / sigma).clamp(-0.5, 0.5).detach()
    expected = (x - m.view(shape)) / s.view(shape) * r.view(shape) + d.view(shape)
    expected = expected * renorm.weight.view(shape) + renorm.bias.view(shape)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    assert (r == 1.5).any() and (d.abs() == 0.5).any()  # the clipping was exercised
    # r and d are constants in the backward pass: the gradient is that of `expected`.
    (grad,) = torch.autograd.grad(out.sum() + (out**2).sum(), x, retain_graph=True)
    (wanted,) = torch.autograd.grad(expected.sum() + (expected**2).sum(), x)
    torch.testing.assert_close(grad, wanted, atol=1e-5, rtol=0)


def test_batch_renorm_is_batch_norm_during_warm_up():
    x = inputs(1)
    bn = reference(1)
    renorm = like(bn, BatchRenorm1d, 3.0, 5.0, 2)
    with torch.no_grad():
        bn.running_var.fill_(9.0), renorm.running_var.fill_(9.0)
    assert_same_training_step(renorm, bn, x)  # two steps, both inside the warm-up
    assert not torch.allclose(renorm(x), bn(x), atol=1e-3)  # warm: r, d apply


@pytest.mark.parametrize("norm", ["ghost", "renorm"])
def test_batch_statistics_mode_leaves_the_variants_running_statistics_alone(norm):
    model = build_model(RunConfig(arch="lenet5", norm=norm, ghost_batch_size=2), (1, 28, 28))
    before = copy.deepcopy(model.state_dict())
    with torch.inference_mode(), batch_statistics_mode(model):
        model(torch.randn(5, 1, 28, 28))
    after = model.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)


@pytest.mark.parametrize(
    ("norm", "kinds"),
    [
        ("batch", (nn.BatchNorm2d, nn.BatchNorm1d)),
        ("group", (nn.GroupNorm, nn.GroupNorm)),
        ("layer", (nn.GroupNorm, nn.LayerNorm)),
        ("ghost", (GhostBatchNorm2d, GhostBatchNorm1d)),
        ("renorm", (BatchRenorm2d, BatchRenorm1d)),
    ],
)
def test_each_norm_builds_its_layers_in_both_architectures(norm, kinds):
    config = RunConfig(norm=norm)
    assert isinstance(make_norm(config, 6, conv=True), kinds[0])
    assert isinstance(make_norm(config, 6, conv=False), kinds[1])
    model = build_model(RunConfig(arch="lenet5", norm=norm), (1, 28, 28))
    assert type(model.layers.bn1) is kinds[0] and type(model.layers.bn4) is kinds[1]
    assert bool(batch_norm_layers(model)) == (norm in ("batch", "ghost", "renorm"))
    # Same initial weights as the other arms: norms draw no random numbers.
    torch.manual_seed(3)
    with_norm = build_model(RunConfig(arch="lenet5", norm=norm), (1, 28, 28))
    torch.manual_seed(3)
    without = build_model(RunConfig(arch="lenet5", bn=False), (1, 28, 28))
    assert torch.equal(with_norm.layers.fc4.weight, without.layers.fc4.weight)


def test_group_norm_uses_the_configured_groups():
    model = build_model(RunConfig(norm="group", norm_groups=4, hidden_sizes=[16, 8]), (1, 28, 28))
    assert [m.num_groups for m in model.modules() if isinstance(m, nn.GroupNorm)] == [4, 4]


@pytest.mark.parametrize("arch", ["mlp", "lenet5"])
@pytest.mark.parametrize("norm", ["batch", "group", "layer", "renorm", "ghost"])
def test_each_norm_trains_one_epoch_of_mnist_mini_above_chance(norm, arch):
    config = RunConfig(
        dataset="mnist-mini",
        arch=arch,
        norm=norm,
        epochs=1,
        hidden_sizes=[32],
        batch_size=64,
        val_fraction=0.5 if arch == "lenet5" else 0.2,  # LeNet-5: fewer steps keep this quick
        ghost_batch_size=16,
        renorm_warmup_steps=10,
        diagnostics_every=10,
        progress_every=100,
    )
    result = train(config, lambda event: None, lambda: False, data_dir="unused")
    assert result.status == "finished", result.message
    assert result.final.test_accuracy > 0.5  # chance is 0.1
