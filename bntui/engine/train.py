"""The training loop: one run of one config, reported as events.

Fast the nanoGPT/airbench way: every split is one tensor on the device, a batch is an index
into it, the per-epoch order comes from a seeded generator, and the host waits for the device
only where a number is needed (progress points and epoch ends), never per step.

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
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from bntui.engine.data import DatasetMissing, SplitTensors, derive_seed, load_split_tensors
from bntui.engine.device import describe_device, resolve_device
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
from bntui.engine.models import batch_norm_layers, batch_statistics_mode, build_model, parameter_count

log = logging.getLogger(__name__)


def eval_batch_size(device: torch.device) -> int:
    """A GPU wants large evaluation batches; on a CPU, LeNet-5's activations must stay in the
    caches (batches of 256 evaluate about 1.5x faster per image than batches of 1,024)."""
    return 256 if device.type == "cpu" else 4096


class _Stop(Exception):
    """Ends the loop early with a terminal event (cancelled or diverged)."""

    def __init__(self, event: Event, status: str, message: str | None = None):
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
    try:
        if threads > 0:
            torch.set_num_threads(threads)
        device = resolve_device(config.device)
        rng_devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=rng_devices):
            _Run(config, device, emit, should_stop).run(data_dir, download)
        result.status = "finished"
    except _Stop as stop:
        emit(stop.event)
        result.status, result.message = stop.status, stop.message
    except Exception as exc:  # every run-level failure ends as RunFailed, see docstring
        message = failure_message(exc)
        emit(RunFailed(message))
        result.status, result.message = "failed", message
    finally:
        torch.set_num_threads(previous_threads)
    return result


def failure_message(exc: Exception) -> str:
    """One line for the user. Unexpected errors also log their traceback for bug reports."""
    text = " ".join(str(exc).split())
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return f"out of memory on the device: try a smaller batch_size or the cpu ({text[:160]})"
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


def make_optimizer(config, model: nn.Module) -> torch.optim.Optimizer:
    """Adam or SGD, as their fused implementations where this torch has one for the device
    (the same update rule, a third less time per step for the small MLP on a CPU)."""
    if config.optimizer == "adam":
        cls, options = torch.optim.Adam, {"lr": config.lr}
    else:
        cls, options = torch.optim.SGD, {"lr": config.lr, "momentum": config.sgd_momentum}
    try:
        return cls(model.parameters(), **options, fused=True)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device/torch
        return cls(model.parameters(), **options)


@dataclass
class Prepared:
    data: SplitTensors
    model: nn.Module
    optimizer: torch.optim.Optimizer
    steps_per_epoch: int


def prepare(config, device: torch.device, data_dir: Path, download: bool = False) -> Prepared:
    """Data on the device, the seeded model, its optimizer. Seeds torch's global RNG with
    config.seed: initial weights, then dropout, draw from it in that order."""
    data = load_split_tensors(config, data_dir, download, device)
    steps = steps_per_epoch(len(data.train_y), config.batch_size)
    if steps == 0:
        raise ValueError(f"the training split has {len(data.train_y)} image(s): too few to train")
    torch.manual_seed(config.seed)
    model = build_model(config, data.image_shape).to(device)
    return Prepared(data, model, make_optimizer(config, model), steps)


class _Run:
    def __init__(self, config, device: torch.device, emit, should_stop):
        self.config, self.device = config, device
        self.emit, self.should_stop = emit, should_stop
        self.step = 0

    def run(self, data_dir: Path, download: bool) -> None:
        config = self.config
        wall_start, clock_start = time.time(), time.perf_counter()
        prepared = prepare(config, self.device, data_dir, download)
        data, model = prepared.data, prepared.model
        diagnostics = None
        if config.diagnostics_every > 0 and len(data.val_y) >= 2:
            diagnostics = DiagnosticsRecorder(model, data.val_x, config.seed)
        self.landscape = None  # measured by the hook in run_epoch; never changes training
        if config.landscape_every > 0:
            self.landscape = LandscapeRecorder(model, config.landscape_every)
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

    def run_epoch(self, epoch: int, prepared: Prepared, diagnostics) -> _EpochOutcome:
        config, data, model = self.config, prepared.data, prepared.model
        optimizer, batch_size = prepared.optimizer, config.batch_size
        every, progress_every = config.diagnostics_every, config.progress_every
        order = torch.randperm(len(data.train_y), generator=self.order_generator).to(self.device)
        epoch_start = time.perf_counter()
        model.train()
        for index in range(prepared.steps_per_epoch):
            if self.should_stop():
                raise _Stop(RunCancelled(epochs_done=epoch - 1, step=self.step), "cancelled")
            batch = order[index * batch_size : (index + 1) * batch_size]
            images = data.train_x.index_select(0, batch)
            loss = F.nll_loss(model(images), data.train_y.index_select(0, batch))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.landscape is not None and self.landscape.due(self.step + 1):
                targets = data.train_y.index_select(0, batch)
                self.emit(self.landscape.measure(images, targets, self.step + 1, epoch))
            measuring = diagnostics is not None and (self.step + 1) % every == 0
            if measuring:
                diagnostics.snapshot()
            optimizer.step()
            self.loss_total.add_(loss.detach())
            self.step += 1
            if measuring:
                diagnostics.capture(self.step, epoch)
                if diagnostics.due():
                    self.emit_diagnostics(diagnostics)
            if self.step % progress_every == 0:
                self.progress(epoch)
        self.emit_diagnostics(diagnostics)  # inside the epoch's time: measuring is training's cost
        total = self.read_total(epoch)
        train_loss = (total - self.total_at_epoch_start) / prepared.steps_per_epoch
        self.total_at_epoch_start = total
        return self.end_epoch(epoch, train_loss, time.perf_counter() - epoch_start, prepared)

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
            batch_stats = evaluate_batch_statistics(
                model, data.val_x, data.val_y, self.config.batch_size
            )
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
