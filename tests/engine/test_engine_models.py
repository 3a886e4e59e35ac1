"""Models: shapes for every dataset/architecture/BN setting, paired initialisation, the
pre-activation points and the side-effect-free batch-statistics mode."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bntui.config import DATASETS, RunConfig
from bntui.engine.data import dataset_info
from bntui.engine.models import (
    batch_norm_layers,
    batch_statistics_mode,
    build_model,
    lenet5_flat_features,
)


def config(**fields) -> RunConfig:
    fields.setdefault("hidden_sizes", [16, 8])
    return RunConfig(**fields)


@pytest.mark.parametrize(
    "dataset, arch, bn, placement",
    list(itertools.product(DATASETS, ("mlp", "lenet5"), (True, False), ("before", "after"))),
)
def test_output_is_log_probabilities_for_every_combination(tmp_path, dataset, arch, bn, placement):
    shape = dataset_info(dataset, tmp_path).image_shape
    model = build_model(config(dataset=dataset, arch=arch, bn=bn, bn_placement=placement), shape)
    out = model(torch.randn(4, *shape))
    assert out.shape == (4, 10)
    assert torch.allclose(out.exp().sum(dim=1), torch.ones(4), atol=1e-5)
    assert bool(batch_norm_layers(model)) == bn


def test_lenet5_flatten_size_follows_the_image_shape():
    assert lenet5_flat_features((3, 32, 32)) == 400
    assert lenet5_flat_features((1, 28, 28)) == 256
    model = build_model(config(arch="lenet5"), (3, 32, 32))
    assert model.layers.fc3.in_features == 400
    with pytest.raises(ValueError, match="at least 16x16"):
        lenet5_flat_features((1, 12, 12))


def test_mlp_layers_follow_the_config():
    fields = config(hidden_sizes=[32, 16, 8], dropout=0.25, activation="tanh")
    model = build_model(fields, (1, 28, 28))
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (784, 32), (32, 16), (16, 8), (8, 10),
    ]  # fmt: skip
    assert sum(isinstance(m, nn.Dropout) and m.p == 0.25 for m in model.modules()) == 3
    assert all(isinstance(layer.activation, nn.Tanh) for layer in model.hidden_layers)
    cifar = build_model(config(), (3, 32, 32))
    assert cifar.layers.fc1.in_features == 3072


def test_batch_norm_settings_come_from_the_config():
    model = build_model(config(bn_momentum=0.3, bn_eps=1e-3, bn_affine=False), (1, 28, 28))
    norms = batch_norm_layers(model)
    assert norms and all(n.momentum == 0.3 and n.eps == 1e-3 and n.weight is None for n in norms)


def test_lenet5_has_dropout_only_after_dense_hidden_layers():
    model = build_model(config(arch="lenet5", dropout=0.3), (3, 32, 32))
    names = list(model.layers._modules)
    assert names == [
        "conv1", "bn1", "act1", "pool1", "conv2", "bn2", "act2", "pool2", "flatten",
        "fc3", "bn3", "act3", "drop3", "fc4", "bn4", "act4", "drop4", "out",
    ]  # fmt: skip


@pytest.mark.parametrize("arch", ["mlp", "lenet5"])
@pytest.mark.parametrize("placement", ["before", "after"])
def test_paired_initialisation_gives_identical_shared_weights(arch, placement):
    shape = (3, 32, 32) if arch == "lenet5" else (1, 28, 28)
    torch.manual_seed(7)
    with_bn = build_model(config(arch=arch, bn=True, bn_placement=placement), shape)
    torch.manual_seed(7)
    without_bn = build_model(config(arch=arch, bn=False), shape)
    shared = without_bn.state_dict()
    bn_state = with_bn.state_dict()
    assert set(shared) < set(bn_state)
    for name, tensor in shared.items():
        assert torch.equal(bn_state[name], tensor), name
    # ... and the random stream continues identically afterwards (dropout draws from it).
    torch.manual_seed(7)
    build_model(config(arch=arch, bn=True), shape)
    after_bn = torch.rand(3)
    torch.manual_seed(7)
    build_model(config(arch=arch, bn=False), shape)
    assert torch.equal(torch.rand(3), after_bn)


def preactivations(model, x):
    seen = {}
    handles = [
        layer.activation.register_forward_hook(
            lambda m, inputs, out, name=layer.name: seen.__setitem__(name, inputs[0])
        )
        for layer in model.hidden_layers
    ]
    model(x)
    for handle in handles:
        handle.remove()
    return seen


def test_hidden_layers_name_the_pre_activation_points():
    torch.manual_seed(0)
    mlp = build_model(config(), (1, 28, 28))
    assert [layer.name for layer in mlp.hidden_layers] == ["fc1", "fc2"]
    lenet = build_model(config(arch="lenet5"), (3, 32, 32))
    assert [layer.name for layer in lenet.hidden_layers] == ["conv1", "conv2", "fc3", "fc4"]
    assert [type(layer.norm) for layer in lenet.hidden_layers] == [
        nn.BatchNorm2d, nn.BatchNorm2d, nn.BatchNorm1d, nn.BatchNorm1d,
    ]  # fmt: skip


def test_pre_activation_is_after_bn_when_bn_is_placed_before():
    torch.manual_seed(0)
    model = build_model(config(bn_placement="before"), (1, 28, 28)).train()
    x = torch.randn(8, 1, 28, 28)
    seen = preactivations(model, x)
    first = model.hidden_layers[0]
    expected = F.batch_norm(first.weight(x.flatten(1)), None, None, first.norm.weight, first.norm.bias, True)
    assert torch.allclose(seen["fc1"], expected, atol=1e-5)


def test_pre_activation_is_the_linear_output_when_bn_is_placed_after():
    torch.manual_seed(0)
    model = build_model(config(bn_placement="after"), (1, 28, 28)).train()
    x = torch.randn(8, 1, 28, 28)
    seen = preactivations(model, x)
    assert torch.allclose(seen["fc1"], model.hidden_layers[0].weight(x.flatten(1)))
    assert list(model.layers._modules)[:3] == ["flatten", "fc1", "act1"]


def test_no_hooks_stay_registered_on_the_model():
    model = build_model(config(), (1, 28, 28))
    preactivations(model, torch.randn(4, 1, 28, 28))
    assert all(not module._forward_hooks for module in model.modules())


def test_batch_statistics_mode_changes_nothing():
    torch.manual_seed(0)
    model = build_model(config(arch="lenet5", dropout=0.5), (3, 32, 32)).train()
    model(torch.randn(16, 3, 32, 32))  # running statistics move away from their start
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    modes = [m.training for m in model.modules()]
    x = torch.randn(16, 3, 32, 32)
    rng = torch.get_rng_state()
    with torch.no_grad(), batch_statistics_mode(model):
        first, second = model(x), model(x)
    assert torch.equal(first, second)  # dropout off: deterministic
    assert torch.equal(torch.get_rng_state(), rng)  # no random numbers drawn
    for name, buffer in model.named_buffers():
        assert torch.equal(buffer, buffers[name]), name  # incl. num_batches_tracked
    assert [m.training for m in model.modules()] == modes


def test_batch_statistics_mode_normalizes_by_the_batch():
    torch.manual_seed(0)
    model = build_model(config(hidden_sizes=[8]), (1, 28, 28)).eval()
    layer = model.hidden_layers[0]
    layer.norm.running_mean.fill_(100.0)  # eval mode would use these, batch mode must not
    x = torch.randn(10, 1, 28, 28)
    with torch.no_grad(), batch_statistics_mode(model):
        seen = preactivations(model, x)
    norm = layer.norm
    expected = F.batch_norm(layer.weight(x.flatten(1)), None, None, norm.weight, norm.bias, True)
    assert torch.allclose(seen["fc1"], expected, atol=1e-5)
    assert not model.training and not layer.norm.training
