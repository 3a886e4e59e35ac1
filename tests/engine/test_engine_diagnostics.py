"""BatchNorm diagnostics: the numbers are right, and measuring changes nothing."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bntui.config import RunConfig
from bntui.engine.diagnostics import (
    PERCENTILES,
    DiagnosticsRecorder,
    max_pool_2x2,
    order_statistics,
    probe_path,
    relu_max_pool_2x2,
    percentiles_numpy,
    percentiles_torch,
    sample_stride,
)
from bntui.engine.events import Diagnostics, EpochEnded, Progress, RunFinished
from bntui.engine.models import batch_statistics_mode, build_model
from bntui.engine.train import train

Q = torch.tensor(PERCENTILES)


def history(config: RunConfig, data_dir="unused") -> tuple[list[float], list[Diagnostics]]:
    numbers, diagnostics = [], []

    def on_event(event) -> None:
        if isinstance(event, Progress):
            numbers.append(event.train_loss)
        elif isinstance(event, EpochEnded):
            numbers.extend([event.train_loss, event.val_loss, event.val_accuracy])
            numbers.extend([event.val_loss_batch_stats, event.train_accuracy])
        elif isinstance(event, RunFinished):
            numbers.extend([event.test_loss, event.test_accuracy])
        elif isinstance(event, Diagnostics):
            diagnostics.append(event)

    result = train(config, on_event, lambda: False, data_dir=data_dir)
    assert result.status == "finished", result.message
    return numbers, diagnostics


@pytest.mark.parametrize(
    "fields",
    [
        dict(arch="mlp", hidden_sizes=[32, 16], dropout=0.3, epochs=2),
        dict(arch="mlp", hidden_sizes=[16], bn_placement="after", optimizer="sgd", epochs=1),
        dict(arch="lenet5", epochs=1),  # dropout 0.3 by default
    ],
)
def test_diagnostics_on_or_off_give_bit_identical_training(fields):
    base = dict(dataset="mnist-mini", progress_every=5, bn=True, **fields)
    with_diagnostics, events = history(RunConfig(**base, diagnostics_every=3))
    without, none = history(RunConfig(**base, diagnostics_every=0))
    assert events and not none
    assert with_diagnostics == without


def trained_model(arch="mlp", bn=True, **fields):
    torch.manual_seed(0)
    config = RunConfig(arch=arch, bn=bn, hidden_sizes=[24, 12], **fields)
    shape = (3, 32, 32) if arch == "lenet5" else (1, 28, 28)
    model = build_model(config, shape)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(64, *shape), torch.randint(0, 10, (64,))
    for _ in range(3):  # move weights and running statistics away from their start
        optimizer.zero_grad()
        F.nll_loss(model(x), y).backward()
        optimizer.step()
    optimizer.zero_grad()
    F.nll_loss(model(x), y).backward()
    return model, optimizer, torch.randn(200, *shape)


def test_percentiles_equal_torch_quantile_of_the_probe_preactivations():
    model, optimizer, val_x = trained_model()
    recorder = DiagnosticsRecorder(model, val_x, seed=5)
    rows = recorder.measure(step=1, epoch=1).layers
    # Recompute the first two pre-activations by hand: BN with the probe's own statistics.
    x = recorder.probe.flatten(1)
    for row, layer in zip(rows, model.hidden_layers):
        norm = layer.norm
        pre = F.batch_norm(layer.weight(x), None, None, norm.weight, norm.bias, True, 0.0, norm.eps)
        everything = torch.quantile(pre.flatten(), Q).tolist()
        unit = torch.quantile(pre[:, 0], Q).tolist()
        got = [row["preact_p15"], row["preact_p50"], row["preact_p85"]]
        assert np.allclose(got, everything, rtol=1e-5, atol=1e-6)
        got_unit = [row["unit_p15"], row["unit_p50"], row["unit_p85"]]
        assert np.allclose(got_unit, unit, rtol=1e-5, atol=1e-6)
        assert row["preact_mean"] == pytest.approx(pre.mean().item(), abs=1e-5)
        assert row["preact_std"] == pytest.approx(pre.std(correction=0).item(), rel=1e-4)
        x = torch.relu(pre)


def test_conv_layer_percentiles_cover_every_value_of_the_probe():
    model, _, val_x = trained_model("lenet5", dropout=0.0)
    recorder = DiagnosticsRecorder(model, val_x, seed=1)
    row = recorder.measure(step=1, epoch=1).layers[0]
    conv, norm = model.hidden_layers[0].weight, model.hidden_layers[0].norm
    pre = F.batch_norm(conv(recorder.probe), None, None, norm.weight, norm.bias, True, 0, norm.eps)
    assert pre.numel() > 100_000  # large enough for the sampled selection path
    expected = torch.quantile(pre.flatten(), Q).tolist()
    got = [row["preact_p15"], row["preact_p50"], row["preact_p85"]]
    assert np.allclose(got, expected, rtol=1e-5, atol=1e-6)
    channel = torch.quantile(pre[:, 0].flatten(), Q).tolist()
    assert np.allclose([row["unit_p15"], row["unit_p50"], row["unit_p85"]], channel, atol=1e-6)
    assert row["kind"] == "conv"


def test_weight_and_batch_norm_figures():
    model, optimizer, val_x = trained_model()
    recorder = DiagnosticsRecorder(model, val_x, seed=0)
    layer = model.hidden_layers[0]
    before = layer.weight.weight.detach().clone()
    recorder.snapshot()
    optimizer.step()
    row = recorder.measure(step=4, epoch=1).layers[0]
    weight = layer.weight.weight.detach()
    assert row["grad_norm"] == pytest.approx(layer.weight.weight.grad.norm().item(), rel=1e-5)
    ratio = ((weight - before).norm() / before.norm()).item()
    assert row["update_ratio"] == pytest.approx(ratio, rel=1e-5)
    norm = layer.norm
    assert row["gamma_mean"] == pytest.approx(norm.weight.mean().item(), abs=1e-6)
    assert row["beta_mean"] == pytest.approx(norm.bias.mean().item(), abs=1e-6)
    inputs = layer.weight(recorder.probe.flatten(1))
    mean_gap = (inputs.mean(0) - norm.running_mean).abs().mean().item()
    var_gap = (inputs.var(0) - norm.running_var).abs().mean().item()
    assert row["running_mean_gap"] == pytest.approx(mean_gap, rel=1e-4)
    assert row["running_var_gap"] == pytest.approx(var_gap, rel=1e-4)


def test_measuring_has_no_side_effects():
    model, optimizer, val_x = trained_model("lenet5", dropout=0.5)
    state = {name: t.clone() for name, t in model.state_dict().items()}
    grads = [p.grad.clone() for p in model.parameters()]
    modes = [m.training for m in model.modules()]
    rng = torch.get_rng_state()
    recorder = DiagnosticsRecorder(model, val_x, seed=0)
    recorder.snapshot()
    recorder.measure(step=1, epoch=1)
    assert torch.equal(torch.get_rng_state(), rng)
    for name, tensor in model.state_dict().items():  # weights, running stats, batch counts
        assert torch.equal(tensor, state[name]), name
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads))
    assert [m.training for m in model.modules()] == modes
    assert all(not m._forward_hooks for m in model.modules())


def test_probe_batch_depends_on_the_seed_only():
    _, _, val_x = trained_model()
    model = build_model(RunConfig(), (1, 28, 28))
    first = DiagnosticsRecorder(model, val_x, seed=3).probe
    torch.rand(50)  # the global stream moves on
    rng = torch.get_rng_state()
    assert torch.equal(DiagnosticsRecorder(model, val_x, seed=3).probe, first)
    assert torch.equal(torch.get_rng_state(), rng)
    assert not torch.equal(DiagnosticsRecorder(model, val_x, seed=4).probe, first)


def test_without_batch_norm_the_batch_norm_fields_are_none():
    model, _, val_x = trained_model(bn=False)
    rows = DiagnosticsRecorder(model, val_x, seed=0).measure(step=1, epoch=1).layers
    assert [row["layer"] for row in rows] == ["fc1", "fc2"]
    for row in rows:
        assert row["gamma_mean"] is None and row["running_var_gap"] is None
        assert row["update_ratio"] is None  # no snapshot before this measurement
        assert isinstance(row["preact_p50"], float) and isinstance(row["grad_norm"], float)


def test_non_finite_values_are_recorded_as_none():
    model, _, val_x = trained_model(bn=False)
    with torch.no_grad():
        model.hidden_layers[0].weight.weight[0, 0] = float("nan")
    row = DiagnosticsRecorder(model, val_x, seed=0).measure(step=1, epoch=1).layers[0]
    assert row["preact_mean"] is None and row["preact_p50"] is None


def test_diagnostics_in_a_run_have_every_layer():
    _, events = history(RunConfig(dataset="mnist-mini", hidden_sizes=[16, 8], epochs=1, diagnostics_every=25))
    assert [e.step for e in events] == [25, 50]
    for event in events:
        assert [row["layer"] for row in event.layers] == ["fc1", "fc2"]
        assert all(row["update_ratio"] > 0 and row["grad_norm"] > 0 for row in event.layers)


@pytest.mark.parametrize(
    "values",
    [
        np.random.default_rng(0).normal(size=50_000),
        np.random.default_rng(1).normal(size=7),
        np.maximum(np.random.default_rng(2).normal(size=60_000), 0),  # half the values tie at 0
        np.round(np.random.default_rng(3).normal(size=40_000)),  # few distinct values
        np.full(30_000, 2.5),
        np.random.default_rng(4).exponential(size=100_000) ** 4,  # heavy tail
        # The strided sample sees only the zeros: every interval it suggests is wrong.
        np.where(np.arange(70_000) % sample_stride(70_000) == 0, 0.0, np.arange(70_000.0)),
        np.random.default_rng(5).normal(size=5_000),  # selected by np.partition directly
        np.random.default_rng(6).normal(size=50),  # sorted by Python
    ],
)
def test_order_statistics_are_exact(values):
    values = values.astype(np.float32)
    ranks = np.array([0, 1, len(values) // 3, len(values) // 3 + 1, len(values) - 1])
    ranks = np.unique(np.minimum(ranks, len(values) - 1))
    assert order_statistics(values, ranks) == np.sort(values)[ranks].tolist()
    expected = torch.quantile(torch.from_numpy(values), Q).tolist()
    assert np.allclose(percentiles_numpy(values), expected, rtol=1e-6, atol=1e-6)
    assert np.allclose(percentiles_torch(torch.from_numpy(values)), expected, rtol=1e-6, atol=1e-6)


def preactivations_seen_by_hooks(model, x) -> list[torch.Tensor]:
    """The model's own forward in batch-statistics mode, its activations' inputs caught."""
    found = []
    hooks = [
        layer.activation.register_forward_hook(lambda m, inputs, out: found.append(inputs[0]))
        for layer in model.hidden_layers
    ]
    try:
        with torch.inference_mode(), batch_statistics_mode(model):
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return found


@pytest.mark.parametrize(
    "arch, fields",
    [("lenet5", {}), ("mlp", dict(bn_placement="after")), ("mlp", dict(bn=False))],
)
def test_the_probe_forward_sees_exactly_what_the_model_computes(arch, fields):
    model, _, val_x = trained_model(arch, **fields)
    recorder = DiagnosticsRecorder(model, val_x, seed=2)
    preacts, norm_stats = recorder.probe_forward()
    expected = preactivations_seen_by_hooks(model, recorder.probe)
    assert len(preacts) == len(expected) == len(model.hidden_layers)
    for got, want in zip(preacts, expected):
        assert torch.equal(got, want)
    for layer, stats in zip(model.hidden_layers, norm_stats):
        assert (stats is None) == (layer.norm is None)


def test_batch_norm_statistics_of_the_probe_are_those_of_its_input():
    model, _, val_x = trained_model("lenet5")
    recorder = DiagnosticsRecorder(model, val_x, seed=2)
    _, norm_stats = recorder.probe_forward()
    conv, norm = model.hidden_layers[0].weight, model.hidden_layers[0].norm
    inputs = conv(recorder.probe).detach()
    mean, invstd, count = norm_stats[0]
    assert count == inputs.numel() // inputs.shape[1]
    torch.testing.assert_close(mean, inputs.mean(dim=(0, 2, 3)))
    variance = inputs.var(dim=(0, 2, 3), correction=0)
    torch.testing.assert_close(invstd, 1 / torch.sqrt(variance + norm.eps))


@pytest.mark.parametrize("shape", [(3, 4, 8, 8), (2, 3, 7, 9), (1, 1, 2, 2), (5, 6, 10, 10)])
def test_max_pool_2x2_gives_the_values_of_max_pool2d(shape):
    x = torch.randn(*shape)
    x[..., 1, :] = x[..., 0, :]  # ties
    x[0, 0, 0, 0] = float("nan")
    x[-1, -1, -1, -2] = float("-inf")
    torch.testing.assert_close(max_pool_2x2(x), F.max_pool2d(x, 2), rtol=0, atol=0, equal_nan=True)
    pooled = F.max_pool2d(torch.relu(x), 2)
    torch.testing.assert_close(relu_max_pool_2x2(x), pooled, rtol=0, atol=0, equal_nan=True)


def test_the_probe_path_of_lenet5_stops_after_its_last_hidden_layer():
    model = build_model(RunConfig(arch="lenet5", bn=True, dropout=0.5), (3, 32, 32))
    path = probe_path(model)

    def name(run) -> str:
        if isinstance(run, functools.partial):  # a layer's functional form, bound to it
            return f"{run.func.__name__}({type(run.args[0]).__name__})"
        return getattr(run, "__name__", type(run).__name__)

    steps = [(name(run), role) for run, role, _ in path]
    assert steps[:4] == [
        ("_conv(Conv2d)", "run"), ("BatchNorm2d", "normalize"),
        ("NoneType", "preactivation"), ("relu_max_pool_2x2", "run"),
    ]  # fmt: skip
    assert steps[-2:] == [("BatchNorm1d", "normalize"), ("NoneType", "preactivation")]
    assert not any(name == "Dropout" for name, _ in steps)


def test_the_device_path_agrees_with_the_host_path():
    model, optimizer, val_x = trained_model("lenet5", dropout=0.0)
    on_host = DiagnosticsRecorder(model, val_x, seed=0)
    on_device = DiagnosticsRecorder(model, val_x, seed=0)
    on_device.on_host = False  # the GPU's code path, run on the CPU
    on_host.snapshot()
    on_device.snapshot()
    optimizer.step()
    for host_row, device_row in zip(on_host.measure(1, 1).layers, on_device.measure(1, 1).layers):
        assert host_row.keys() == device_row.keys()
        for key, value in host_row.items():
            if isinstance(value, float):
                assert device_row[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key
            else:
                assert device_row[key] == value, key


def test_captures_summarized_together_equal_measurements_taken_one_by_one():
    model, optimizer, val_x = trained_model("lenet5", dropout=0.0)
    x, y = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))
    together = DiagnosticsRecorder(model, val_x, seed=0)
    one_by_one = DiagnosticsRecorder(model, val_x, seed=0)
    expected = []
    for step in range(1, 4):
        optimizer.zero_grad(set_to_none=True)
        F.nll_loss(model(x), y).backward()
        together.snapshot()
        one_by_one.snapshot()
        optimizer.step()
        together.capture(step, epoch=1)
        expected.append(one_by_one.measure(step, epoch=1))
    events = together.flush()
    assert [e.step for e in events] == [1, 2, 3]
    for event, alone in zip(events, expected):
        assert event.epoch == alone.epoch
        for row, alone_row in zip(event.layers, alone.layers, strict=True):
            assert row.keys() == alone_row.keys()
            for key, value in alone_row.items():  # BLAS may sum rows in another order
                expected = pytest.approx(value, rel=1e-5, abs=1e-6) if value else value
                assert row[key] == expected, key
    assert together.flush() == []  # nothing waits any more
    assert len({e.layers[0]["preact_p50"] for e in events}) == 3  # each its own weights


def test_a_flush_is_due_after_enough_captures_or_time(monkeypatch):
    import bntui.engine.diagnostics as diagnostics

    model, _, val_x = trained_model()
    recorder = DiagnosticsRecorder(model, val_x, seed=0)
    assert not recorder.due()
    now = [100.0]
    monkeypatch.setattr(diagnostics.time, "perf_counter", lambda: now[0])
    recorder.capture(0, 1)
    assert recorder.due()  # the first one at once: the plots start without waiting
    assert len(recorder.flush()) == 1 and not recorder.due()
    for step in range(1, diagnostics.FLUSH_EVERY):  # captures in quick succession wait...
        now[0] += 0.001
        recorder.capture(step, 1)
        assert not recorder.due()
    now[0] += 0.001
    recorder.capture(99, 1)
    assert recorder.due()  # ...for FLUSH_EVERY of them
    assert len(recorder.flush()) == diagnostics.FLUSH_EVERY
    recorder.capture(100, 1)
    assert not recorder.due()
    now[0] += diagnostics.FLUSH_SECONDS  # or until the oldest has waited long enough
    assert recorder.due()
    recorder.flush()
    now[0] += diagnostics.FLUSH_SECONDS  # captures far apart are not held back
    recorder.capture(101, 1)
    assert recorder.due()


def test_a_cancelled_run_keeps_the_diagnostics_measured_before_it_stopped():
    config = RunConfig(dataset="mnist-mini", hidden_sizes=[16], epochs=1, diagnostics_every=2, progress_every=5)
    seen: list = []
    steps = []

    def on_event(event) -> None:
        seen.append(event)
        if isinstance(event, Progress):
            steps.append(event.step)

    result = train(config, on_event, lambda: len(steps) >= 2, data_dir="unused")
    assert result.status == "cancelled"
    measured = [e.step for e in seen if isinstance(e, Diagnostics)]
    last_step = seen[-1].step
    assert measured == list(range(2, last_step + 1, 2)) and measured


@pytest.mark.parametrize("on_host", [True, False], ids=["host", "device"])
@pytest.mark.parametrize("bn", [True, False], ids=["bn", "no-bn"])
def test_a_diverged_model_is_measured_without_numpy_warnings(on_host, bn):
    # A run that blows up (`bntui run --lr 1e9`) must not print numpy's RuntimeWarnings on the
    # terminal: the non-finite numbers are recorded as None and the run says it diverged.
    import warnings

    model, optimizer, val_x = trained_model("mlp", bn=bn)
    with torch.no_grad():
        for layer in model.hidden_layers:
            layer.weight.weight.mul_(1e30)  # pre-activations overflow to inf, inf - inf is nan
            if bn:
                layer.norm.running_var.fill_(float("inf"))
                layer.norm.running_mean.fill_(float("inf"))
    recorder = DiagnosticsRecorder(model, val_x, seed=0)
    recorder.on_host = on_host
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        recorder.snapshot()
        optimizer.step()
        rows = recorder.measure(step=1, epoch=1).layers
    if bn:
        assert rows[0]["running_var_gap"] is None and rows[0]["running_mean_gap"] is None
    else:
        assert rows[-1]["preact_mean"] is None and rows[-1]["preact_p50"] is None
