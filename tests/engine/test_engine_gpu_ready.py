"""What makes the engine ready for a GPU, checked on the CPU: honest progress timings, one host
transfer per diagnostics flush, the fused-kernel choice, queue lanes, refusing a model that
cannot fit, recognising out-of-memory errors, the device probe's warnings, the kernel settings
every run records, and the CUDA graph setting staying out of the CPU's way.
(tests/engine/test_engine_cuda.py checks the same on a GPU; bench/gpu_check.py times it there.)"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode

import bntui.engine.device as device_module
import bntui.engine.memory as memory_module
import bntui.engine.train as train_module
import bntui.tui.devices as devices_module
from bntui.config import RunConfig
from bntui.engine.cuda_graphs import WARMUP_STEPS, GraphedStep
from bntui.engine.device import lane_for, probe_devices, resolve_device
from bntui.engine.diagnostics import DiagnosticsRecorder
from bntui.engine.events import Progress, RunFailed, RunStarted, event_from_dict
from bntui.engine.memory import check_model_fits, is_out_of_memory, planned_parameters
from bntui.engine.models import build_model
from bntui.engine.train import make_optimizer, uses_cuda_graphs
from bntui.settings import AppSettings
from bntui.store import RunWriter, load_run
from bntui.store.schema import Environment
from bntui.tui.app import BntuiApp
from bntui.tui.devices import DeviceChoice, DeviceDetection

from enginehelpers import losses, run
from storehelpers import started
from tuihelpers import collect_notifications, wait_for

ROOT = Path(__file__).resolve().parents[2]


def tiny(**fields) -> RunConfig:
    defaults = dict(
        dataset="mnist-mini", hidden_sizes=[32], epochs=1, progress_every=10, diagnostics_every=0,
        device="cpu",
    )  # fmt: skip
    return RunConfig(**{**defaults, **fields})


# -- honest timings ---------------------------------------------------------------------------


def test_the_first_progress_point_of_an_epoch_does_not_time_the_evaluation(monkeypatch):
    """Evaluation is made slow on purpose (as on the full MNIST split, where it takes as long
    as many training steps): timed into the next point, it would halve that point's speed."""
    real_evaluate = train_module.evaluate

    def slow_evaluate(*args, **kwargs):
        # Far longer than a point's 25 steps: timed into it, the point would read at a tenth
        # of the others' speed or less, so a noisy shared CPU cannot pass or fail it by chance.
        time.sleep(0.2)
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(train_module, "evaluate", slow_evaluate)
    _, events = run(tiny(epochs=4, batch_size=32, progress_every=25), threads=1)
    points = [e for e in events if isinstance(e, Progress)]
    assert len(points) == 16  # 100 steps an epoch, a point every 25
    first = [p.steps_per_second for p in points[0::4]]
    others = [p.steps_per_second for index, p in enumerate(points) if index % 4]
    ratio = statistics.median(first) / statistics.median(others)
    assert ratio > 0.4, f"first points of each epoch at {ratio:.2f}x the others' speed"


def test_on_a_fast_device_progress_points_come_at_most_every_min_seconds(monkeypatch):
    monkeypatch.setattr(train_module, "min_progress_seconds", lambda device: 0.01)
    _, events = run(tiny(epochs=2, batch_size=8, progress_every=1), threads=1)  # 800 steps
    points = [e for e in events if isinstance(e, Progress)]
    assert 1 < len(points) < 400  # not one per step
    gaps = [b.elapsed - a.elapsed for a, b in zip(points, points[1:])]
    assert min(gaps) >= 0.01
    assert [p.step for p in points] == sorted({p.step for p in points})


def test_the_cpu_keeps_a_point_every_progress_every_steps():
    assert train_module.min_progress_seconds(torch.device("cpu")) == 0
    assert train_module.min_progress_seconds(torch.device("cuda")) == train_module.MIN_PROGRESS_SECONDS


def test_the_warm_up_step_changes_nothing_the_run_measures(monkeypatch):
    """It trains a copy: weights, optimizer, running statistics and random numbers (dropout)
    of the run itself are exactly as without it."""
    config = tiny(epochs=2, dropout=0.3, bn=True, diagnostics_every=5)
    _, with_warm_up = run(config)
    calls = []
    monkeypatch.setattr(train_module, "warm_up", lambda prepared, config: calls.append(1))
    _, without = run(config)
    assert calls == [1]
    assert losses(with_warm_up) == losses(without)
    # (Means and deviations by BLAS vary in the last float32 bits with how many captures a
    # flush summarizes together, which depends on timing.)
    measured = [row for e in with_warm_up if e.kind == "diagnostics" for row in e.layers]
    unwarmed = [row for e in without if e.kind == "diagnostics" for row in e.layers]
    assert len(measured) == len(unwarmed)
    for row, other in zip(measured, unwarmed):
        assert row == pytest.approx(other, rel=1e-5)


# -- no hidden syncs --------------------------------------------------------------------------

TRANSFERS = {"cpu", "cuda", "item", "tolist", "tensor", "as_tensor", "__array__"}


class HostTransfers(TorchFunctionMode):
    """Counts the calls that cross between host and device when the tensors live on a GPU
    (on the CPU they cost nothing, which is how such calls go unnoticed): .cpu(), .item(),
    .tolist(), torch.tensor(...) and .to(<a device>)."""

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        moves = name == "to" and any(isinstance(value, (str, torch.device)) for value in (*args[1:], *kwargs.values()))
        if name in TRANSFERS or moves:
            self.calls.append(name)
        return func(*args, **kwargs)


@pytest.mark.parametrize("arch", ["mlp", "lenet5"])
def test_a_diagnostics_flush_on_an_accelerator_crosses_to_the_host_once(arch):
    config = tiny(arch=arch, bn=True)
    torch.manual_seed(0)
    model = build_model(config, (1, 28, 28))
    recorder = DiagnosticsRecorder(model, torch.randn(40, 1, 28, 28), seed=0)
    recorder.on_host = False  # the accelerator's code path, run on the CPU
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with HostTransfers() as during_captures:
        for step in range(1, 4):
            model(torch.randn(16, 1, 28, 28)).sum().backward()
            recorder.snapshot()
            optimizer.step()
            recorder.capture(step, 1)
    with HostTransfers() as during_flush:
        events = recorder.flush()
    assert len(events) == 3
    assert during_captures.calls == []
    assert during_flush.calls == ["cpu"]


# -- fused optimizers -------------------------------------------------------------------------


def test_the_fused_optimizer_is_chosen_by_asking_torch_which_devices_have_it(monkeypatch):
    model = build_model(tiny(), (1, 28, 28))
    monkeypatch.setattr(train_module, "fused_optimizer_devices", lambda: ("cuda",))
    for optimizer_name in ("adam", "sgd"):
        optimizer = make_optimizer(tiny(optimizer=optimizer_name), model)
        assert not optimizer.defaults["fused"]
        model(torch.randn(4, 1, 28, 28)).sum().backward()
        optimizer.step()  # torch >= 2.4 would fail only here with fused=True on a device without it
    monkeypatch.setattr(train_module, "fused_optimizer_devices", lambda: ("cpu", "cuda"))
    assert make_optimizer(tiny(), model).defaults["fused"] is True


def test_this_torch_reports_devices_with_fused_kernels():
    assert "cuda" in train_module.fused_optimizer_devices()


# -- several GPUs: lanes ----------------------------------------------------------------------


def test_lanes_follow_the_rule_runs_train_by():
    one_gpu = ["cpu", "cuda:0"]
    assert {lane_for(name, one_gpu) for name in ("auto", "cuda", "cuda:0", " CUDA:0 ", "Auto")} == {"cuda:0"}
    assert lane_for("cuda:1", ["cpu", "cuda:0", "cuda:1"]) == "cuda:1"
    assert lane_for("cpu", one_gpu) == "cpu"
    assert lane_for("auto", ["cpu"]) == "cpu"
    assert lane_for("auto", ["cpu", "mps"]) == "mps"
    assert lane_for("cuda", ["cpu"]) == "cuda:0"  # absent: its run fails when it starts


def test_lanes_agree_with_the_device_a_run_resolves_to(monkeypatch):
    present = (device_module.DeviceInfo("cpu", "CPU"), device_module.DeviceInfo("cuda:0", "GPU"),
               device_module.DeviceInfo("cuda:1", "GPU"))  # fmt: skip
    monkeypatch.setattr(device_module, "_probe", lambda: (present, ()))
    names = [d.name for d in present]
    for name in ("auto", "cuda", "cuda:0", "cuda:1", "cpu"):
        assert str(resolve_device(name)) == lane_for(name, names)


# -- device probe -----------------------------------------------------------------------------

DRIVER_WARNING = (
    "CUDA initialization: The NVIDIA driver on your system is too old (found version 11040).\n"
    "Please update your GPU driver."
)


def test_the_probe_passes_torchs_warnings_back(monkeypatch):
    def too_old() -> bool:
        warnings.warn(DRIVER_WARNING, UserWarning, stacklevel=2)
        return False

    monkeypatch.setattr(torch.cuda, "is_available", too_old)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing reaches the user's terminal
        devices, reasons = probe_devices()
    assert [d.name for d in devices if d.name.startswith("cuda")] == []
    assert reasons == (" ".join(DRIVER_WARNING.split()),)


def test_asking_for_a_missing_gpu_says_why_torch_found_none(monkeypatch):
    cpu = device_module.DeviceInfo("cpu", "CPU")
    monkeypatch.setattr(device_module, "_probe", lambda: ((cpu,), ("the driver is too old",)))
    with pytest.raises(ValueError) as raised:
        resolve_device("cuda")
    assert str(raised.value) == (
        "device: 'cuda' is not present on this machine (present: cpu); torch says: the driver is too old"
    )
    result, _ = run(tiny(device="cuda:1"))
    assert result.message.endswith("torch says: the driver is too old")


def test_device_detection_hands_the_warnings_to_the_app(monkeypatch):
    found = {"devices": [["cpu", "x86_64"]], "warnings": ["the driver is too old"]}
    monkeypatch.setattr(devices_module, "_DETECT", f"print({json.dumps(json.dumps(found))})")
    detection = DeviceDetection()
    assert detection.run() == [DeviceChoice("cpu", "x86_64")]
    assert detection.warnings == ["the driver is too old"]


def test_real_device_detection_reports_no_warnings_here():
    detection = DeviceDetection()
    assert "cpu" in [d.name for d in detection.run()] and detection.warnings == []


async def test_the_app_shows_why_a_gpu_is_missing(tmp_path, monkeypatch):
    def detect(self):
        self.warnings = ["the NVIDIA driver is too old for this torch"]
        return [DeviceChoice("cpu", "x86_64")]

    monkeypatch.setattr(DeviceDetection, "run", detect)
    notes = []
    app = BntuiApp(AppSettings(runs_dir=tmp_path / "runs", data_dir=tmp_path / "data"))
    async with app.run_test(size=(140, 40), message_hook=collect_notifications(notes)) as pilot:
        await wait_for(pilot, lambda: bool(notes), "the probe's warning")
    assert [note.message for note in notes] == ["the NVIDIA driver is too old for this torch"]


# -- out of memory ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
        RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"),
        RuntimeError("cuDNN error: CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED"),
        RuntimeError("MPS backend out of memory (MPS allocated: 17.00 GB, other allocations: 0)"),
        RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"),
        MemoryError(),
    ],
    ids=["cuda", "cublas", "cudnn", "cudnn9", "mps", "cpu", "python"],
)
def test_out_of_memory_errors_are_recognised_whoever_raised_them(error):
    assert is_out_of_memory(error)


@pytest.mark.parametrize(
    "error",
    [RuntimeError("mat1 and mat2 shapes cannot be multiplied"), ValueError("out of range"),
     RuntimeError("CUDA error: an illegal memory access was encountered")],
)  # fmt: skip
def test_other_errors_are_not_called_out_of_memory(error):
    assert not is_out_of_memory(error)


def test_a_simulated_cublas_out_of_memory_fails_the_run_with_advice(monkeypatch):
    def failing_step(*args, **kwargs):
        def step(batch, before_update):
            raise RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`")

        return step

    released = []
    monkeypatch.setattr(train_module, "eager_step", failing_step)
    monkeypatch.setattr(train_module, "release_device_memory", released.append)
    result, events = run(tiny())
    assert result.status == "failed" and isinstance(events[-1], RunFailed)
    assert result.message.startswith("out of memory on cpu: try a smaller batch_size or hidden_sizes (")
    assert released == [torch.device("cpu")]


def test_a_failed_run_gives_the_gpus_cached_memory_back(monkeypatch):
    emptied = []
    monkeypatch.setattr(memory_module.torch.cuda, "empty_cache", lambda: emptied.append(1))
    memory_module.release_device_memory(torch.device("cpu"))
    assert emptied == []
    memory_module.release_device_memory(torch.device("cuda:1"))
    assert emptied == [1]


def test_a_model_too_large_for_this_machine_is_refused_before_it_is_built():
    config = tiny(hidden_sizes=[65536] * 16)
    expected = planned_parameters(lambda: build_model(config, (1, 28, 28)))
    assert expected == 784 * 65536 + 15 * 65536**2 + 10 * 65536 + 16 * 3 * 65536 + 10
    began = time.perf_counter()
    result, events = run(config)
    assert time.perf_counter() - began < 30  # nothing of 258 GB was allocated
    assert result.status == "failed" and len(events) == 1
    assert result.message.startswith(f"hidden_sizes: the model would have {expected:,} parameters: ")
    assert "choose fewer or narrower hidden layers" in result.message


def test_the_refusal_weighs_the_optimizer_state_against_the_device(monkeypatch):
    config = tiny(hidden_sizes=[1000])
    monkeypatch.setattr(memory_module, "host_memory_bytes", lambda: 20_000_000)
    check_model_fits(1_000_000, config, torch.device("cpu"))  # 4 MB of weights, 20 MB to train
    with pytest.raises(
        ValueError,
        match=r"^hidden_sizes: the model would have 2,000,000 parameters: "
        r"training it with adam needs about 0\.0 GB and cpu has 0\.0 GB",
    ):
        check_model_fits(2_000_000, config, torch.device("cpu"))
    with pytest.raises(ValueError, match="its weights alone need"):
        check_model_fits(6_000_000, config, torch.device("cpu"))


# -- reproducibility --------------------------------------------------------------------------


def test_every_run_trains_with_deterministic_kernels_and_says_so():
    torch.backends.cudnn.deterministic, torch.backends.cudnn.allow_tf32 = False, True
    try:
        _, events = run(tiny())
        assert not torch.backends.cudnn.deterministic and torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cudnn.deterministic = False
    started_event = events[0]
    assert isinstance(started_event, RunStarted)
    assert (started_event.deterministic, started_event.tf32) == (True, False)
    assert (started_event.cuda_version, started_event.cudnn_version) == ("", "")  # the CPU
    assert started_event.cuda_graphs is False


def test_the_kernel_settings_reach_the_runs_environment(tmp_path):
    writer = RunWriter(tmp_path, tiny())
    writer.write_event(
        dataclasses.replace(
            started(), cuda_version="13.0", cudnn_version="92400", deterministic=True, tf32=False, cuda_graphs=True
        )
    )
    environment = json.loads((writer.path / "config.json").read_text())["environment"]
    assert {key: environment[key] for key in ("cuda", "cudnn", "deterministic", "tf32", "cuda_graphs")} == {
        "cuda": "13.0", "cudnn": "92400", "deterministic": True, "tf32": False, "cuda_graphs": True,
    }  # fmt: skip
    assert load_run(tmp_path, writer.run_id).record.environment.cudnn == "92400"


def test_records_from_before_the_kernel_settings_still_read():
    old = {"python": "3.11", "torch": "2.5.0", "device": "cuda:0", "device_name": "A100"}
    environment = Environment.model_validate(old)
    assert (environment.cuda, environment.deterministic, environment.tf32) == ("", None, None)
    line = {k: v for k, v in started().to_dict().items() if k not in ("cuda_version", "tf32")}
    assert event_from_dict(line).tf32 is None


@pytest.mark.slow
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def test_training_uses_only_deterministic_algorithms(device):
    """torch raises where an operation has no deterministic implementation; CUBLAS needs a
    fixed workspace for it on CUDA."""
    code = (
        "import torch\n"
        "torch.use_deterministic_algorithms(True)\n"
        "from bntui.config import RunConfig\n"
        "from bntui.engine.train import train\n"
        "for arch in ('mlp', 'lenet5'):\n"
        f"    config = RunConfig(dataset='mnist-mini', arch=arch, epochs=1, device={device!r},\n"
        "                       diagnostics_every=10, dropout=0.3)\n"
        "    result = train(config, lambda e: None, lambda: False, data_dir='unused', threads=1)\n"
        "    assert result.status == 'finished', result.message\n"
    )
    env = {**os.environ, "CUBLAS_WORKSPACE_CONFIG": ":4096:8", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]


# -- CUDA graphs: a no-op off CUDA ------------------------------------------------------------


def test_cuda_graphs_apply_only_on_cuda_with_enough_full_batches():
    config = tiny(batch_size=64, cuda_graphs="auto")
    assert uses_cuda_graphs(config, torch.device("cuda:0"), 3200)
    assert not uses_cuda_graphs(config, torch.device("cpu"), 3200)
    assert not uses_cuda_graphs(config, torch.device("mps"), 3200)
    assert not uses_cuda_graphs(tiny(cuda_graphs="off"), torch.device("cuda:0"), 3200)
    assert not uses_cuda_graphs(tiny(), torch.device("cuda:0"), 3200)  # off unless asked for
    assert not uses_cuda_graphs(config, torch.device("cuda:0"), 64 * 7)


def test_cuda_graphs_auto_changes_nothing_on_the_cpu():
    _, auto = run(tiny(epochs=2, bn=True, cuda_graphs="auto"))
    _, off = run(tiny(epochs=2, bn=True, cuda_graphs="off"))
    assert losses(auto) == losses(off)


def test_the_graphed_step_replays_only_full_unmeasured_batches_after_its_warm_up(monkeypatch):
    """The dispatch of GraphedStep, with the CUDA parts replaced by records of what ran."""
    ran: list[str] = []
    eager = lambda batch, before_update: ran.append("measured" if before_update else f"eager {len(batch)}")  # noqa: E731

    class FakeGraph:
        def replay(self):
            ran.append("replay")

    def capture(self, batch):
        ran.append("capture")
        self.graph, self.static_batch, self.static_loss = FakeGraph(), batch.clone(), None

    monkeypatch.setattr(GraphedStep, "_side_stream_step", lambda self, batch: ran.append("warm-up"))
    monkeypatch.setattr(GraphedStep, "_capture", capture)
    prepared = train_module.Prepared(data=type("D", (), {"train_x": torch.zeros(1)})(),
                                     model=None, optimizer=None, steps_per_epoch=0)  # fmt: skip
    step = GraphedStep(prepared, eager, batch_size=4)
    full, partial = torch.arange(4), torch.arange(3)
    step(full, lambda: None)
    for _ in range(WARMUP_STEPS + 2):
        step(full, None)
    step(partial, None)
    step(full, None)
    assert ran == ["measured", *["warm-up"] * WARMUP_STEPS, "capture", "replay", "replay",
                   "eager 3", "replay"]  # fmt: skip
