"""The engine on a CUDA device: bit-identical reruns, CUDA graphs agreeing with eager steps,
no host syncs while measuring, the current device and every GPU's RNG left alone, memory
given back after a failure. Skipped where CUDA is absent (see tests/conftest.py)."""

from __future__ import annotations

import warnings

import pytest
import torch

import bntui.engine.train as train_module
from bntui.config import RunConfig
from bntui.engine.diagnostics import DiagnosticsRecorder
from bntui.engine.events import EpochEnded, Progress, RunStarted
from bntui.engine.models import build_model
from bntui.engine.train import train

pytestmark = pytest.mark.cuda


def config(**fields) -> RunConfig:
    defaults = dict(dataset="mnist-mini", epochs=2, device="cuda", diagnostics_every=10)
    return RunConfig(**{**defaults, **fields})


def run(cfg: RunConfig):
    events = []
    result = train(cfg, events.append, lambda: False, data_dir="unused")
    assert result.status == "finished", result.message
    return events


def losses(events) -> list[float]:
    numbers = []
    for event in events:
        if isinstance(event, Progress):
            numbers.append(event.train_loss)
        elif isinstance(event, EpochEnded):
            numbers += [event.train_loss, event.val_loss, event.val_accuracy]
    return numbers


@pytest.mark.parametrize("graphs", ["auto", "off"])
def test_lenet5_reruns_bit_identical_on_cuda(graphs):
    cfg = config(arch="lenet5", cuda_graphs=graphs)
    first, second = run(cfg), run(cfg)
    assert losses(first) == losses(second)
    started = first[0]
    assert isinstance(started, RunStarted) and started.device == "cuda:0"
    assert started.cuda_version and started.cudnn_version
    assert (started.deterministic, started.tf32) == (True, False)


@pytest.mark.parametrize("arch", ["mlp", "lenet5"])
def test_cuda_graphs_train_like_eager_steps(arch):
    graphed = run(config(arch=arch, cuda_graphs="auto"))
    eager = run(config(arch=arch, cuda_graphs="off"))
    assert graphed[0].cuda_graphs is True and eager[0].cuda_graphs is False
    assert losses(graphed) == pytest.approx(losses(eager), rel=1e-3, abs=1e-4)


@pytest.mark.parametrize("arch", ["mlp", "lenet5"])
def test_measuring_syncs_with_the_host_once_per_flush(arch):
    cfg = config(arch=arch)
    torch.manual_seed(0)
    model = build_model(cfg, (1, 28, 28)).cuda()
    recorder = DiagnosticsRecorder(model, torch.randn(40, 1, 28, 28, device="cuda"), seed=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)  # no host syncs of its own
    inputs = torch.randn(16, 1, 28, 28, device="cuda")
    torch.cuda.synchronize()
    syncs = []
    torch.cuda.set_sync_debug_mode("warn")
    try:
        for step in range(1, 4):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                optimizer.zero_grad(set_to_none=True)
                model(inputs).sum().backward()
                recorder.snapshot()
                optimizer.step()
                recorder.capture(step, 1)
            syncs.append(len(caught))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            events = recorder.flush()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert syncs == [0, 0, 0]
    assert len(events) == 3 and len(caught) == 1


def test_training_on_another_gpu_leaves_the_current_device_and_every_rng_alone():
    last = torch.cuda.device_count() - 1
    torch.cuda.manual_seed_all(5)
    states = torch.cuda.get_rng_state_all()
    current = torch.cuda.current_device()
    run(config(device=f"cuda:{last}", epochs=1, dropout=0.2))
    assert torch.cuda.current_device() == current
    assert all(torch.equal(a, b) for a, b in zip(torch.cuda.get_rng_state_all(), states))


def test_a_failed_run_gives_its_memory_back(monkeypatch):
    def out_of_memory(prepared, cfg):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")

    monkeypatch.setattr(train_module, "warm_up", out_of_memory)
    torch.cuda.empty_cache()
    before = torch.cuda.memory_reserved()
    events = []
    result = train(config(hidden_sizes=[4096, 4096]), events.append, lambda: False, data_dir="unused")
    assert result.status == "failed" and result.message.startswith("out of memory on cuda:0: try")
    assert torch.cuda.memory_reserved() <= before + 4 * 2**20
