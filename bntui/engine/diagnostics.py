"""BatchNorm diagnostics: what the hidden layers' inputs to the non-linearity look like
during training, measured on one fixed probe batch from the validation set.

Measuring never changes training. The probe forward runs with BatchNorm using the probe
batch's own statistics but with running statistics and num_batches_tracked untouched, with
dropout off (so it draws no random numbers), under inference mode (so no gradients are
touched). The weights are only read. The probe batch is drawn once with its own generator.

Each `Diagnostics` event holds one dict per hidden layer, in network order:

    layer              "conv1", "fc1", ...          kind  "conv" | "linear"
    preact_mean, preact_std                         over the probe batch and all units
    preact_p15, preact_p50, preact_p85              percentiles over the batch and all units
    unit, unit_p15, unit_p50, unit_p85              percentiles of one fixed unit (unit 0; for a
                                                    conv layer: channel 0 over batch and positions)
    grad_norm          L2 norm of the weight's gradient at the last step
    update_ratio       ||W_after - W_before|| / ||W_before|| of the last optimizer step
    gamma_mean, beta_mean                           BatchNorm scale and shift (None without
                                                    BatchNorm or with affine off)
    running_mean_gap   mean |probe batch mean - running mean| of BatchNorm's input
    running_var_gap    mean |probe batch var (unbiased) - running var|   (None without BatchNorm)

Values are plain floats; a non-finite value is recorded as None (it would not be valid JSON).

Cost. At the default interval measuring must cost under 5% of training. For the small MLP
on a CPU a training step takes about a millisecond, and right after one the caches hold the
optimizer's data, not the measurement's code and data. So a measurement is split in two:

- `capture` (at the measured step) does only what must happen then, in a few tensor
  operations: the gradient and update norms (the weights were copied into buffers kept for
  that by `snapshot`, one copy), the probe forward, and one concatenation of the BatchNorm
  numbers that training will overwrite. The pre-activations are kept as they are.
- `flush` summarizes the captures waiting (up to FLUSH_EVERY, or those older than
  FLUSH_SECONDS, so live plots stay live) all at once, with warm caches and one operation per
  layer over all of them where it can: means and deviations by BLAS, exact percentiles by
  (SIMD) sorting or, for large conv layers, the selection in order_statistics. On an
  accelerator the summaries are computed there and everything crosses to the host in one
  copy per flush (one synchronization per flush, none per step).

The probe forward walks the model's layers itself (no hooks, no mode switching), skips what
measures nothing (dropout, the output layer), computes leading reshapes once, replaces
MaxPool2d(2) by two elementwise maxima (ReLU then pool by pool then ReLU, on a quarter of
the values) and takes BatchNorm's batch statistics from the BatchNorm kernel
(torch.native_batch_norm returns them) instead of recomputing them.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from torch import Tensor, nn

from bntui.engine.data import derive_seed
from bntui.engine.events import Diagnostics
from bntui.engine.models import BATCH_NORM_TYPES, Classifier

PROBE_SIZE = 32
PERCENTILES = (0.15, 0.50, 0.85)
PROBE_UNIT = 0
FLUSH_EVERY = 10  # captures summarized together
FLUSH_SECONDS = 0.25  # ... or fewer, once the oldest waiting has waited this long (or at
# once when captures are this far apart: then waiting saves nothing and delays the plots)
# On the CPU a pre-activation with more values than this (a conv layer's) is summarized at
# once, while the probe forward has it in the cache: reading it back later costs more than
# summarizing it together with others saves.
SUMMARIZE_AT_ONCE = 16384

PERCENTILE_KEYS = tuple(f"preact_p{round(q * 100)}" for q in PERCENTILES)
UNIT_PERCENTILE_KEYS = tuple(f"unit_p{round(q * 100)}" for q in PERCENTILES)
SUMMARY_KEYS = ("preact_mean", "preact_std", *PERCENTILE_KEYS, *UNIT_PERCENTILE_KEYS)
TENSOR_KEYS = (
    "grad_norm", "update_ratio", "gamma_mean", "beta_mean", "running_mean_gap", "running_var_gap",
)  # fmt: skip
NUMBER_KEYS = (*SUMMARY_KEYS, *TENSOR_KEYS)
_COLUMN = {key: at for at, key in enumerate(NUMBER_KEYS)}

# What the probe forward does at a step of its path: run the module, read its input as a
# hidden layer's pre-activation (and run it, unless nothing after it is needed), or normalize
# with the batch's own statistics.
RUN, PREACTIVATION, NORMALIZE = "run", "preactivation", "normalize"
RESHAPES = (nn.Flatten, nn.Unflatten, nn.Identity)  # no weights, no randomness


@dataclass
class _Capture:
    """What one measurement keeps until it is summarized."""

    step: int
    epoch: int
    # Per hidden layer: gradient norms, then ||W_before||, then ||W_after - W_before||
    # (NaN where there is no gradient, or no snapshot before the step).
    weight_norms: Tensor
    # Per hidden layer: its pre-activation on the probe batch, or (on the CPU, for a large
    # one) its summary row already computed while it was in the cache.
    preacts: list[Tensor | np.ndarray]
    # Per BatchNorm layer with running statistics, its channels' (batch mean, 1 / sqrt(biased
    # batch var + eps), running mean, running var[, gamma, beta]), all concatenated.
    batch_norm: Tensor | None

    def batch_norm_numbers(self) -> Tensor:
        """batch_norm, which capture takes whenever the model has BatchNorm layers to report."""
        assert self.batch_norm is not None
        return self.batch_norm


@dataclass(frozen=True)
class _NormLayout:
    """Where one BatchNorm layer's numbers sit in _Capture.batch_norm."""

    layer: int  # hidden layer index
    start: int
    channels: int
    parts: int  # 4, or 6 with gamma and beta
    eps: float
    values_per_channel: int  # of the probe batch at this layer (for the unbiased variance)


class DiagnosticsRecorder:
    """Call `snapshot()` just before the optimizer step you want to measure and `capture(step,
    epoch)` just after it; `flush()` returns the Diagnostics events of the captures so far
    (call it when `due()`, at the end of an epoch and before the run ends). `measure` does
    capture and flush at once, for a one-off measurement."""

    def __init__(
        self,
        model: Classifier,
        val_x: torch.Tensor,
        seed: int,
        probe_size: int = PROBE_SIZE,
        gradients: Callable[[], list[Tensor | None]] | None = None,
    ):
        """`gradients()`, where given, returns the hidden layers' weight gradients (a packed
        member's weights are views of the packed model's, whose slices hold its gradient);
        by default each weight's own `.grad`."""
        if len(val_x) < 2:
            raise ValueError("diagnostics need at least 2 validation images for the probe batch")
        generator = torch.Generator().manual_seed(derive_seed(seed, "probe"))
        chosen = torch.randperm(len(val_x), generator=generator)[: min(probe_size, len(val_x))]
        self.probe = val_x.index_select(0, chosen.sort().values.to(val_x.device))
        self.model = model
        self.layers = model.hidden_layers
        # A hidden layer's weight module is an nn.Linear or nn.Conv2d (models.HiddenLayer).
        self._weights = [cast(nn.Linear | nn.Conv2d, layer.weight).weight for layer in self.layers]
        self._gradients = gradients or (lambda: [weight.grad for weight in self._weights])
        self._path = probe_path(model)
        # Leading reshapes (the MLP's Flatten) give the same result every time: done once.
        self._probe_input = self.probe
        while (
            self._path
            and self._path[0][1] == RUN
            and (leading := self._path[0][0]) is not None
            and type(leading) in RESHAPES
        ):
            with torch.no_grad():
                self._probe_input = leading(self._probe_input)
            self._path = self._path[1:]
        # The BatchNorm layers whose figures are reported (those with running statistics).
        # (A hidden layer's norm is one of BATCH_NORM_TYPES, or a subclass, or None: models.py.)
        self._norms = [
            (index, layer.norm)
            for index, layer in enumerate(self.layers)
            if isinstance(layer.norm, BATCH_NORM_TYPES) and layer.norm.running_mean is not None
        ]
        preacts, norm_stats = self.probe_forward()  # once, for the shapes at each BatchNorm
        for pre in preacts:  # and the percentiles' ranks, on the device before training starts
            device_ranks(pre.numel(), pre.device, pre.dtype)
            device_ranks(pre[:, PROBE_UNIT].numel(), pre.device, pre.dtype)
        self._norm_layout: list[_NormLayout] = []
        start = 0
        for index, norm in self._norms:
            parts, channels = (6 if norm.weight is not None else 4), norm.num_features
            count = norm_stats[index][2]
            self._norm_layout.append(_NormLayout(index, start, channels, parts, norm.eps, count))
            start += parts * channels
        self._templates = [_layer_identity(layer) for layer in self.layers]
        # The weights before the measured step, copied by `snapshot` into buffers kept for it
        # (allocating them at every snapshot would cost page faults each time).
        self._before = [torch.empty_like(weight, memory_format=torch.contiguous_format) for weight in self._weights]
        self._snapshot_taken = False
        with torch.no_grad():
            self._nan = torch.full((), math.nan, device=self.probe.device)
        self._pending: list[_Capture] = []
        self._oldest = 0.0  # when the oldest capture waiting was taken
        self._last = -math.inf  # when the last capture was taken
        self._gap = math.inf  # the time between the last two captures
        # Summaries are computed on the host, in numpy, when the model is on the CPU; on an
        # accelerator they are computed there and cross to the host in one copy per flush.
        # (Tests switch this off to run the accelerator's path on the CPU.)
        self.on_host = self.probe.device.type == "cpu"

    def snapshot(self) -> None:
        """Copy the hidden layers' weights, for the update ratio of the coming step."""
        with torch.no_grad():
            torch._foreach_copy_(self._before, self._weights)
        self._snapshot_taken = True

    def capture(self, step: int, epoch: int) -> None:
        """Measure the model as it is now; summarized at the next `flush`."""
        # The probe forward first: the step left the weights in the cache.
        preacts, norm_stats = self.probe_forward(self._summarize_large if self.on_host else None)
        with torch.inference_mode():
            weight_norms = self._weight_norms()
        batch_norm = None
        if self._norms:
            with torch.inference_mode():
                parts: list[Tensor] = []
                for index, norm in self._norms:
                    mean, invstd, _ = norm_stats[index]
                    running_mean, running_var = norm.running_mean, norm.running_var
                    assert running_mean is not None and running_var is not None  # as __init__ chose _norms
                    parts += [mean, invstd, running_mean, running_var]
                    if norm.weight is not None:
                        parts += [norm.weight, norm.bias]
                batch_norm = torch.cat(parts)  # a copy: training changes these in place
        now = time.perf_counter()
        self._gap, self._last = now - self._last, now
        if not self._pending:
            self._oldest = now
        self._pending.append(_Capture(step, epoch, weight_norms, preacts, batch_norm))

    @staticmethod
    def _summarize_large(pre: Tensor) -> np.ndarray | None:
        if pre.numel() <= SUMMARIZE_AT_ONCE:
            return None
        return host_summaries(pre.numpy()[None])[0]

    def due(self) -> bool:
        """Whether the captures waiting should be summarized now."""
        if not self._pending:
            return False
        waited = time.perf_counter() - self._oldest
        return len(self._pending) >= FLUSH_EVERY or max(waited, self._gap) >= FLUSH_SECONDS

    def flush(self) -> list[Diagnostics]:
        """The Diagnostics events of the captures waiting, oldest first."""
        pending, self._pending = self._pending, []
        if not pending:
            return []
        with torch.inference_mode():
            if self.on_host:
                summaries = [_stacked_host_summaries([c.preacts[i] for c in pending]) for i in range(len(self.layers))]
                weight_norms = np.stack([c.weight_norms.numpy() for c in pending])
                batch_norm = np.stack([c.batch_norm_numbers().numpy() for c in pending]) if self._norms else None
            else:
                summaries, weight_norms, batch_norm = self._device_summaries(pending)
        # Per layer, one (captures, NUMBER_KEYS) table of float64; NaN becomes None below.
        captures, layers = len(pending), len(self.layers)
        weight_norms = weight_norms.astype(np.float64)
        tables = []
        for index in range(layers):
            table = np.full((captures, len(NUMBER_KEYS)), math.nan)
            summary = summaries[index]
            finite = np.isfinite(summary[:, 0])  # a non-finite mean: no summary at all
            table[finite, : len(SUMMARY_KEYS)] = summary[finite]
            before, moved = weight_norms[:, layers + index], weight_norms[:, 2 * layers + index]
            table[:, _COLUMN["grad_norm"]] = weight_norms[:, index]
            with np.errstate(divide="ignore", invalid="ignore"):
                table[:, _COLUMN["update_ratio"]] = np.where(before > 0, moved / before, math.nan)
            tables.append(table)
        if batch_norm is not None:  # there are BatchNorm layouts
            for layout in self._norm_layout:
                block = batch_norm[:, layout.start : layout.start + layout.parts * layout.channels]
                count = layout.values_per_channel
                found = batch_norm_figures(block.reshape(captures, layout.parts, layout.channels), count, layout.eps)
                for key, values in found.items():
                    tables[layout.layer][:, _COLUMN[key]] = values
        numbers = np.stack(tables, axis=1).tolist()  # [capture][layer][key]
        return [
            Diagnostics(
                step=capture.step,
                epoch=capture.epoch,
                layers=[
                    {**template, **_finite_or_none(values)} for template, values in zip(self._templates, numbers[at])
                ],
            )
            for at, capture in enumerate(pending)
        ]

    def measure(self, step: int, epoch: int) -> Diagnostics:
        """Capture and summarize now (with any captures still waiting): the latest event."""
        self.capture(step, epoch)
        return self.flush()[-1]

    def probe_forward(self, summarize: Callable[[Tensor], object] | None = None):
        """Per hidden layer: its pre-activation on the probe batch (or `summarize(it)` where
        that is not None, computed as soon as it exists, while it is in the cache), and its
        BatchNorm's (batch mean, 1 / sqrt(biased batch var + eps), values per channel) or
        None."""
        layers = len(self.layers)
        preacts: list = [None] * layers
        norm_stats: list = [None] * layers
        x = self._probe_input
        with torch.inference_mode():
            for run, role, index in self._path:
                if role == NORMALIZE:
                    norm = cast("nn.BatchNorm1d | nn.BatchNorm2d", run)  # probe_path runs a norm itself
                    count = x.numel() // x.shape[1]
                    x, mean, invstd = torch.native_batch_norm(
                        x, norm.weight, norm.bias, None, None, True, 0.0, norm.eps
                    )
                    if index is not None:
                        norm_stats[index] = (mean, invstd, count)
                    continue
                if role == PREACTIVATION:
                    assert index is not None  # probe_path gives every pre-activation its layer
                    summary = None if summarize is None else summarize(x)
                    preacts[index] = x if summary is None else summary
                if run is not None:
                    x = run(x)
        return preacts, norm_stats

    def _weight_norms(self) -> Tensor:
        """One tensor: per layer the gradient norm, then ||W_before||, then ||W_after -
        W_before|| (NaN where not measurable), in three foreach operations."""
        weights = self._weights
        grads = self._gradients()
        with_grad = [grad for grad in grads if grad is not None]
        norms = iter(torch._foreach_norm(with_grad) if with_grad else [])
        found = [self._nan if grad is None else next(norms) for grad in grads]
        if self._snapshot_taken:
            found += torch._foreach_norm(self._before)
            torch._foreach_sub_(self._before, weights)  # the copies become the steps taken
            found += torch._foreach_norm(self._before)
            self._snapshot_taken = False
        else:
            found += [self._nan] * (2 * len(weights))
        return torch.stack(found)

    def _device_summaries(self, pending: list[_Capture]) -> tuple[list[np.ndarray], np.ndarray, np.ndarray | None]:
        """The flush's numbers computed on the device and copied to the host at once."""
        layers = len(self.layers)
        # Off the host, capture keeps every pre-activation as it is: a tensor.
        parts = [device_summaries(torch.stack([cast(Tensor, c.preacts[i]) for c in pending])) for i in range(layers)]
        parts.append(torch.stack([c.weight_norms for c in pending]))
        if self._norms:
            parts.append(torch.stack([c.batch_norm_numbers() for c in pending]))
        widths = [part.shape[1] for part in parts]
        host = torch.cat([part.float() for part in parts], dim=1).cpu().numpy()
        split = np.split(host, np.cumsum(widths)[:-1], axis=1)
        batch_norm = split[layers + 1] if self._norms else None
        return split[:layers], split[layers], batch_norm


def _finite_or_none(values: list[float]) -> dict[str, float | None]:
    """NUMBER_KEYS to values, None for a non-finite one (it would not be valid JSON)."""
    return {key: v if math.isfinite(v) else None for key, v in zip(NUMBER_KEYS, values)}


def batch_norm_figures(block: np.ndarray, count: int, eps: float) -> dict[str, np.ndarray]:
    """Per capture (rows of `block`, shaped (captures, 4 or 6, channels) as (batch mean,
    invstd, running mean, running var[, gamma, beta])): gamma and beta means and the gaps
    between the probe's batch statistics and the running ones. The unbiased batch variance
    comes back from BatchNorm's 1 / sqrt(var + eps)."""
    block = block.astype(np.float64)
    mean, invstd, running_mean, running_var = block[:, 0], block[:, 1], block[:, 2], block[:, 3]
    correction = count / max(count - 1, 1)
    # A diverging run has inf/nan statistics: let them through as NaN (recorded as None, and
    # the run says it diverged) without numpy printing RuntimeWarnings on the user's terminal.
    with np.errstate(all="ignore"):
        variances = (1.0 / (invstd * invstd) - eps) * correction
        found = {
            "running_mean_gap": np.abs(mean - running_mean).mean(axis=1),
            "running_var_gap": np.abs(variances - running_var).mean(axis=1),
        }
        if block.shape[1] == 6:
            found["gamma_mean"] = block[:, 4].mean(axis=1)
            found["beta_mean"] = block[:, 5].mean(axis=1)
    return found


def probe_path(model: Classifier) -> list[tuple[Callable | None, str, int | None]]:
    """(what to run, role, hidden layer index) for each step of the probe forward, in
    order, up to the last one a hidden layer needs (the output layer is not needed).
    Dropout is left out (it is off while probing, as in models.batch_statistics_mode)."""
    roles: dict[int, tuple[str, int]] = {}
    for at, layer in enumerate(model.hidden_layers):
        roles[id(layer.activation)] = (PREACTIVATION, at)
        if layer.norm is not None:
            roles[id(layer.norm)] = (NORMALIZE, at)
    path: list[tuple[Callable | None, str, int | None]] = []
    needed = 0
    for module in model.layers:
        if isinstance(module, nn.Dropout):
            continue
        role, index = roles.get(id(module), (RUN, None))
        if isinstance(module, BATCH_NORM_TYPES):
            role = NORMALIZE
        path.append((fast_equivalent(module), role, index))
        if index is not None:
            needed = len(path)
    path = path[:needed]
    if path and path[-1][1] == PREACTIVATION:  # its output feeds nothing that is measured
        path[-1] = (None, PREACTIVATION, path[-1][2])
    for at in range(len(path) - 1):
        (run, role, index), (after, _, _) = path[at], path[at + 1]
        if run is torch.relu and role == PREACTIVATION and after is max_pool_2x2:
            # max then ReLU equals ReLU then max, on a quarter of the values
            path[at], path[at + 1] = (None, role, index), (relu_max_pool_2x2, RUN, None)
    return path


def fast_equivalent(module: nn.Module) -> Callable:
    """The module, or a faster function giving the same values without autograd (calling
    the functional form directly skips nn.Module's call machinery, which matters at the
    probe's sizes)."""
    kind = type(module)
    if type(module) is nn.Linear:  # not `kind is`: mypy narrows by this form
        return functools.partial(_linear, module)
    if type(module) is nn.Conv2d:
        return functools.partial(_conv, module)
    if kind in _ELEMENTWISE and not getattr(module, "inplace", False):
        return _ELEMENTWISE[kind]
    if (
        type(module) is nn.MaxPool2d
        and _pair(module.kernel_size) == (2, 2)
        and _pair(module.stride) == (2, 2)
        and _pair(module.padding) == (0, 0)
        and _pair(module.dilation) == (1, 1)
        and not module.ceil_mode
        and not module.return_indices
    ):
        return max_pool_2x2
    return module


_ELEMENTWISE: dict[type, Callable] = {
    nn.ReLU: torch.relu, nn.Sigmoid: torch.sigmoid, nn.Tanh: torch.tanh,
}  # fmt: skip


def _linear(module: nn.Linear, x: Tensor) -> Tensor:
    return torch.nn.functional.linear(x, module.weight, module.bias)


def _conv(module: nn.Conv2d, x: Tensor) -> Tensor:
    return module._conv_forward(x, module.weight, module.bias)


def max_pool_2x2(x: Tensor) -> Tensor:
    """max_pool2d(x, 2) as two elementwise maxima of strided views: the same values (NaN
    propagates in both) about ten times faster on the CPU for the probe's shapes. Only for
    the probe: its backward would split ties' gradients, unlike max_pool2d's."""
    height, width = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    rows = torch.maximum(x[..., 0:height:2, :width], x[..., 1:height:2, :width])
    return torch.maximum(rows[..., 0::2], rows[..., 1::2])


def relu_max_pool_2x2(x: Tensor) -> Tensor:
    """relu(x) then max_pool2d(..., 2), as the pool then relu in place."""
    return max_pool_2x2(x).relu_()


def _pair(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _stacked_host_summaries(preacts: list[Tensor | np.ndarray]) -> np.ndarray:
    """host_summaries of one layer's pre-activations from several captures (or their
    summary rows, where capture already computed them)."""
    if isinstance(preacts[0], np.ndarray):
        return np.stack(preacts)
    return host_summaries(np.stack([pre.numpy() for pre in cast(list[Tensor], preacts)]))  # all alike


def host_summaries(blocks: np.ndarray) -> np.ndarray:
    """Per capture (the first axis of `blocks`: captures, probe batch, units[, positions]):
    [mean, std (population), percentiles over all values, percentiles of unit PROBE_UNIT
    (for a conv layer: channel PROBE_UNIT over batch and positions)], NaN where the values
    are not all finite."""
    captures = blocks.shape[0]
    flat = blocks.reshape(captures, -1)
    count = flat.shape[1]
    # Values of a diverging run overflow (inf - inf, inf squared): those rows end as NaN and are
    # dropped, so numpy's RuntimeWarnings would only be noise on the user's terminal.
    with np.errstate(all="ignore"):
        # BLAS products: several times faster than numpy's own sums at these sizes, and
        # accurate enough (float32 accumulators spread over many lanes; two passes for the
        # variance, so a large mean does not cancel it away).
        ones = _ones(count)
        means = (flat @ ones) / np.float32(count)
        centred = flat - means[:, None]
        variances = (np.square(centred, out=centred) @ ones) / count
        units = blocks[:, :, PROBE_UNIT].reshape(captures, -1)
        found = np.full((captures, len(SUMMARY_KEYS)), math.nan)
        for at in range(captures):
            mean, var = float(means[at]), float(variances[at])
            if not (math.isfinite(mean) and math.isfinite(var)):  # overflow, or inf/nan values
                mean = float(flat[at].mean(dtype=np.float64))
                if not math.isfinite(mean):
                    continue
                var = float(flat[at].var(dtype=np.float64))
            found[at] = [
                mean, math.sqrt(var), *percentiles_numpy(flat[at]), *percentiles_numpy(units[at])
            ]  # fmt: skip
    return found


def device_summaries(blocks: Tensor) -> Tensor:
    """The same numbers as host_summaries, computed on the blocks' device (where sorting is
    cheap and copies are not). Rows with values that are not all finite start with a
    non-finite mean and are dropped by the caller."""
    captures = blocks.shape[0]
    flat = blocks.reshape(captures, -1)
    std, mean = torch.std_mean(flat, dim=1, correction=0)
    units = blocks[:, :, PROBE_UNIT].reshape(captures, -1)
    columns = [mean[:, None], std[:, None], percentiles_torch(flat), percentiles_torch(units)]
    return torch.cat(columns, dim=1)


@functools.lru_cache(maxsize=16)
def _ones(count: int) -> np.ndarray:
    return np.ones(count, dtype=np.float32)


@functools.lru_cache(maxsize=64)
def _ranks(count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Where torch.quantile's linear interpolation looks for `count` values: float32 ranks
    q * (count - 1), the order statistics below and above, and the weight between them."""
    ranks = np.asarray(PERCENTILES, dtype=np.float32) * np.float32(count - 1)
    below, above = ranks.astype(np.int64), np.ceil(ranks).astype(np.int64)
    wanted = np.unique(np.concatenate([below, above]))
    return below, above, (ranks - below).astype(np.float64), wanted


@functools.lru_cache(maxsize=64)
def _interpolation(count: int) -> tuple[np.ndarray, list[tuple[int, int, float]]]:
    """(the ranks to select, per percentile (place of the rank below among them, place of
    the rank above, weight))."""
    below, above, weight, wanted = _ranks(count)
    place = {rank: i for i, rank in enumerate(wanted.tolist())}
    steps = [(place[b], place[a], w) for b, a, w in zip(below.tolist(), above.tolist(), weight)]
    return wanted, steps


def percentiles_numpy(values: np.ndarray) -> list[float]:
    """torch.quantile(values, PERCENTILES) for finite values (same ranks and interpolation,
    to float rounding), selecting only the order statistics needed."""
    wanted, steps = _interpolation(values.size)
    found = order_statistics(values, wanted)
    return [found[b] + w * (found[a] - found[b]) for b, a, w in steps]


PYTHON_SORT = 64  # up to this many values, Python's sort
SORT_ALL = 6144  # up to this many values, numpy's (SIMD) sort beats selecting


def order_statistics(values: np.ndarray, ranks: np.ndarray) -> list[float]:
    """The values of 0-based `ranks` in sorted order, exactly, without sorting everything.

    np.partition is a branchy scalar loop (several ns per value and rank on data it has not
    seen before); numpy's sort is vectorized and beats it up to a few thousand values; a
    comparison and a count are vectorized passes. So for large arrays: sort an evenly
    strided sample, then for each group of adjacent ranks narrow a value interval known to
    hold them with a few comparison-and-count passes, and partition only the few hundred
    values inside it."""
    if values.size <= PYTHON_SORT:
        ordered = sorted(values.tolist())
        return [ordered[rank] for rank in ranks.tolist()]
    if values.size <= SORT_ALL:
        return np.sort(values)[ranks].tolist()
    sample = np.sort(values[:: sample_stride(values.size)])
    small_enough = max(values.size // 128, 256)  # below this, a pass costs more than it saves
    found: list[float] = []
    for group in _adjacent_groups(ranks.tolist()):
        found += _select_group(values, group, sample, small_enough)
    return found


def sample_stride(count: int) -> int:
    """Every how many values the sample takes one: about count / 32 values (256 to 4,096).
    Odd, so that in a layer whose width is a power of two it walks through all units
    instead of coming back to the same few."""
    size = min(max(count // 32, 256), 4096)
    return (count // size) | 1


def _select_group(values: np.ndarray, group: list[int], sample: np.ndarray, small_enough: int):
    """The order statistics of the adjacent ranks `group` (first to last).

    Keeps a half-open interval [low, high) of values that holds them, low and high being
    sample points (or -inf, +inf), with under = #(values < low) <= first and
    upto = #(values < high) > last. It starts two standard deviations of a sample rank
    around where the sample puts the ranks (dropping a side the sample got wrong) and is
    halved at the middle sample point while it holds more than `small_enough` values."""
    count, size = values.size, sample.size
    first, last = group[0], group[-1]
    share = first / (count - 1)
    margin = 2.0 * math.sqrt(size * max(share * (1 - share), 0.01)) + 2
    low_at = int(share * (size - 1) - margin)
    high_at = int(math.ceil(last / (count - 1) * (size - 1) + margin)) + 1
    below_low = below_high = None  # values < low, values < high; None for -inf, +inf
    under, upto = 0, count
    if low_at >= 0:
        below_low = values < sample[low_at]
        under = int(np.count_nonzero(below_low))
    if below_low is None or under > first:
        low_at, below_low, under = -1, None, 0
    if high_at < size:
        below_high = values < sample[high_at]
        upto = int(np.count_nonzero(below_high))
    if below_high is None or upto <= last:
        high_at, below_high, upto = size, None, count
    while upto - under > small_enough and high_at - low_at > 1:
        middle_at = (low_at + high_at) // 2
        below_middle = values < sample[middle_at]
        middle = int(np.count_nonzero(below_middle))
        if middle <= first:  # fewer than first + 1 values lie below: the group is above
            low_at, below_low, under = middle_at, below_middle, middle
        elif middle > last:
            high_at, below_high, upto = middle_at, below_middle, middle
        else:  # the middle splits the group
            break
    if below_low is None:
        inside = values if below_high is None else np.compress(below_high, values)
    elif below_high is None:
        inside = np.compress(~below_low, values)
    else:
        inside = np.compress(below_high ^ below_low, values)  # below_low implies below_high
    ordered = np.partition(inside, [rank - under for rank in group])
    return [float(ordered[rank - under]) for rank in group]


def _adjacent_groups(ranks: list[int]) -> list[list[int]]:
    """[3, 4, 9, 10] -> [[3, 4], [9, 10]]: neighbouring ranks share one interval."""
    groups: list[list[int]] = []
    for rank in ranks:
        if groups and rank - groups[-1][-1] <= 1:
            groups[-1].append(rank)
        else:
            groups.append([rank])
    return groups


def percentiles_torch(values: torch.Tensor) -> torch.Tensor:
    """The same on the device (finite values), along the last dimension."""
    below, above, weight = device_ranks(values.shape[-1], values.device, values.dtype)
    ordered = values.sort(dim=-1).values
    return torch.lerp(ordered[..., below], ordered[..., above], weight)


@functools.lru_cache(maxsize=64)
def device_ranks(count: int, device: torch.device, dtype: torch.dtype):
    """_ranks' ranks below and above and weights as tensors on `device`, made once: copying
    them there at every flush would cost three host-to-device copies (each a host sync) per
    percentile call, a dozen and more per flush where one is enough."""
    below, above, weight, _ = _ranks(count)
    return (
        torch.from_numpy(below).to(device),
        torch.from_numpy(above).to(device),
        torch.from_numpy(weight).to(device, dtype),
    )


def _layer_identity(layer) -> dict:
    """The keys of a layer's row that are not measured (flush adds NUMBER_KEYS after them)."""
    return {
        "layer": layer.name,
        "kind": "conv" if isinstance(layer.weight, nn.Conv2d) else "linear",
        "unit": PROBE_UNIT,
    }
