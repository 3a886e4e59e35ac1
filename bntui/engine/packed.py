"""Training several runs as one packed model (engine.packed_model), each reported as its own run.

Runs pack when they differ only in seed and BN on/off (`packed_rules.pack_key`; the launch
says once when its runs cannot). Every member emits the events its separate run would
(RunStarted, Progress, Diagnostics, Landscape, EpochEnded, one terminal event) with the same
numbers up to float reassociation: same initial weights, same batch order (its own seeded
generator), same dropout masks on a CPU, its own normalization statistics. A member that diverges or is cancelled stops alone; the others go on.

Measurements are each member's own, taken on the member's model, whose weights are views of
its slices of the packed ones: a DiagnosticsRecorder per member (reading its gradient slice) and
a LandscapeRecorder per member (probing the member's loss along its own gradient, one member
after the other) emit the Diagnostics and Landscape events its separate run would, at the same
steps. Measuring changes nothing in training, packed or not. Not packed: CUDA graphs (the packed
step runs eagerly).
"""

from __future__ import annotations

import contextlib
import copy
import math
import operator
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F

from bntui.engine.data import SplitTensors, derive_seed, load_raw, load_split_tensors
from bntui.engine.device import (
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
from bntui.engine.memory import (
    check_model_fits,
    is_out_of_memory,
    planned_parameters,
    release_device_memory,
)
from bntui.engine.models import (
    batch_norm_layers,
    build_model,
    parameter_count,
)
from bntui.engine.landscape import LandscapeRecorder
from bntui.engine.packed_model import PackedNetwork
from bntui.engine.packed_rules import pack_key
from bntui.engine.train import (
    accumulator_dtype,
    eval_batch_size,
    failure_message,
    make_optimizer,
    min_progress_seconds,
    steps_per_epoch,
)

if TYPE_CHECKING:
    from bntui.config import RunConfig


class PackTooLarge(Exception):
    """The pack ran out of device memory before any member started: train fewer at once."""


@dataclass
class Member:
    config: RunConfig
    on_event: Callable[[Event], None]
    should_stop: Callable[[], bool] = lambda: False
    result: RunResult = field(default_factory=lambda: RunResult(status="failed"))
    active: bool = True
    diagnostics: DiagnosticsRecorder | None = None  # set while training, where measured
    landscape: LandscapeRecorder | None = None  # the same

    def emit(self, event: Event) -> None:
        self.on_event(event)
        if isinstance(event, RunStarted):
            self.result.started = event
        elif isinstance(event, EpochEnded):
            self.result.epochs.append(event)
        elif isinstance(event, RunFinished):
            self.result.final = event

    def emit_diagnostics(self) -> None:
        if self.diagnostics is not None:
            for event in self.diagnostics.flush():
                self.emit(event)

    def stop(
        self, event: Event, status: Literal["cancelled", "failed", "diverged"], message: str | None = None
    ) -> None:
        with contextlib.suppress(Exception):  # keep what was measured if we can, as train does
            self.emit_diagnostics()
        self.emit(event)
        self.result.status, self.result.message = status, message
        self.active = False


def train_packed(members: list[Member], *, data_dir: Path, download: bool = False, threads: int = 0) -> list[RunResult]:
    """Train the members as one packed model; one RunResult per member, in order. Raises
    PackTooLarge (no event emitted) when the pack does not fit the device; any other
    run-level failure ends every member still training as RunFailed."""
    if len({pack_key(member.config) for member in members}) != 1:
        raise ValueError("packed runs must differ only in seed and BN on/off")
    previous_threads = torch.get_num_threads()
    device = None
    started = False
    try:
        if threads > 0:
            torch.set_num_threads(threads)
        device = resolve_device(members[0].config.device)
        with (
            torch.random.fork_rng(devices=seeded_gpus(device)),
            on_device(device),
            reproducible_kernels(device) as kernels,
        ):
            run = _PackedRun(members, device, kernels)
            run.prepare(data_dir, download)
            started = True
            run.run()
    except Exception as exc:  # noqa: BLE001 - every run-level failure ends the members still training
        if not started and is_out_of_memory(exc):
            release_device_memory(device)
            raise PackTooLarge(str(exc)) from None
        message = failure_message(exc, device)
        for member in members:
            if member.active:
                member.stop(RunFailed(message), "failed", message)
        release_device_memory(device)
    finally:
        torch.set_num_threads(previous_threads)
    return [member.result for member in members]


class _PackedRun:
    def __init__(self, members: list[Member], device: torch.device, kernels):
        # Members of one seed next to each other: they read the same images (the split and the
        # batch order come from the seed), which the packed network reads once for them.
        self.members = sorted(members, key=lambda member: member.config.seed)
        self.device, self.kernels = device, kernels
        self.config = members[0].config
        self.step = 0
        self.min_progress_seconds = min_progress_seconds(device)

    def prepare(self, data_dir: Path, download: bool) -> None:
        """Data (one copy per seed: the split depends on it), each member's model built as
        its separate run builds it, the packed model over them, one optimizer, a warm-up step."""
        self.wall_start, self.clock_start = time.time(), time.perf_counter()
        by_seed: dict[int, SplitTensors] = {}
        raw = load_raw(self.config.dataset, data_dir, download)  # once: only the split differs
        for member in self.members:
            seed = member.config.seed
            if seed not in by_seed:
                by_seed[seed] = load_split_tensors(member.config, data_dir, download, self.device, raw)
        self.data = [by_seed[member.config.seed] for member in self.members]
        seeds = [member.config.seed for member in self.members]
        self.group_data = [by_seed[seed] for seed in dict.fromkeys(seeds)]
        self.group_sizes = [seeds.count(seed) for seed in dict.fromkeys(seeds)]
        first = self.data[0]
        self.steps = steps_per_epoch(len(first.train_y), self.config.batch_size)
        if self.steps == 0:
            raise ValueError(f"the training split has {len(first.train_y)} image(s): too few to train")
        planned = planned_parameters(lambda: build_model(self.config, first.image_shape))
        if planned is not None:
            check_model_fits(planned * len(self.members), self.config, self.device)
        models, generators = [], []
        for member in self.members:
            config = member.config
            torch.manual_seed(config.seed)
            models.append(build_model(config, first.image_shape).to(self.device))
            generators.append(dropout_generator(config.seed, self.device))
        self.parameters = [parameter_count(model) for model in models]
        names = [[name for name, _ in model.named_parameters()] for model in models]
        self.network = PackedNetwork(models, generators, self.group_sizes)
        self.network.share_weights_with(models)
        if self.config.landscape_every > 0:
            for member, model, model_names in zip(self.members, models, names):
                # The member's weights by the names its separate run has (views now).
                weights = {name: operator.attrgetter(name)(model) for name in model_names}
                member.landscape = LandscapeRecorder(model, self.config.landscape_every, parameters=weights)
        self.models = models
        self.optimizer = make_optimizer(self.config, self.network)
        if self.config.diagnostics_every > 0 and len(first.val_y) >= 2:
            for index, (member, model) in enumerate(zip(self.members, models)):
                layer_names = [layer.name for layer in model.hidden_layers]
                gradients = lambda index=index, names=layer_names: self.network.weight_gradients(index, names)  # noqa: E731
                member.diagnostics = DiagnosticsRecorder(
                    model, self.data[index].val_x, member.config.seed, gradients=gradients
                )
        self.warm_up()

    def batch(self, batches: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Each group's images at its indices `batches[g]`, and every member's targets (M, B)."""
        images = [d.train_x.index_select(0, b) for d, b in zip(self.group_data, batches)]
        targets = self.member_targets([d.train_y.index_select(0, b) for d, b in zip(self.group_data, batches)])
        return images, targets

    def member_targets(self, per_group: list[torch.Tensor]) -> torch.Tensor:
        """(M, B) from each group's targets (B,)."""
        return torch.cat([y.expand(size, -1) for y, size in zip(per_group, self.group_sizes)])

    def train_step(self, network, optimizer, batches: list[torch.Tensor], before_update=None) -> torch.Tensor:
        """One optimizer step of every member (`batches[g]`: the indices of group g's batch);
        returns the members' losses (M,), on the device.
        Stopped members still compute (their slices are independent of the others') but add
        nothing to the gradient. `before_update()`, if given, runs between backward and the
        update."""
        images, targets = self.batch(batches)
        log_probs = network(images)
        losses = F.nll_loss(log_probs.flatten(0, 1), targets.flatten(), reduction="none")
        losses = losses.view(len(self.members), -1).mean(1)
        active = [index for index, member in enumerate(self.members) if member.active]
        total = losses.sum() if len(active) == len(self.members) else losses[active].sum()
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        if before_update is not None:
            before_update()
        optimizer.step()
        return losses.detach()

    def warm_up(self) -> None:
        """As train.warm_up: one step on a copy, every generator put back afterwards."""
        generators = self.network.generators
        states = [generator.get_state() for generator in generators]
        network = copy.deepcopy(self.network, memo={id(generators): generators})
        optimizer = make_optimizer(self.config, network)
        count = min(self.config.batch_size, len(self.data[0].train_y))
        batch = torch.arange(count, device=self.device)
        with torch.random.fork_rng(devices=seeded_gpus(self.device)):
            self.train_step(network, optimizer, [batch] * len(self.group_data))
        for generator, state in zip(generators, states):
            generator.set_state(state)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def run(self) -> None:
        config, data = self.config, self.data
        for member, parameters, member_data in zip(self.members, self.parameters, data):
            member.emit(
                RunStarted(
                    device=str(self.device),
                    device_name=describe_device(self.device),
                    torch_version=torch.__version__,
                    parameters=parameters,
                    steps_per_epoch=self.steps,
                    epochs=config.epochs,
                    train_size=len(member_data.train_y),
                    val_size=len(member_data.val_y),
                    test_size=len(member_data.test_y),
                    split_hash=member_data.split_hash,
                    time=self.wall_start,
                    cuda_version=self.kernels.cuda,
                    cudnn_version=self.kernels.cudnn,
                    deterministic=self.kernels.deterministic,
                    tf32=self.kernels.tf32,
                    cuda_graphs=False,
                )
            )
        self.order_generators = [  # one per group: its members' seed
            torch.Generator().manual_seed(derive_seed(self.members[start].config.seed, "order"))
            for start, _stop in self.network.groups
        ]
        count = len(self.members)
        self.loss_total = torch.zeros(count, dtype=accumulator_dtype(self.device), device=self.device)
        self.loop_start = time.perf_counter()
        self.point = ([0.0] * count, 0, self.loop_start)
        self.total_at_epoch_start = [0.0] * count
        train_eval = [0.0] * count
        for epoch in range(1, config.epochs + 1):
            train_eval = self.run_epoch(epoch)
            if not any(member.active for member in self.members):
                return
        train_seconds = time.perf_counter() - self.loop_start
        test = self.evaluate("test")
        for index, member in enumerate(self.members):
            if not member.active:
                continue
            test_loss, test_accuracy = test[index]
            last = member.result.epochs[-1]
            member.emit(
                RunFinished(
                    train_loss=train_eval[index],
                    train_accuracy=last.train_accuracy,
                    val_loss=last.val_loss,
                    val_accuracy=last.val_accuracy,
                    test_loss=test_loss,
                    test_accuracy=test_accuracy,
                    steps=self.step,
                    train_seconds=train_seconds,
                    total_seconds=time.perf_counter() - self.clock_start,
                )
            )
            member.result.status = "finished"
            member.active = False

    def check_cancelled(self, epoch: int) -> None:
        for member in self.members:
            if member.active and member.should_stop():
                member.stop(RunCancelled(epochs_done=epoch - 1, step=self.step), "cancelled")

    def run_epoch(self, epoch: int) -> list[float]:
        batch_size, progress_every = self.config.batch_size, self.config.progress_every
        every = self.config.diagnostics_every
        measured = [(member, member.diagnostics) for member in self.members if member.diagnostics is not None]
        orders = [
            torch.randperm(len(d.train_y), generator=g).to(self.device)
            for d, g in zip(self.group_data, self.order_generators)
        ]
        epoch_start = time.perf_counter()
        self.network.train()
        for index in range(self.steps):
            self.check_cancelled(epoch)
            if not any(member.active for member in self.members):
                return []
            batches = [order[index * batch_size : (index + 1) * batch_size] for order in orders]
            measuring = [(m, d) for m, d in measured if m.active] if measured and (self.step + 1) % every == 0 else []
            before_update = self.before_update(batches, epoch, measuring)
            self.loss_total.add_(self.train_step(self.network, self.optimizer, batches, before_update))
            self.step += 1
            for member, diagnostics in measuring:
                diagnostics.capture(self.step, epoch)
                if diagnostics.due():
                    member.emit_diagnostics()
            if self.step % progress_every == 0 and self.progress_due():
                self.progress(epoch)
        for member, _ in measured:  # inside the epoch's time: measuring is training's cost
            if member.active:
                member.emit_diagnostics()
        totals = self.read_totals(epoch)
        epoch_seconds = time.perf_counter() - epoch_start
        train_losses = [(total - start) / self.steps for total, start in zip(totals, self.total_at_epoch_start)]
        train_eval = self.end_epoch(epoch, train_losses, epoch_seconds)
        self.total_at_epoch_start = totals
        self.point = (totals, self.step, time.perf_counter())
        return train_eval

    def before_update(
        self, batches: list[torch.Tensor], epoch: int, measuring: list[tuple[Member, DiagnosticsRecorder]]
    ) -> Callable[[], None] | None:
        """What runs between the step's backward and its update (train._Run.before_update):
        the diagnostics snapshots of `measuring` (members with their recorders) and every
        landscape measurement due, each on its member's own batch. None when there is nothing
        to do."""
        step = self.step + 1
        landscapes = [
            (index, member, member.landscape) for index, member in enumerate(self.members)
            if member.active and member.landscape is not None and member.landscape.due(step)
        ]  # fmt: skip
        if not measuring and not landscapes:
            return None

        def measure() -> None:
            for _, diagnostics in measuring:
                diagnostics.snapshot()
            for index, member, landscape in landscapes:
                group = self.group_of(index)
                data, batch = self.group_data[group], batches[group]
                images, targets = data.train_x.index_select(0, batch), data.train_y.index_select(0, batch)
                member.emit(landscape.measure(images, targets, step, epoch))

        return measure

    def group_of(self, index: int) -> int:
        return next(g for g, (start, stop) in enumerate(self.network.groups) if start <= index < stop)

    def progress_due(self) -> bool:
        return time.perf_counter() - self.point[2] >= self.min_progress_seconds

    def read_totals(self, epoch: int) -> list[float]:
        """The members' summed train losses (one device sync); a member whose total is not
        finite is stopped as diverged."""
        totals = self.loss_total.tolist()
        for member, total in zip(self.members, totals):
            if member.active and not math.isfinite(total):
                message = f"the training loss became {total} by step {self.step}"
                member.stop(RunDiverged(epoch=epoch, step=self.step, message=message), "diverged", message)
        return totals

    def progress(self, epoch: int) -> None:
        totals, now = self.read_totals(epoch), time.perf_counter()
        last_totals, last_step, last_time = self.point
        steps = self.step - last_step
        for member, total, last_total in zip(self.members, totals, last_totals):
            if member.active:
                member.emit(
                    Progress(
                        epoch=epoch,
                        step=self.step,
                        train_loss=(total - last_total) / steps,
                        steps_per_second=steps / max(now - last_time, 1e-9),
                        elapsed=now - self.loop_start,
                    )
                )
        self.point = (totals, self.step, now)

    def end_epoch(self, epoch: int, train_losses: list[float], seconds: float) -> list[float]:
        """Every active member's EpochEnded, evaluated as its separate run evaluates (one
        packed forward pass per evaluation batch); returns the eval-mode training losses."""
        val = self.evaluate("val")
        train_eval = self.evaluate("train")
        batch_stats = self.evaluate_batch_statistics()
        for index, member in enumerate(self.members):
            if not member.active:
                continue
            stats = batch_stats[index] if member.config.bn else (None, None)
            member.emit(
                EpochEnded(
                    epoch=epoch,
                    step=self.step,
                    train_loss=train_losses[index],
                    val_loss=val[index][0],
                    train_accuracy=train_eval[index][1],
                    val_accuracy=val[index][1],
                    epoch_seconds=seconds,
                    elapsed=time.perf_counter() - self.loop_start,
                    val_loss_batch_stats=stats[0],
                    val_accuracy_batch_stats=stats[1],
                )
            )
        return [loss for loss, _accuracy in train_eval]

    def evaluate(self, split: str) -> list[tuple[float, float]]:
        """(mean loss, accuracy) per member over its own `split` in eval mode (train.evaluate)."""
        size = len(getattr(self.data[0], f"{split}_y"))
        step = eval_batch_size(self.device)
        bounds = [(start, start + step) for start in range(0, size, step)]
        self.network.eval()
        try:
            with torch.inference_mode():
                return self._mean_losses_and_accuracies(split, bounds)
        finally:
            self.network.train()

    def evaluate_batch_statistics(self) -> Sequence[tuple[float | None, float | None]]:
        """train.evaluate_batch_statistics for every member at once (members without batch
        statistics get numbers too; their runs do not report them)."""
        size = len(self.data[0].val_y)
        if size < 2 or not any(batch_norm_layers(model) for model in self.models):
            return [(None, None)] * len(self.members)
        starts = list(range(0, size, self.config.batch_size))
        if size - starts[-1] == 1:
            starts.pop()
        bounds = list(zip(starts, [*starts[1:], size]))
        self.network.eval()
        try:
            with torch.inference_mode(), self.network.batch_statistics_mode():
                return self._mean_losses_and_accuracies("val", bounds)
        finally:
            self.network.train()

    def _mean_losses_and_accuracies(self, split: str, bounds) -> list[tuple[float, float]]:
        xs = [getattr(d, f"{split}_x") for d in self.group_data]
        ys = [getattr(d, f"{split}_y") for d in self.group_data]
        count = len(self.members)
        loss_sum = torch.zeros(count, dtype=accumulator_dtype(self.device), device=self.device)
        correct = torch.zeros(count, dtype=torch.int64, device=self.device)
        for start, stop in bounds:
            log_probs = self.network([x[start:stop] for x in xs])
            targets = self.member_targets([y[start:stop] for y in ys])
            losses = F.nll_loss(log_probs.flatten(0, 1), targets.flatten(), reduction="none")
            loss_sum += losses.view(count, -1).sum(1)
            correct += (log_probs.argmax(dim=-1) == targets).sum(1)
        size = max(len(ys[0]), 1)
        return [(loss / size, right / size) for loss, right in zip(loss_sum.tolist(), correct.tolist())]


def dropout_generator(seed: int, device: torch.device) -> torch.Generator:
    """Member dropout masks' generator: on a CPU the global generator's state right after the
    member's model was built (where its separate run's dropout starts drawing); on a device
    the device's generator as torch.manual_seed(seed) leaves it."""
    if device.type == "cpu":
        generator = torch.Generator()
        generator.set_state(torch.get_rng_state())
        return generator
    return torch.Generator(device=device).manual_seed(seed)
