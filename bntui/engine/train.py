"""The training loop: one run of one config, reported as events.

Fast the airbench way: every split is one tensor on the device, a batch is an index into it,
the per-epoch order comes from a seeded generator, and (as in nanoGPT's loop) the host waits
for the device only where a number is needed (progress points and epoch ends), never per step.

Reported numbers:
- train_loss in EpochEnded is the mean of the epoch's batch losses (the lab's running
  average); the Progress train_loss is the same mean over the steps since the last point.
- train_accuracy, val_* and the final metrics are computed in eval mode (BatchNorm with its
  running statistics, dropout off) over the whole split, per-image means.
- val_*_batch_stats (BatchNorm runs only) evaluate the validation split in batches of the
  training batch size with BatchNorm normalizing by each batch's own statistics, without
  touching the running statistics.
- epoch_seconds times the epoch's training steps (diagnostics included, evaluation not);
  elapsed counts from the first step and includes evaluation.
- Progress steps_per_second times training only: the clock restarts after each epoch's
  evaluation, and one warm-up step on a copy of the model (RNG untouched) pays the device's
  start-up costs before the clock starts. On an accelerator a point comes at most every
  MIN_PROGRESS_SECONDS (it does thousands of steps a second).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from bntui.engine.data import DatasetMissing, SplitTensors, derive_seed, load_split_tensors
from bntui.engine.device import (
    KernelSettings,
    describe_device,
    on_device,
    reproducible_kernels,
    resolve_device,
    seeded_gpus,
)
from bntui.engine.diagnostics import DiagnosticsRecorder
from bntui.engine.events import (
    EpochEnded,
    Event,
    Progress,
    RunCancelled,
    RunDiverged,
    RunFailed,
    RunFinished,
    RunResult,
    RunStarted,
)
from bntui.engine.landscape import LandscapeRecorder
from bntui.engine.memory import (
    check_model_fits,
    is_out_of_memory,
    out_of_memory_message,
    planned_parameters,
    release_device_memory,
)
from bntui.engine.models import Classifier, batch_norm_layers, batch_statistics_mode, build_model, parameter_count

log = logging.getLogger(__name__)


def eval_batch_size(device: torch.device) -> int:
    """A GPU wants large evaluation batches; on a CPU, LeNet-5's activations must stay in the
    caches (batches of 256 evaluate about 1.5x faster per image than batches of 1,024)."""
    return 256 if device.type == "cpu" else 4096


# A GPU does thousands of steps a second: a point per progress_every steps would be a hundred
# events a second of noise (and as many host syncs). The CPU keeps one per progress_every.
MIN_PROGRESS_SECONDS = 0.1


def min_progress_seconds(device: torch.device) -> float:
    return 0.0 if device.type == "cpu" else MIN_PROGRESS_SECONDS


class _Stop(Exception):
    """Ends the loop early with a terminal event (cancelled or diverged)."""

    def __init__(self, event: Event, status: Literal["cancelled", "diverged"], message: str | None = None):
        super().__init__(status)
        self.event, self.status, self.message = event, status, message


def train(
    config,
    on_event: Callable[[Event], None],
    should_stop: Callable[[], bool],
    *,
    data_dir: Path,
    download: bool = False,
    threads: int = 0,
) -> RunResult:
    """Run `config` to the end, emitting RunStarted, (Progress | Diagnostics)*, EpochEnded per
    epoch and exactly one terminal event. Run-level failures (missing dataset, bad device,
    out of memory) become RunFailed, never exceptions. Leaves the caller's RNG state and
    thread count as they were."""
    result = RunResult(status="failed")

    def emit(event: Event) -> None:
        on_event(event)
        if isinstance(event, RunStarted):
            result.started = event
        elif isinstance(event, EpochEnded):
            result.epochs.append(event)
        elif isinstance(event, RunFinished):
            result.final = event

    previous_threads = torch.get_num_threads()
    device = None
    try:
        if threads > 0:
            torch.set_num_threads(threads)
        device = resolve_device(config.device)
        with (
            torch.random.fork_rng(devices=seeded_gpus(device)),
            on_device(device),
            reproducible_kernels(device) as kernels,
        ):
            _Run(config, device, emit, should_stop, kernels).run(data_dir, download)
        result.status = "finished"
    except _Stop as stop:
        emit(stop.event)
        result.status, result.message = stop.status, stop.message
    except Exception as exc:  # every run-level failure ends as RunFailed, see docstring
        message = failure_message(exc, device)
        emit(RunFailed(message))
        result.status, result.message = "failed", message
    finally:
        torch.set_num_threads(previous_threads)
        if result.status == "failed":  # (the traceback holding its tensors is gone by now)
            release_device_memory(device)
    return result


def failure_message(exc: Exception, device: torch.device | None = None) -> str:
    """One line for the user. Unexpected errors also log their traceback for bug reports."""
    text = " ".join(str(exc).split())
    if is_out_of_memory(exc):
        return f"{out_of_memory_message(device)} ({text[:160]})"
    if isinstance(exc, (DatasetMissing, ValueError)):
        return text
    log.error("training failed", exc_info=exc)
    return f"{type(exc).__name__}: {text[:300]}"


def steps_per_epoch(num_train: int, batch_size: int) -> int:
    """Full batches plus the last partial one, unless that one would hold a single image
    (BatchNorm cannot train on it); the rule is the same with and without BatchNorm so both
    arms take the same steps."""
    full, rest = divmod(num_train, batch_size)
    return full + (1 if rest >= 2 else 0)


def accumulator_dtype(device: torch.device) -> torch.dtype:
    """float64 keeps a sum of thousands of losses exact enough; MPS has no float64."""
    return torch.float32 if device.type == "mps" else torch.float64


def fused_optimizer_devices() -> tuple[str, ...]:
    """Device types this torch has fused Adam and SGD kernels for. Asked, not tried: since
    torch 2.4 `fused=True` is accepted for any device and fails only at the first step()."""
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
    except ImportError:  # older than this project supports: CUDA only
        return ("cuda",)
    return tuple(_get_fused_kernels_supported_devices())


def make_optimizer(config, model: nn.Module, capturable: bool = False) -> torch.optim.Optimizer:
    """Adam or SGD, as their fused implementations where this torch has one for the device
    (the same update rule, a third less time per step for the small MLP on a CPU).
    `capturable` keeps Adam's step count on the device, for CUDA graphs."""
    cls: type[torch.optim.Optimizer]
    options: dict[str, Any]
    if config.optimizer == "adam":
        cls, options = torch.optim.Adam, {"lr": config.lr}
        if capturable:
            options["capturable"] = True
    else:
        cls, options = torch.optim.SGD, {"lr": config.lr, "momentum": config.sgd_momentum}
    parameters = list(model.parameters())
    fused = all(p.device.type in fused_optimizer_devices() and p.is_floating_point() for p in parameters)
    return cls(parameters, **options, fused=fused or None)


@dataclass
class Prepared:
    data: SplitTensors
    model: Classifier
    optimizer: torch.optim.Optimizer
    steps_per_epoch: int
    cuda_graphs: bool = False  # the training step is replayed as a CUDA graph


def prepare(config, device: torch.device, data_dir: Path, download: bool = False) -> Prepared:
    """Data on the device, the seeded model, its optimizer. Seeds torch's global RNG with
    config.seed: initial weights, then dropout, draw from it in that order."""
    data = load_split_tensors(config, data_dir, download, device)
    steps = steps_per_epoch(len(data.train_y), config.batch_size)
    if steps == 0:
        raise ValueError(f"the training split has {len(data.train_y)} image(s): too few to train")
    parameters = planned_parameters(lambda: build_model(config, data.image_shape))
    check_model_fits(parameters, config, device)
    torch.manual_seed(config.seed)
    model = build_model(config, data.image_shape).to(device)
    graphs = uses_cuda_graphs(config, device, len(data.train_y))
    return Prepared(data, model, make_optimizer(config, model, capturable=graphs), steps, graphs)


def uses_cuda_graphs(config, device: torch.device, num_train: int) -> bool:
    """Whether the training step runs as a CUDA graph: `cuda_graphs = auto` on a CUDA device,
    with enough full batches per epoch to be worth capturing. Off everywhere else."""
    from bntui.engine.cuda_graphs import worth_capturing

    setting = getattr(config, "cuda_graphs", "off")
    wanted = setting == "auto" and device.type == "cuda"
    return wanted and worth_capturing(num_train, config.batch_size)


class _Run:
    def __init__(self, config, device: torch.device, emit, should_stop, kernels: KernelSettings):
        self.config, self.device = config, device
        self.emit, self.should_stop = emit, should_stop
        self.kernels = kernels
        self.step = 0
        self.min_progress_seconds = min_progress_seconds(device)

    def run(self, data_dir: Path, download: bool) -> None:
        config = self.config
        wall_start, clock_start = time.time(), time.perf_counter()
        prepared = prepare(config, self.device, data_dir, download)
        data, model = prepared.data, prepared.model
        diagnostics = None
        if config.diagnostics_every > 0 and len(data.val_y) >= 2:
            diagnostics = DiagnosticsRecorder(model, data.val_x, config.seed)
        self.landscape = None  # measured between backward and the update; never changes training
        if config.landscape_every > 0:
            self.landscape = LandscapeRecorder(model, config.landscape_every)
        self.train_step = training_step(prepared, config.batch_size)
        warm_up(prepared, config)
        self.emit(
            RunStarted(
                device=str(self.device),
                device_name=describe_device(self.device),
                torch_version=torch.__version__,
                parameters=parameter_count(model),
                steps_per_epoch=prepared.steps_per_epoch,
                epochs=config.epochs,
                train_size=len(data.train_y),
                val_size=len(data.val_y),
                test_size=len(data.test_y),
                split_hash=data.split_hash,
                time=wall_start,
                cuda_version=self.kernels.cuda,
                cudnn_version=self.kernels.cudnn,
                deterministic=self.kernels.deterministic,
                tf32=self.kernels.tf32,
                cuda_graphs=prepared.cuda_graphs,
            )
        )
        self.order_generator = torch.Generator().manual_seed(derive_seed(config.seed, "order"))
        self.loss_total = torch.zeros((), dtype=accumulator_dtype(self.device), device=self.device)
        self.loop_start = time.perf_counter()
        self.point = (0.0, 0, self.loop_start)  # (loss total, step, time) at the last progress
        self.total_at_epoch_start = 0.0
        last_epoch = None
        try:
            for epoch in range(1, config.epochs + 1):
                last_epoch = self.run_epoch(epoch, prepared, diagnostics)
        except Exception:  # cancelled, diverged or failed: keep what was measured if we can
            with contextlib.suppress(Exception):
                self.emit_diagnostics(diagnostics)
            raise
        assert last_epoch is not None  # a run has at least one epoch (RunConfig)
        train_seconds = time.perf_counter() - self.loop_start
        test_loss, test_accuracy = evaluate(model, data.test_x, data.test_y)
        self.emit(
            RunFinished(
                train_loss=last_epoch.train_eval_loss,
                train_accuracy=last_epoch.event.train_accuracy,
                val_loss=last_epoch.event.val_loss,
                val_accuracy=last_epoch.event.val_accuracy,
                test_loss=test_loss,
                test_accuracy=test_accuracy,
                steps=self.step,
                train_seconds=train_seconds,
                total_seconds=time.perf_counter() - clock_start,
            )
        )

    def before_update(self, batch, epoch: int, data, diagnostics) -> Callable[[], None] | None:
        """What runs between this step's backward and its update, at the weights and gradient
        of the step: a diagnostics snapshot (`diagnostics` given) and the landscape
        measurement when one is due. Neither changes training."""
        step = self.step + 1
        landscape = self.landscape if self.landscape is not None and self.landscape.due(step) else None
        if diagnostics is None and landscape is None:
            return None

        def measure() -> None:
            if diagnostics is not None:
                diagnostics.snapshot()
            if landscape is not None:
                images, targets = data.train_x.index_select(0, batch), data.train_y.index_select(0, batch)
                self.emit(landscape.measure(images, targets, step, epoch))

        return measure

    def run_epoch(self, epoch: int, prepared: Prepared, diagnostics) -> _EpochOutcome:
        config, data, model = self.config, prepared.data, prepared.model
        batch_size = config.batch_size
        every, progress_every = config.diagnostics_every, config.progress_every
        order = torch.randperm(len(data.train_y), generator=self.order_generator).to(self.device)
        epoch_start = time.perf_counter()
        model.train()
        for index in range(prepared.steps_per_epoch):
            if self.should_stop():
                raise _Stop(RunCancelled(epochs_done=epoch - 1, step=self.step), "cancelled")
            batch = order[index * batch_size : (index + 1) * batch_size]
            measuring = diagnostics is not None and (self.step + 1) % every == 0
            loss = self.train_step(batch, self.before_update(batch, epoch, data, diagnostics if measuring else None))
            self.loss_total.add_(loss.detach())
            self.step += 1
            if measuring:
                diagnostics.capture(self.step, epoch)
                if diagnostics.due():
                    self.emit_diagnostics(diagnostics)
            if self.step % progress_every == 0 and self.progress_due():
                self.progress(epoch)
        self.emit_diagnostics(diagnostics)  # inside the epoch's time: measuring is training's cost
        total = self.read_total(epoch)
        train_loss = (total - self.total_at_epoch_start) / prepared.steps_per_epoch
        self.total_at_epoch_start = total
        outcome = self.end_epoch(epoch, train_loss, time.perf_counter() - epoch_start, prepared)
        # The next point times training steps only, not this evaluation.
        self.point = (total, self.step, time.perf_counter())
        return outcome

    def progress_due(self) -> bool:
        return time.perf_counter() - self.point[2] >= self.min_progress_seconds

    def emit_diagnostics(self, diagnostics) -> None:
        if diagnostics is not None:
            for event in diagnostics.flush():
                self.emit(event)

    def read_total(self, epoch: int) -> float:
        """The summed train loss so far (a device sync); stops the run if it is not finite."""
        total = self.loss_total.item()
        if not math.isfinite(total):
            message = f"the training loss became {total} by step {self.step}"
            event = RunDiverged(epoch=epoch, step=self.step, message=message)
            raise _Stop(event, "diverged", message)
        return total

    def progress(self, epoch: int) -> None:
        total, now = self.read_total(epoch), time.perf_counter()
        last_total, last_step, last_time = self.point
        steps = self.step - last_step
        self.emit(
            Progress(
                epoch=epoch,
                step=self.step,
                train_loss=(total - last_total) / steps,
                steps_per_second=steps / max(now - last_time, 1e-9),
                elapsed=now - self.loop_start,
            )
        )
        self.point = (total, self.step, now)

    def end_epoch(self, epoch, train_loss, epoch_seconds, prepared) -> _EpochOutcome:
        data, model = prepared.data, prepared.model
        val_loss, val_accuracy = evaluate(model, data.val_x, data.val_y)
        train_eval_loss, train_accuracy = evaluate(model, data.train_x, data.train_y)
        batch_stats = (None, None)
        if self.config.bn:
            batch_stats = evaluate_batch_statistics(model, data.val_x, data.val_y, self.config.batch_size)
        event = EpochEnded(
            epoch=epoch,
            step=self.step,
            train_loss=train_loss,
            val_loss=val_loss,
            train_accuracy=train_accuracy,
            val_accuracy=val_accuracy,
            epoch_seconds=epoch_seconds,
            elapsed=time.perf_counter() - self.loop_start,
            val_loss_batch_stats=batch_stats[0],
            val_accuracy_batch_stats=batch_stats[1],
        )
        self.emit(event)
        return _EpochOutcome(event, train_eval_loss)


StepFunction = Callable[[torch.Tensor, Callable[[], None] | None], torch.Tensor]


def training_step(prepared: Prepared, batch_size: int) -> StepFunction:
    """`step(batch, before_update)`: one optimizer step on the training images at the indices
    `batch`, calling `before_update()` (if given) between backward and the update; returns the
    batch's loss (on the device, not read). A CUDA graph replay where prepared says so."""
    eager = eager_step(prepared.model, prepared.optimizer, prepared.data)
    if not prepared.cuda_graphs:
        return eager
    from bntui.engine.cuda_graphs import GraphedStep

    graph_eager = eager_step(prepared.model, prepared.optimizer, prepared.data, keep_grads=True)
    return GraphedStep(prepared, graph_eager, batch_size)


def eager_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, data: SplitTensors, keep_grads: bool = False
) -> StepFunction:
    """The training step as plain PyTorch. `keep_grads` zeroes the gradients in place instead
    of dropping them (a CUDA graph holds on to their memory)."""
    train_x, train_y = data.train_x, data.train_y

    def step(batch: torch.Tensor, before_update: Callable[[], None] | None) -> torch.Tensor:
        loss = F.nll_loss(model(train_x.index_select(0, batch)), train_y.index_select(0, batch))
        optimizer.zero_grad(set_to_none=not keep_grads)
        loss.backward()
        if before_update is not None:
            before_update()
        optimizer.step()
        return loss

    return step


def warm_up(prepared: Prepared, config) -> None:
    """One training step on a copy of the model and optimizer, so that the device's one-off
    costs (CUDA's context and kernel loading, cuBLAS handles, the allocator's first blocks,
    the CPU's first-touch page faults) are paid before the clock starts, by every run alike.
    The model, its optimizer and every random number generator are left as they were."""
    model = copy.deepcopy(prepared.model)
    optimizer = make_optimizer(config, model, capturable=prepared.cuda_graphs)
    device = prepared.data.train_x.device
    count = min(config.batch_size, len(prepared.data.train_y))
    batch = torch.arange(count, device=device)
    with torch.random.fork_rng(devices=seeded_gpus(device)):
        eager_step(model, optimizer, prepared.data)(batch, None)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


@dataclass
class _EpochOutcome:
    event: EpochEnded
    train_eval_loss: float  # eval-mode loss over the training split, for RunFinished


def _mean_loss_and_accuracy(model, x, y, bounds) -> tuple[float, float]:
    loss_sum = torch.zeros((), dtype=accumulator_dtype(x.device), device=x.device)
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    for start, stop in bounds:
        log_probs = model(x[start:stop])
        targets = y[start:stop]
        loss_sum += F.nll_loss(log_probs, targets, reduction="sum")
        correct += (log_probs.argmax(dim=1) == targets).sum()
    count = max(len(y), 1)
    return loss_sum.item() / count, correct.item() / count


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int | None = None):
    """(mean loss, accuracy) in eval mode; the model's mode is restored afterwards."""
    batch_size = batch_size or eval_batch_size(x.device)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            bounds = [(start, start + batch_size) for start in range(0, len(y), batch_size)]
            return _mean_loss_and_accuracy(model, x, y, bounds)
    finally:
        model.train(was_training)


def evaluate_batch_statistics(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int):
    """(mean loss, accuracy) with BatchNorm normalizing each batch by its own statistics,
    running statistics untouched. A last batch of one image joins the one before it. None
    without batch statistics (GroupNorm and LayerNorm normalize each image alone)."""
    if len(y) < 2 or not batch_norm_layers(model):
        return None, None
    starts = list(range(0, len(y), batch_size))
    if len(y) - starts[-1] == 1:
        starts.pop()
    bounds = list(zip(starts, [*starts[1:], len(y)]))
    with torch.inference_mode(), batch_statistics_mode(model):
        return _mean_loss_and_accuracy(model, x, y, bounds)
